//! The agent-facing access-request routes under the IdP issuer's path (the rules are
//! [`crate::grants::access_request`]'s): `POST {p}/access-requests` with a form or a JSON
//! body, and `GET {p}/access-requests/{id}`, both with the agent's client authentication.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::token::{answer, request_headers};
use crate::app::Broker;
use crate::config::Role;
use crate::grants::access_request::{self, Ask};
use crate::oauth::{FormParams, OAuthError};

/// The routes, when the IdP role is served.
pub fn routes(b: &Broker) -> Router<Arc<Broker>> {
    let Some(iss) = b.issuer(Role::Idp) else {
        return Router::new();
    };
    let p = iss.settings.path.as_str();
    Router::new()
        .route(&format!("{p}/access-requests"), post(file))
        .route(&format!("{p}/access-requests/{{id}}"), get(status))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Read the body (form or JSON) and the form used for client authentication.
async fn read(b: &Broker, req: Request) -> Result<(HeaderMap, FormParams, Ask), OAuthError> {
    let (parts, body) = req.into_parts();
    let s = &b.settings;
    if is_json(&parts.headers) {
        let bytes = axum::body::to_bytes(body, s.max_body_bytes)
            .await
            .map_err(|_| {
                OAuthError::new(
                    crate::oauth::ErrorCode::PayloadTooLarge,
                    "request body too large",
                )
            })?;
        let ask: Ask = serde_json::from_slice(&bytes).map_err(|_| {
            OAuthError::invalid_request(
                "body must be a JSON object with channel, resource, actions",
            )
        })?;
        let none: [(&str, &str); 0] = [];
        return Ok((parts.headers, FormParams::from_pairs(none), ask));
    }
    let form = super::extract::oauth_form(&parts.headers, body, s.max_body_bytes, &s.form).await?;
    let one = |k: &str| {
        form.one(k)
            .map_err(|_| OAuthError::invalid_request("a parameter is repeated"))
            .map(|v| v.unwrap_or("").to_owned())
    };
    let ask = Ask {
        channel: one("channel")?,
        resource: one("resource")?,
        actions: one("actions")?
            .split(' ')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
        reason: Some(one("reason")?).filter(|r| !r.is_empty()),
    };
    Ok((parts.headers, form, ask))
}

async fn file(State(b): State<Arc<Broker>>, req: Request) -> Response {
    let r = async {
        let (headers, form, ask) = read(&b, req).await?;
        access_request::file(&b, &request_headers(&headers), &form, ask).await
    }
    .await;
    r.map_or_else(IntoResponse::into_response, answer)
}

async fn status(State(b): State<Arc<Broker>>, Path(id): Path<String>, req: Request) -> Response {
    access_request::status(&b, &id, &request_headers(req.headers()))
        .await
        .map_or_else(IntoResponse::into_response, answer)
}
