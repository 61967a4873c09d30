//! A tower layer for resource servers: each route names the one action it needs, and the
//! layer lets a request through only with a lanyard access token that grants it.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use axum::{Router, routing::get, Extension};
//! # use lanyard::http::require::{Guard, RequireAction};
//! # use lanyard::core::access::Principal;
//! # fn demo(guard: Arc<Guard>) -> Router {
//! Router::new().route(
//!     "/repos/acme/api",
//!     get(|Extension(who): Extension<Principal>| async move { who.human })
//!         .layer(RequireAction::new(guard, "repo.read")),
//! )
//! # }
//! ```
//!
//! Answers (RFC 6750 §3, RFC 9449 §7.1, MCP 2025-11-25 authorization):
//! - no credentials: 401 with a `Bearer` and a `DPoP` challenge, no error code;
//! - a bad token or binding: 401 `invalid_token` (`invalid_dpop_proof` for a bad proof) in
//!   the challenge of the scheme that was used;
//! - a good token without the action: 403 `insufficient_scope` with `scope` naming it;
//! - malformed `Authorization`: 400 `invalid_request`;
//! - lanyard's keys unreachable: 503, nothing accepted.
//!
//! Every challenge carries `resource_metadata` (RFC 9728) so that clients can discover the
//! authorization server. The verified [`Principal`] is put into the request's extensions.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::{Layer, Service};

use crate::core::access::Principal;
use crate::crypto::dpop::DPOP_ALGS;
use crate::verifier::{Presented, Scheme, Verifier, VerifyError};

/// A resource server's verifier plus what its challenges need.
#[derive(Debug)]
pub struct Guard {
    /// The token verifier.
    pub verifier: Verifier,
    /// The origin clients use to reach this server (`https://mcp.example`), for DPoP `htu`
    /// when the server sits behind a proxy. The request path is appended.
    pub public_origin: String,
    /// The URL of this resource's RFC 9728 metadata, named in every challenge.
    pub resource_metadata: String,
}

/// Why a request was refused, rendered as the right status and challenge.
#[derive(Debug)]
pub struct Denial {
    status: StatusCode,
    scheme: Option<Scheme>,
    error: Option<&'static str>,
    description: Option<&'static str>,
    scope: Option<String>,
    resource_metadata: String,
}

