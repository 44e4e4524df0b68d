use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::layout::PageHeader;
use crate::components::state::EmptyState;

#[component]
pub fn OverviewPage() -> impl IntoView {
    view! {
        <Title text="Overview" />
        <PageHeader title="Overview" subtitle="Projects, recent deployments and health at a glance." />
        <EmptyState
            title="No projects yet"
            hint="Create a project, then import a service spec to deploy it."
            command="enclii project create my-project"
        />
    }
}
