//! Turning C arguments into Rust values: handles, strings, addresses, output pointers. Every
//! NULL check and UTF-8 check happens here, before a call has any effect.

use std::ffi::{c_char, CStr, CString};
use std::net::{SocketAddr, ToSocketAddrs};

use crate::error::{messenger_result, Failure};

/// A handle the caller passes in.
///
/// # Safety
///
/// `ptr` is NULL or points to a live `T` made by this library, not freed, for `'a`.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: non-NULL pointers are live handles (the function's contract).
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated (the function's contract).
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes
        .to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// An optional string argument: NULL means none.
///
/// # Safety
///
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(
    ptr: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: the caller's contract is ours.
        unsafe { str_arg(ptr, what) }.map(Some)
    }
}

/// A socket address as `IP:PORT` (`127.0.0.1:0`, `[::1]:5000`) or `HOST:PORT` (resolved,
/// first address).
pub(crate) fn address(text: &str, what: &str) -> Result<SocketAddr, Failure> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let invalid = |why: String| {
        Failure::invalid(format!(
            "{what} {text:?} is not an address of the form IP:PORT or HOST:PORT ({why})"
        ))
    };
    match text.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| invalid("the name has no address".into())),
        Err(e) => Err(invalid(e.to_string())),
    }
}

/// A non-NULL output pointer, checked before the call does anything.
pub(crate) fn out_ptr<T>(ptr: *mut T, what: &str) -> Result<*mut T, Failure> {
    if ptr.is_null() {
        Err(Failure::null(what))
    } else {
        Ok(ptr)
    }
}

/// A bytes argument (`bytes` may be NULL when `len` is 0).
///
/// # Safety
///
/// `bytes` points to `len` readable bytes, valid for `'a`, or is NULL.
pub(crate) unsafe fn bytes_arg<'a>(bytes: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if bytes.is_null() {
        return Err(Failure::null("bytes"));
    }
    // SAFETY: `len` readable bytes at `bytes` (the function's contract); the slice is only
    // read during the call.
    Ok(unsafe { std::slice::from_raw_parts(bytes, len) })
}

/// Copies `text` and a NUL into the caller's buffer (see `messenger_last_error` for the
/// rules every string output follows).
///
/// # Safety
///
/// `buf` is NULL or writable for `len` bytes; `out_len` is NULL or writable.
pub(crate) unsafe fn write_str(
    text: &str,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> Result<(), Failure> {
    if buf.is_null() && len > 0 {
        return Err(Failure::null("buf"));
    }
    let needed = text.len();
    if needed >= len {
        if !out_len.is_null() {
            // SAFETY: `out_len` is writable (the function's contract).
            unsafe { out_len.write(needed) };
        }
        return Err(Failure::new(
            messenger_result::MESSENGER_BUFFER_TOO_SMALL,
            format!(
                "a buffer of {len} bytes is too small: {} are needed",
                needed + 1
            ),
        ));
    }
    // SAFETY: `buf` has `len > needed` writable bytes, and `text` does not overlap a buffer
    // the caller owns.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), needed);
        buf.add(needed).write(0);
    }
    if !out_len.is_null() {
        // SAFETY: `out_len` is writable (the function's contract).
        unsafe { out_len.write(needed) };
    }
    Ok(())
}

/// A C string of text that comes from the tracker or a peer: names and group names cannot
/// contain NUL (the tracker refuses control characters), but a NUL is replaced rather than
/// trusted.
pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text)
        .unwrap_or_else(|_| CString::new(text.replace('\0', "\u{FFFD}")).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_fit_or_tell_the_size_needed() {
        let mut buf = [0x55 as c_char; 6];
        let mut len = 99usize;
        // SAFETY: a local buffer of 6 bytes and a local length.
        let r = unsafe { write_str("hello", buf.as_mut_ptr(), buf.len(), &mut len) };
        assert_eq!(r, Ok(()));
        assert_eq!(len, 5);
        // SAFETY: NUL-terminated just above.
        let written = unsafe { CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(written.to_str(), Ok("hello"));

        let mut small = [0x55 as c_char; 5];
        // SAFETY: as above.
        let r = unsafe { write_str("hello", small.as_mut_ptr(), small.len(), &mut len) };
        assert_eq!(
            r.map_err(|f| f.code),
            Err(messenger_result::MESSENGER_BUFFER_TOO_SMALL)
        );
        assert_eq!(len, 5);
        assert!(small.iter().all(|b| *b == 0x55), "nothing written");

        // SAFETY: a NULL buffer of length 0 is a size query.
        let r = unsafe { write_str("hey", std::ptr::null_mut(), 0, &mut len) };
        assert!(r.is_err());
        assert_eq!(len, 3);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            address("127.0.0.1:0", "bind"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 0)))
        );
        assert!(address("localhost:5000", "tracker").is_ok());
        let e = address("nowhere", "tracker").expect_err("no port");
        assert_eq!(e.code, messenger_result::MESSENGER_INVALID_ARGUMENT);
        assert!(e.message.contains("\"nowhere\""), "{}", e.message);
    }

    #[test]
    fn strings_in() {
        let s = c"grüße";
        // SAFETY: a static C string.
        assert_eq!(unsafe { str_arg(s.as_ptr(), "group") }, Ok("grüße"));
        let bad = [0xffu8 as c_char, 0];
        // SAFETY: a local NUL-terminated array.
        let e = unsafe { str_arg(bad.as_ptr(), "group") }.expect_err("not UTF-8");
        assert_eq!(e.code, messenger_result::MESSENGER_INVALID_ARGUMENT);
        // SAFETY: NULL is allowed.
        let e = unsafe { str_arg(std::ptr::null(), "group") }.expect_err("NULL");
        assert_eq!(e.code, messenger_result::MESSENGER_NULL_ARGUMENT);
        assert_eq!(c_string("a\0b").as_bytes(), "a\u{FFFD}b".as_bytes());
    }
}
