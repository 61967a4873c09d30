//! OAuth wire vocabulary: URNs, form parsing, the RFC 6749 error type, RFC 8414 metadata.
//!
//! Nothing here does I/O or knows about axum; `http/` renders these types.

pub mod client_auth;
pub mod error;
pub mod form;
pub mod issuer;
pub mod metadata;
pub mod urn;

pub use error::{ErrorCode, OAuthError};
pub use form::{FormError, FormLimits, FormParams};
