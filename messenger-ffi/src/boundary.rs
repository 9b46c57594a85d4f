//! The panic boundary every exported function body sits in: a panic must never unwind into C
//! (that aborts the process), so it becomes `MESSENGER_PANIC` with a message; a failure
//! becomes its code, and its message is kept for `messenger_last_error`.

use std::any::Any;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{messenger_result, set_last_error, Failure};

/// Runs an exported function's body: `ffi_panic_boundary! { ... }`. The body is a closure
/// (`return` and `?` leave the body) whose value is an [`Outcome`].
macro_rules! ffi_panic_boundary {
    ($($body:tt)*) => {
        $crate::boundary::catch(move || { $($body)* })
    };
}

/// What a body returns, and what the exported function returns for it and for a panic.
pub(crate) trait Outcome {
    type Ret;
    fn finish(self) -> Self::Ret;
    fn panicked() -> Self::Ret;
}

/// Most functions: success, or a failure recorded as the thread's last error.
impl Outcome for Result<(), Failure> {
    type Ret = messenger_result;
    fn finish(self) -> messenger_result {
        match self {
            Ok(()) => messenger_result::MESSENGER_OK,
            Err(failure) => {
                set_last_error(&failure.message);
                failure.code
            }
        }
    }
    fn panicked() -> messenger_result {
        messenger_result::MESSENGER_PANIC
    }
}

/// `*_free` functions return nothing.
impl Outcome for () {
    type Ret = ();
    fn finish(self) {}
    fn panicked() {}
}

/// `messenger_last_error`: a failure to copy the message must not replace the message.
pub(crate) struct Quiet(pub(crate) Result<(), Failure>);

impl Outcome for Quiet {
    type Ret = messenger_result;
    fn finish(self) -> messenger_result {
        match self.0 {
            Ok(()) => messenger_result::MESSENGER_OK,
            Err(failure) => failure.code,
        }
    }
    fn panicked() -> messenger_result {
        messenger_result::MESSENGER_PANIC
    }
}

/// Functions that return a static string; NULL on a panic.
pub(crate) struct Static(pub(crate) *const c_char);

impl Outcome for Static {
    type Ret = *const c_char;
    fn finish(self) -> *const c_char {
        self.0
    }
    fn panicked() -> *const c_char {
        std::ptr::null()
    }
}

pub(crate) fn catch<O: Outcome>(body: impl FnOnce() -> O) -> O::Ret {
    // Unwind safety: after a panic the only state the caller can observe is through handles,
    // whose shared parts are behind mutexes that tolerate poisoning; the call reports
    // MESSENGER_PANIC and the handle may still be freed.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(outcome) => outcome.finish(),
        Err(payload) => {
            set_last_error(&format!(
                "the messenger library panicked (a bug): {}",
                panic_message(payload.as_ref())
            ));
            O::panicked()
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "no message"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::last_error;

    #[test]
    fn a_panic_becomes_a_result_and_a_message() {
        let r: messenger_result = ffi_panic_boundary! {
            if true {
                panic!("boom {}", 7);
            }
            Ok::<(), Failure>(())
        };
        assert_eq!(r, messenger_result::MESSENGER_PANIC);
        assert!(last_error().contains("boom 7"), "{}", last_error());
    }

    #[test]
    fn a_failure_is_recorded_and_quiet_ones_are_not() {
        let r = catch(|| -> Result<(), Failure> { Err(Failure::null("group")) });
        assert_eq!(r, messenger_result::MESSENGER_NULL_ARGUMENT);
        assert_eq!(last_error(), "group is NULL");
        let r = catch(|| Quiet(Err(Failure::invalid("not recorded"))));
        assert_eq!(r, messenger_result::MESSENGER_INVALID_ARGUMENT);
        assert_eq!(last_error(), "group is NULL");
        let ok = catch(|| -> Result<(), Failure> { Ok(()) });
        assert_eq!(ok, messenger_result::MESSENGER_OK);
        assert_eq!(
            last_error(),
            "group is NULL",
            "success leaves the message alone"
        );
    }
}
