//! Fuzzes the datagram decoder: no input may make it panic, and whatever it accepts must
//! re-encode to a datagram that decodes to the same value.
//!
//! `cargo +nightly fuzz run datagram` (from `messenger-core/`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use messenger_core::protocol::wire::Datagram;

fuzz_target!(|data: &[u8]| {
    if let Ok(datagram) = Datagram::decode(data) {
        let bytes = datagram
            .encode()
            .expect("a decoded datagram re-encodes (it is no larger than its input)");
        let again = Datagram::decode(&bytes).expect("a re-encoded datagram decodes");
        assert_eq!(again, datagram);
    }
});
