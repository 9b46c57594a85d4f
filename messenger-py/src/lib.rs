//! Python bindings over messenger-core. The PyO3 module arrives with the client (see the open
//! issues); the crate is in the workspace (outside `default-members`) so the layout is fixed.

pub use messenger_core::protocol::wire::VERSION as WIRE_VERSION;
