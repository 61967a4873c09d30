//! One module per grant type, each with the same shape: `GRANT_TYPE`, `Params`,
//! `handle(…)`, `reject(Rejection) -> OAuthError`. Dispatch is a closed enum.

pub mod client_auth;
pub mod token_exchange;

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;

use crate::app::{Broker, IssuerRuntime};
use crate::http::token::GrantType;
use crate::oauth::{FormParams, OAuthError};

/// Authenticate the client, then run the grant.
pub async fn dispatch(
    b: &Arc<Broker>,
    iss: &IssuerRuntime,
    grant: GrantType,
    headers: &HeaderMap,
    form: FormParams,
) -> Result<Response, OAuthError> {
    let now = b.clock.now();
    let active = b.policy.load_full();
    let client = client_auth::authenticate(b, iss, &active, headers, &form, now).await?;
    match grant {
        GrantType::TokenExchange => {
            token_exchange::handle(b, iss, &active, client, headers, &form, now).await
        }
        GrantType::JwtBearer => Err(OAuthError::new(
            crate::oauth::ErrorCode::UnauthorizedClient,
            "not yet",
        )),
    }
}
