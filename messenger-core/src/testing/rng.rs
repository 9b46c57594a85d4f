//! The simulations' random numbers: the crate's [`Rng`] (SplitMix64), so a
//! seed replays exactly on every platform.

pub use crate::rng::Rng;
