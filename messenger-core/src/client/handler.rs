//! The application's [`Handler`], and the dispatcher thread that calls it.

use super::delivery::{ClientEvent, GroupView, Message};

/// Receives deliveries, views and events, on the client's dispatcher thread.
///
/// Calls are serial, and for one group in delivery order. A callback may call into the client.
pub trait Handler: Send + 'static {
    fn on_message(&mut self, message: Message) {
        let _ = message;
    }
    fn on_view(&mut self, view: GroupView) {
        let _ = view;
    }
    fn on_event(&mut self, event: ClientEvent) {
        let _ = event;
    }
}

/// A handler that ignores everything.
impl Handler for () {}

type Callback<T> = Box<dyn FnMut(T) + Send>;

/// A [`Handler`] made of closures.
#[derive(Default)]
pub struct Callbacks {
    message: Option<Callback<Message>>,
    view: Option<Callback<GroupView>>,
    event: Option<Callback<ClientEvent>>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks").finish_non_exhaustive()
    }
}

impl Callbacks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn on_message(mut self, f: impl FnMut(Message) + Send + 'static) -> Self {
        self.message = Some(Box::new(f));
        self
    }

    pub fn on_view(mut self, f: impl FnMut(GroupView) + Send + 'static) -> Self {
        self.view = Some(Box::new(f));
        self
    }

    pub fn on_event(mut self, f: impl FnMut(ClientEvent) + Send + 'static) -> Self {
        self.event = Some(Box::new(f));
        self
    }
}

impl Handler for Callbacks {
    fn on_message(&mut self, message: Message) {
        if let Some(f) = &mut self.message {
            f(message)
        }
    }
    fn on_view(&mut self, view: GroupView) {
        if let Some(f) = &mut self.view {
            f(view)
        }
    }
    fn on_event(&mut self, event: ClientEvent) {
        if let Some(f) = &mut self.event {
            f(event)
        }
    }
}

/// What the dispatcher thread delivers to the handler.
pub(crate) enum Dispatch {
    Message(Message),
    View(GroupView),
    Event(ClientEvent),
    /// Everything one pass of the data task produced: one wake-up of the dispatcher thread
    /// instead of one per message.
    Batch(Vec<Dispatch>),
}

/// Runs the handler's callbacks on this thread until every sender is gone. A panicking
/// callback is reported and does not stop later deliveries.
pub(crate) fn run_dispatcher(mut handler: impl Handler, rx: std::sync::mpsc::Receiver<Dispatch>) {
    while let Ok(item) = rx.recv() {
        dispatch(&mut handler, item);
    }
}

fn dispatch(handler: &mut impl Handler, item: Dispatch) {
    let item = match item {
        Dispatch::Batch(items) => {
            for item in items {
                dispatch(handler, item);
            }
            return;
        }
        other => other,
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match item {
        Dispatch::Message(m) => handler.on_message(m),
        Dispatch::View(v) => handler.on_view(v),
        Dispatch::Event(e) => handler.on_event(e),
        Dispatch::Batch(_) => {}
    }));
    if result.is_err() {
        tracing::error!(target: "messenger::client", "a handler callback panicked; delivery goes on");
    }
}
