//! The pure core: no I/O, no clock, no randomness, no JOSE, web framework or store crates.
//!
//! It takes verified claims, a policy snapshot and `now`, and returns a decision or a typed
//! [`Rejection`]. Each grant maps rejections to wire errors in its own exhaustive `match`.
//!
//! - [`grant`]: the intersection, at both legs (agent's grant in the channel ∩ the human's
//!   entitlement ∩ the request, minus `never`; runtime grants within the file).
//! - [`approval`]: who may decide a just-in-time approval (four eyes, the approver list).
//! - [`validate`]: time and `jti` rules shared by every kind of JWT.
//! - [`access`]: what a resource server checks in a verified lanyard access token.
//! - [`claims`]: the claim sets lanyard reads and writes, as typed structs.
//! - [`rejection`]: the one vocabulary of refusals.
//!
//! Being pure is what lets these rules be tested a row per checklist line with a fixed
//! `now`, and what lets the grants call them from any thread without locks.

pub mod access;
pub mod approval;
pub mod claims;
pub mod grant;
pub mod rejection;
pub mod validate;

pub use rejection::Rejection;
