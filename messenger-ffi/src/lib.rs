//! C API over messenger-core. The exported functions arrive with the runtime and the client
//! (see the open issues); this crate builds the library artifacts the C tests will link.

pub use messenger_core::protocol::wire::VERSION as WIRE_VERSION;
