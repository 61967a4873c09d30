//! One module per grant type, each with the same shape.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;

use crate::app::{Broker, IssuerRuntime};
use crate::http::token::GrantType;
use crate::oauth::{FormParams, OAuthError};

/// Run the grant.
pub async fn dispatch(
    _b: &Arc<Broker>,
    _iss: &IssuerRuntime,
    _grant: GrantType,
    _headers: &HeaderMap,
    _form: FormParams,
) -> Result<Response, OAuthError> {
    Err(OAuthError::invalid_client("client authentication required"))
}
