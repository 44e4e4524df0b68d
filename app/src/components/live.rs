//! Server-sent event subscriptions for live pages (browser only). A subscription closes its
//! `EventSource` when dropped, so a page holds it for as long as it shows the data.

#[cfg(feature = "hydrate")]
pub use imp::*;

#[cfg(feature = "hydrate")]
mod imp {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;

    pub struct Subscription {
        source: web_sys::EventSource,
        _handler: Closure<dyn FnMut(web_sys::MessageEvent)>,
        _end: Closure<dyn FnMut(web_sys::MessageEvent)>,
    }

    impl Subscription {
        pub fn close(&self) {
            self.source.close();
        }
    }

    impl Drop for Subscription {
        fn drop(&mut self) {
            self.source.close();
        }
    }

    /// Calls `on_data` with the data of every `event` (or unnamed message, for `None`) from `url`.
    /// The browser reconnects by itself after a dropped connection; a stream that is finished
    /// (the server's `end` event) is closed instead, so that it is not replayed.
    pub fn subscribe(
        url: &str,
        event: Option<&str>,
        mut on_data: impl FnMut(String) + 'static,
    ) -> Option<Subscription> {
        let source = web_sys::EventSource::new(url).ok()?;
        let handler =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
                if let Some(text) = e.data().as_string() {
                    on_data(text);
                }
            });
        let _ = source.add_event_listener_with_callback(
            event.unwrap_or("message"),
            handler.as_ref().unchecked_ref(),
        );
        let closer = source.clone();
        let end =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |_: web_sys::MessageEvent| {
                closer.close();
            });
        let _ = source.add_event_listener_with_callback("end", end.as_ref().unchecked_ref());
        Some(Subscription {
            source,
            _handler: handler,
            _end: end,
        })
    }
}
