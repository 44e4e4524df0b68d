use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::layout::PageHeader;
use crate::components::state::EmptyState;

#[component]
pub fn DeploymentsPage() -> impl IntoView {
    view! {
        <Title text="Deployments" />
        <PageHeader title="Deployments" />
        <EmptyState
            title="No deployments yet"
            hint="Deploy a service to an environment; its canary rollout appears here."
            command="enclii deploy --service my-service --env production"
        />
    }
}
