use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::layout::PageHeader;
use crate::components::state::EmptyState;

#[component]
pub fn ActivityPage() -> impl IntoView {
    view! {
        <Title text="Activity" />
        <PageHeader title="Activity" subtitle="Every change, who made it and when." />
        <EmptyState title="Nothing has happened yet" hint="Changes to projects, services and deployments are recorded here." />
    }
}
