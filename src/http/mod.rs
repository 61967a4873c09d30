//! The only axum user: the router, the strict form extractor, protocol endpoints, metadata
//! and JWKS, health, metrics, request ids.

pub mod access;
pub mod admin;
pub mod demo_rs;
pub mod extract;
pub mod limits;
pub mod require;
pub mod response;
pub mod serve;
pub mod token;
pub mod well_known;

mod middleware;
mod ops;

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse as _;
use axum::routing::{any, get, post};

use crate::app::Broker;
use crate::config::IssuerSettings;
use crate::oauth::OAuthError;

/// Routes that share the broker as state, e.g. those dev mode adds.
pub type Routes = Router<Arc<Broker>>;

/// Build the whole router for a broker, with `extra` routes (dev mode's) merged in under the
/// same limits and middleware.
pub fn router(broker: Arc<Broker>, extra: Option<Routes>) -> Router {
    let mut r = Router::new();
    for iss in broker.issuers() {
        r = issuer_routes(r, &iss.settings, &broker);
    }
    r = r.merge(admin::router(broker.clone()));
    r = r.merge(access::routes(&broker));
    if let Some(extra) = extra {
        r = r.merge(extra);
    }
    // The cap on concurrent requests covers everything but the probes and metrics, so that
    // an overloaded replica is not restarted by its liveness probe.
    let cap = broker.settings.limits.max_concurrent_requests;
    let r = r
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(
                    |_: tower::BoxError| async {
                        OAuthError::unavailable("server busy; retry later", 1).into_response()
                    },
                ))
                .load_shed()
                // Global: `Router::layer` wraps each route separately, and one cap must
                // cover them all.
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(cap)),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
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

fn issuer_routes(
    r: Router<Arc<Broker>>,
    iss: &IssuerSettings,
    broker: &Arc<Broker>,
) -> Router<Arc<Broker>> {
    let role = iss.role;
    let limited = || axum::middleware::from_fn_with_state(broker.clone(), limits::limit);
    let p = iss.path.as_str();
    let wk = crate::oauth::metadata::well_known_path(iss);
    let r = r
        .route(
            &format!("{p}/token"),
            post(move |s, req| token::token(s, role, req))
                .fallback(method_not_allowed)
                .route_layer(limited()),
        )
        .route(
            &format!("{p}/jwks.json"),
            get(move |s| well_known::jwks(s, role)),
        )
        .route(&wk, get(move |s| well_known::metadata(s, role)))
        .route(&format!("{p}/authorize"), any(well_known::authorize))
        .route(
            &format!("{p}/introspect"),
            post(move |s, req| token::introspect(s, role, req))
                .fallback(method_not_allowed)
                .route_layer(limited()),
        )
        .route(
            &format!("{p}/revoke"),
            post(move |s, req| token::revoke(s, role, req))
                .fallback(method_not_allowed)
                .route_layer(limited()),
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
    let mut e = OAuthError::new(
        crate::oauth::ErrorCode::MethodNotAllowed,
        "this endpoint accepts POST only",
    );
    e.allow = Some("POST");
    e
}
