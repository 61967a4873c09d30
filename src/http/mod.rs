//! The only axum user: the router, the strict form extractor, protocol endpoints, metadata
//! and JWKS, health, metrics, request ids.

pub mod admin;
pub mod demo_rs;
pub mod extract;
pub mod metrics;
pub mod require;
pub mod response;
pub mod token;
pub mod well_known;

mod middleware;
mod ops;

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, post};

use crate::app::Broker;
use crate::config::IssuerSettings;
use crate::oauth::OAuthError;

/// Build the whole router for a broker.
pub fn router(broker: Arc<Broker>) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    for iss in broker.issuers() {
        r = issuer_routes(r, &iss.settings);
    }
    r = r.merge(admin::router(broker.clone()));
    r = r.merge(crate::grants::access_request::routes(&broker));
    if broker.dev.is_some() {
        r = r.merge(crate::dev::routes(&broker));
    }
    r.fallback(ops::not_found)
        .layer(axum::middleware::from_fn_with_state(
            broker.clone(),
            middleware::observe,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            response::panic_response,
        ))
        .with_state(broker)
}

fn issuer_routes(r: Router<Arc<Broker>>, iss: &IssuerSettings) -> Router<Arc<Broker>> {
    let role = iss.role;
    let p = iss.path.as_str();
    let wk = crate::oauth::metadata::well_known_path(iss);
    let r = r
        .route(
            &format!("{p}/token"),
            post(move |s, req| token::token(s, role, req)).fallback(method_not_allowed),
        )
        .route(
            &format!("{p}/jwks.json"),
            get(move |s| well_known::jwks(s, role)),
        )
        .route(&wk, get(move |s| well_known::metadata(s, role)))
        .route(&format!("{p}/authorize"), any(well_known::authorize))
        .route(
            &format!("{p}/introspect"),
            post(move |s, req| token::introspect(s, role, req)).fallback(method_not_allowed),
        )
        .route(
            &format!("{p}/revoke"),
            post(move |s, req| token::revoke(s, role, req)).fallback(method_not_allowed),
        )
        .route(
            &format!("{p}/revocations"),
            get(move |s, q| token::revocation_feed(s, role, q)),
        );
    // Some clients append the well-known suffix to the issuer instead of inserting it
    // (OIDC style); serve the same document there too. For a root issuer they coincide.
    if p.is_empty() {
        r
    } else {
        r.route(
            &format!("{p}/.well-known/oauth-authorization-server"),
            get(move |s| well_known::metadata(s, role)),
        )
    }
}

/// RFC 6749 §3.2 (and RFC 7662 §2.1, RFC 7009 §2.1): these endpoints take POST only.
async fn method_not_allowed() -> OAuthError {
    let mut e = OAuthError::invalid_request("this endpoint accepts POST only").with_status(405);
    e.allow = Some("POST");
    e
}
