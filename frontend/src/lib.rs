//! The wasm entry point: hydrate the server-rendered document.

// The whole app's view type is laid out here (by `hydrate_lazy`'s future): deeper than 128 levels.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Lazy routes (each page its own wasm chunk) need the lazy-aware hydration.
    leptos::mount::hydrate_lazy(switchyard_app::App);
}
