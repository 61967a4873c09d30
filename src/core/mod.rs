//! The pure core: no I/O, no clock, no randomness, no JOSE, web framework or store crates.
//!
//! It takes verified claims, a policy snapshot and `now`, and returns a decision or a typed
//! [`Rejection`]. Each grant maps rejections to wire errors in its own exhaustive `match`.

pub mod access;
pub mod approval;
pub mod claims;
pub mod grant;
pub mod rejection;
pub mod validate;

pub use rejection::Rejection;
