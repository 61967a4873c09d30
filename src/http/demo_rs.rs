//! A demo resource server: a tiny GitHub-like API where every route needs exactly one
//! action, enforced with [`RequireAction`]. `examples/resource_server.rs` serves it on its
//! own port; `serve --dev` mounts it under `/dev-rs/github`.

use std::sync::Arc;

use axum::routing::{MethodRouter, get, post, put};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use super::require::{Guard, RequireAction};
use crate::core::access::Principal;
use crate::crypto::dpop::DPOP_ALGS;

/// The demo's routes: method, path, the one action each needs.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/repos/acme/api", "repo.read"),
    ("POST", "/repos/acme/api/issues/1/comments", "issue.comment"),
    ("POST", "/repos/acme/api/pulls", "pull_request.create"),
    ("PUT", "/repos/acme/api/pulls/1/merge", "pull_request.merge"),
];

/// Path of the RFC 9728 metadata, relative to the demo's base URL.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The demo router. `resource_name` is shown in its RFC 9728 metadata.
pub fn router(guard: Arc<Guard>, resource_name: &str) -> Router {
    let mut r = Router::new();
    for &(method, path, action) in ROUTES {
        let handler = move |Extension(who): Extension<Principal>| async move {
            Json(json!({
                "ok": true,
                "action": action,
                "human": who.human,
                "agent": who.agent,
                "channel": who.channel,
                "token_id": who.token_id,
                "approval": who.approval,
            }))
        };
        let m: MethodRouter = match method {
            "GET" => get(handler),
            "PUT" => put(handler),
            _ => post(handler),
        };
        r = r.route(path, m.layer(RequireAction::new(guard.clone(), action)));
    }
    let metadata = protected_resource_metadata(&guard, resource_name);
    r.route(METADATA_PATH, get(move || async move { Json(metadata) }))
}

/// RFC 9728 §2 protected-resource metadata for the demo.
pub fn protected_resource_metadata(guard: &Guard, resource_name: &str) -> Value {
    let cfg = guard.verifier.config();
    let mut scopes: Vec<&str> = ROUTES.iter().map(|r| r.2).collect();
    scopes.dedup();
    json!({
        "resource": cfg.audience,
        "resource_name": resource_name,
        "authorization_servers": [cfg.issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": scopes,
        "dpop_signing_alg_values_supported": DPOP_ALGS,
        "dpop_bound_access_tokens_required": cfg.require_dpop,
    })
}
