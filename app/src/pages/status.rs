use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::layout::PageHeader;
use crate::components::state::EmptyState;

#[component]
pub fn StatusPage() -> impl IntoView {
    view! {
        <Title text="Status" />
        <PageHeader title="Status" subtitle="Health of every monitored service." />
        <EmptyState
            title="No monitored services"
            hint="Import a spec with monitoring targets (such as status-page.yaml) to see its checks here."
        />
    }
}
