//! The rate limit at the HTTP edge: per remote address, on `/token`, `/introspect` and
//! `/revoke` (the budgets themselves are [`crate::limits`]'). The per-client limit is
//! charged later, once client authentication has said who the client is
//! (`grants::client_auth::authenticate`), so that nobody can spend another client's budget.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::Broker;
use crate::limits::{Kind, too_many};

/// Middleware on the limited endpoints: one request from the remote address.
pub async fn limit(State(b): State<Arc<Broker>>, req: Request, next: Next) -> Response {
    if b.limiter.limits_addresses()
        && let Some(addr) = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
        && let Err(wait) = b
            .limiter
            .check(
                b.store.as_ref(),
                b.clock.now(),
                Kind::Address,
                &addr,
                Instant::now(),
            )
            .await
    {
        return too_many(wait).into_response();
    }
    next.run(req).await
}
