//! Choosing one of a service's environments: the per-environment panels (charts, logs,
//! variables) open on production when there is one, and switch with the same control.

use leptos::prelude::*;

/// The environment a panel opens on: production when the project has it, else the first.
pub fn default_environment(environments: &[String]) -> String {
    environments
        .iter()
        .find(|e| *e == "production")
        .or(environments.first())
        .cloned()
        .unwrap_or_default()
}

/// The environment a panel's select shows: `picked` (the user's choice, kept by the tab, outside
/// the Suspense that re-creates the panel) or else the default of `environments`. A choice made
/// in the select is written back to `picked`, which the panel's resource follows; only a change
/// is, since at hydration the resource already holds the default's data.
pub fn follow_pick(picked: RwSignal<Option<String>>, environments: &[String]) -> RwSignal<String> {
    let selected = RwSignal::new(
        picked
            .get_untracked()
            .unwrap_or_else(|| default_environment(environments)),
    );
    Effect::watch(
        move || selected.get(),
        move |e, _, _| picked.set(Some(e.clone())),
        false,
    );
    selected
}

/// A select of `environments` bound to `selected`; `label` is its accessible name.
#[component]
pub fn EnvironmentSelect(
    label: &'static str,
    environments: Vec<String>,
    selected: RwSignal<String>,
) -> impl IntoView {
    let first = selected.get_untracked();
    view! {
        <select
            aria-label=label
            class="rounded-lg border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-900"
            on:change=move |ev| selected.set(event_target_value(&ev))
        >
            {environments
                .into_iter()
                .map(|e| {
                    let chosen = e == first;
                    view! { <option value=e.clone() selected=chosen>{e.clone()}</option> }
                })
                .collect_view()}
        </select>
    }
}

#[cfg(test)]
mod tests {
    use super::default_environment;

    #[test]
    fn production_first_else_the_first_listed() {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            default_environment(&v(&["preview", "production", "staging"])),
            "production"
        );
        assert_eq!(default_environment(&v(&["staging", "preview"])), "staging");
        assert_eq!(default_environment(&[]), "");
    }
}