fn quote(s: &str) -> String {
    // Challenge parameters are quoted-strings; our values never contain quotes or
    // backslashes, but escape them anyway so a configured URL cannot break the header.
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Denial {
    fn challenge(&self, scheme: Scheme) -> String {
        let mut parts = Vec::new();
        if scheme == Scheme::DPoP {
            parts.push(format!("algs=\"{}\"", DPOP_ALGS.join(" ")));
        }
        if let Some(e) = self.error {
            parts.push(format!("error=\"{e}\""));
        }
        if let Some(d) = self.description {
            parts.push(format!("error_description=\"{}\"", quote(d)));
        }
        if let Some(s) = &self.scope {
            parts.push(format!("scope=\"{}\"", quote(s)));
        }
        parts.push(format!(
            "resource_metadata=\"{}\"",
            quote(&self.resource_metadata)
        ));
        let name = match scheme {
            Scheme::Bearer => "Bearer",
            Scheme::DPoP => "DPoP",
        };
        format!("{name} {}", parts.join(", "))
    }
}

impl IntoResponse for Denial {
    fn into_response(self) -> Response {
        let body = match self.error {
            Some(e) => json!({ "error": e, "error_description": self.description }),
            None => {
                json!({ "error": "unauthorized", "error_description": "an access token is required" })
            }
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        let schemes: &[Scheme] = match self.scheme {
            Some(s) => &[s][..],
            None => &[Scheme::Bearer, Scheme::DPoP][..],
        };
        if self.status != StatusCode::SERVICE_UNAVAILABLE {
            for s in schemes {
                if let Ok(v) = HeaderValue::from_str(&self.challenge(*s)) {
                    h.append(header::WWW_AUTHENTICATE, v);
                }
            }
        } else {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

impl Guard {
    fn deny(
        &self,
        status: StatusCode,
        scheme: Option<Scheme>,
        error: Option<&'static str>,
        description: Option<&'static str>,
    ) -> Denial {
        Denial {
            status,
            scheme,
            error,
            description,
            scope: None,
            resource_metadata: self.resource_metadata.clone(),
        }
    }

    /// Authenticate a request and check it may perform `action`.
    pub async fn check(&self, req: &Parts, action: &str) -> Result<Principal, Denial> {
        let headers = &req.headers;
        let mut auth = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (auth.next(), auth.next()) else {
            return Err(if headers.contains_key(header::AUTHORIZATION) {
                self.deny(
                    StatusCode::BAD_REQUEST,
                    None,
                    Some("invalid_request"),
                    Some("one Authorization header expected"),
                )
            } else {
                self.deny(StatusCode::UNAUTHORIZED, None, None, None)
            });
        };
        let malformed = || {
            self.deny(
                StatusCode::BAD_REQUEST,
                None,
                Some("invalid_request"),
                Some("malformed Authorization header"),
            )
        };
        let value = value.to_str().map_err(|_| malformed())?;
        let (name, token) = value.split_once(' ').ok_or_else(malformed)?;
        let scheme = if name.eq_ignore_ascii_case("bearer") {
            Scheme::Bearer
        } else if name.eq_ignore_ascii_case("dpop") {
            Scheme::DPoP
        } else {
            // An unknown scheme is the same as no credentials (RFC 7235 §2.1).
            return Err(self.deny(StatusCode::UNAUTHORIZED, None, None, None));
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(malformed());
        }
        let proofs: Vec<&str> = headers
            .get_all("dpop")
            .iter()
            .map(|v| v.to_str().unwrap_or(""))
            .collect();
        let path = req
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| req.uri.path(), |u| u.0.path());
        let url = format!("{}{path}", self.public_origin.trim_end_matches('/'));
        let principal = self
            .verifier
            .verify(Presented {
                scheme,
                token,
                proofs: &proofs,
                method: req.method.as_str(),
                url: &url,
            })
            .await
            .map_err(|e| {
                tracing::info!(error = %e, "access token refused");
                match e {
                    VerifyError::InvalidToken(_) => self.deny(
                        StatusCode::UNAUTHORIZED,
                        Some(scheme),
                        Some("invalid_token"),
                        Some("the access token is not valid here"),
                    ),
                    VerifyError::InvalidProof(_) => self.deny(
                        StatusCode::UNAUTHORIZED,
                        Some(Scheme::DPoP),
                        Some("invalid_dpop_proof"),
                        Some("the DPoP proof is not valid"),
                    ),
                    VerifyError::KeysUnavailable => self.deny(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some(scheme),
                        Some("temporarily_unavailable"),
                        Some("the authorization server's keys cannot be obtained"),
                    ),
                }
            })?;
        if !principal.allows(action) {
            tracing::info!(human = %principal.human, agent = %principal.agent, action, "action not granted");
            let mut d = self.deny(
                StatusCode::FORBIDDEN,
                Some(scheme),
                Some("insufficient_scope"),
                Some("the access token does not grant this action"),
            );
            d.scope = Some(action.to_owned());
            return Err(d);
        }
        Ok(principal)
    }
}

/// A layer requiring one action on every request it wraps.
#[derive(Debug, Clone)]
pub struct RequireAction {
    guard: Arc<Guard>,
    action: Arc<str>,
}

impl RequireAction {
    /// Require `action`, checked by `guard`.
    pub fn new(guard: Arc<Guard>, action: &str) -> Self {
        Self {
            guard,
            action: action.into(),
        }
    }
}

impl<S> Layer<S> for RequireAction {
    type Service = RequireActionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireActionService {
            inner,
            guard: self.guard.clone(),
            action: self.action.clone(),
        }
    }
}

/// The service [`RequireAction`] wraps around a handler.
#[derive(Debug, Clone)]
pub struct RequireActionService<S> {
    inner: S,
    guard: Arc<Guard>,
    action: Arc<str>,
}

impl<S> Service<Request> for RequireActionService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        let action = self.action.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            match guard.check(&parts, &action).await {
                Ok(p) => {
                    parts.extensions.insert(p);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(d) => Ok(d.into_response()),
            }
        })
    }
}
