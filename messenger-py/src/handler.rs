//! The Python callbacks as the core's [`Handler`].
//!
//! The core calls the handler on the client's dispatcher thread, one call at a time, in
//! delivery order per group. Each call attaches that thread to Python, builds the argument and
//! calls the callback. An exception raised by a callback goes to the `on_error` hook when one
//! is given, else to `sys.unraisablehook` (`PyErr::write_unraisable`); either way the next
//! delivery goes on. While the interpreter shuts down, callbacks are skipped.

use messenger_core::{ClientEvent, GroupView, Handler, Message};
use pyo3::prelude::*;

use crate::types;

/// The callables given to `Client(...)`.
pub(crate) struct PyHandler {
    callbacks: Option<Callbacks>,
}

pub(crate) struct Callbacks {
    pub(crate) on_message: Option<Py<PyAny>>,
    pub(crate) on_view: Option<Py<PyAny>>,
    pub(crate) on_event: Option<Py<PyAny>>,
    pub(crate) on_error: Option<Py<PyAny>>,
}

impl PyHandler {
    pub(crate) fn new(callbacks: Callbacks) -> Self {
        PyHandler {
            callbacks: Some(callbacks),
        }
    }

    /// Calls the callback `pick` selects, if any, with the object `make` builds.
    fn call<F>(&self, pick: fn(&Callbacks) -> Option<&Py<PyAny>>, make: F)
    where
        F: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>,
    {
        let Some(callbacks) = &self.callbacks else {
            return;
        };
        let Some(callback) = pick(callbacks) else {
            return;
        };
        // `None` when the interpreter is finalizing: nobody is left to call.
        let _ = Python::try_attach(|py| {
            let callback = callback.bind(py);
            if let Err(err) = make(py).and_then(|arg| callback.call1((arg,))) {
                callbacks.report(py, err, callback);
            }
        });
    }
}

impl Callbacks {
    /// Hands a callback's exception to `on_error`, or to `sys.unraisablehook`.
    fn report(&self, py: Python<'_>, err: PyErr, callback: &Bound<'_, PyAny>) {
        match &self.on_error {
            Some(hook) => {
                let hook = hook.bind(py);
                if let Err(hook_err) = hook.call1((err.into_value(py),)) {
                    hook_err.write_unraisable(py, Some(hook));
                }
            }
            None => err.write_unraisable(py, Some(callback)),
        }
    }
}

impl Handler for PyHandler {
    fn on_message(&mut self, message: Message) {
        self.call(
            |c| c.on_message.as_ref(),
            |py| Ok(Bound::new(py, types::Message::from(message))?.into_any()),
        );
    }

    fn on_view(&mut self, view: GroupView) {
        self.call(
            |c| c.on_view.as_ref(),
            |py| Ok(Bound::new(py, types::GroupView::from(view))?.into_any()),
        );
    }

    fn on_event(&mut self, event: ClientEvent) {
        self.call(|c| c.on_event.as_ref(), |py| types::event_object(py, event));
    }
}

impl Drop for PyHandler {
    /// Releases the callables while attached, so they are freed now rather than whenever
    /// another thread next attaches (the dispatcher thread ends right after this).
    fn drop(&mut self) {
        if let Some(callbacks) = self.callbacks.take() {
            let _ = Python::try_attach(move |_py| drop(callbacks));
        }
    }
}
