use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::layout::PageHeader;
use crate::components::state::EmptyState;

#[component]
pub fn ProjectsPage() -> impl IntoView {
    view! {
        <Title text="Projects" />
        <PageHeader title="Projects" />
        <EmptyState
            title="No projects yet"
            hint="A project groups services and their environments (production and staging)."
            command="enclii project create my-project"
        />
    }
}
