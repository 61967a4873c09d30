//! The human control plane's admin API, `/admin/v1/…` (JSON).
//!
//! **Who may call it.** A human, with `Authorization: Bearer <ID token>` from a trusted
//! enterprise `[[idp]]` of the policy, issued to lanyard's console client there
//! (`[control_plane] client_ids`), validated like any subject token (pinned algorithm,
//! issuer keys, times, `aud`, `max_age`). Roles come from the policy's `[control_plane]`
//! lists matched against the IdP's groups claim or the user's names. **Every agent
//! credential is refused on every route**: client authentication (Basic, form secrets,
//! client assertions), DPoP, an ID-JAG or a lanyard access token — one layer in front of
//! the whole admin router does this, so a new route cannot escape it (a test walks
//! [`ROUTES`]).
//!
//! **Kill switches** (admins; each takes effect at once for new requests and kills every
//! live token in its scope, also at offline resource servers that follow the revocation
//! feed):
//! - `POST /admin/v1/agents/{id}/disable` `{"reason"}`: the agent gets 401 `invalid_client`
//!   everywhere; its tokens are dead. `POST …/enable` lifts it (older tokens stay dead).
//! - `POST /admin/v1/agents/{id}/channel-grants/withdraw` `{"channel", "reason"}`: no token
//!   for that agent in that channel; its tokens there are dead. `…/restore` lifts it.
//! - `POST /admin/v1/tokens/revoke` `{"token"}` (an ID-JAG or access token lanyard issued)
//!   or `{"jti"}`: that token is dead.
//!
//! Reads: `GET /admin/v1/whoami`, `GET /admin/v1/agents` (owner, grants, live runtime
//! grants, state),
//! `GET /admin/v1/revocations` (admins and auditors).
//!
//! **Access requests** (see [`crate::grants::access_request`]; any control-plane role
//! reads, admins and approvers decide): `GET /admin/v1/access-requests?owner=&agent=&status=`,
//! `GET …/{id}`, `POST …/{id}/approve` `{"expires_in"?, "actions"? (a subset), "reason"?}`
//! (makes a runtime `extend` grant), `POST …/{id}/deny` `{"reason"?}`.
//!
//! **Runtime grants** (admins; see [`crate::grants::runtime`]): time-bound changes to an
//! agent's channel grant that only narrow or extend within the policy file.
//! `POST /admin/v1/agents/{id}/runtime-grants` `{"channel", "resource", "actions",
//! "effect": "extend"|"narrow", "expires_in"?, "reason"?}` (default lifetime
//! `runtime_grants.default_ttl`, at most `runtime_grants.max_ttl`);
//! `POST …/runtime-grants/withdraw` `{"grant_id", "reason"?}`;
//! `GET /admin/v1/runtime-grants?agent=` (admins and auditors).
//!
//! **Audit query** (admins and auditors): `GET /admin/v1/audit?human=&agent=&channel=
//! &decision=&since=&until=&after=&limit=` answers `{"records": [...], "next_after": n}`:
//! matching records oldest first, each with its chain position `seq` and `hash`, exactly as
//! `lanyard audit export` writes them (same filter, same redaction). `since`/`until` are unix
//! seconds or RFC 3339 (`since` inclusive, `until` exclusive); `limit` defaults to 100 (at
//! most 1000); `next_after` is set when more records may match — pass it as `after`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::Broker;
use crate::audit;
use crate::config::Role;
use crate::crypto::verify;
use crate::grants::access_request;
use crate::grants::approval::{self, ApprovalRecord};
use crate::grants::{token_exchange, token_status};
use crate::oauth::{ErrorCode, OAuthError};
use crate::policy::HumanMatch;
use crate::store::{Revocation, RevocationSubject};

mod access;
mod agents;
mod approvals;
mod audit_log;
mod runtime;

use access::*;
use agents::*;
use approvals::*;
use audit_log::*;
use runtime::*;

/// Every admin route: method and path. The router is built from this table, and a test
/// sends agent credentials to each entry.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/v1/whoami"),
    ("GET", "/admin/v1/agents"),
    ("POST", "/admin/v1/agents/{id}/disable"),
    ("POST", "/admin/v1/agents/{id}/enable"),
    ("POST", "/admin/v1/agents/{id}/channel-grants/withdraw"),
    ("POST", "/admin/v1/agents/{id}/channel-grants/restore"),
    ("POST", "/admin/v1/tokens/revoke"),
    ("GET", "/admin/v1/revocations"),
    ("GET", "/admin/v1/approvals"),
    ("GET", "/admin/v1/approvals/{id}"),
    ("POST", "/admin/v1/approvals/{id}/approve"),
    ("POST", "/admin/v1/approvals/{id}/deny"),
    ("GET", "/admin/v1/audit"),
    ("GET", "/admin/v1/access-requests"),
    ("GET", "/admin/v1/access-requests/{id}"),
    ("POST", "/admin/v1/access-requests/{id}/approve"),
    ("POST", "/admin/v1/access-requests/{id}/deny"),
    ("GET", "/admin/v1/runtime-grants"),
    ("POST", "/admin/v1/agents/{id}/runtime-grants"),
    ("POST", "/admin/v1/agents/{id}/runtime-grants/withdraw"),
];

/// A control-plane role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRole {
    /// Changes agents, grants, revocations.
    Admin,
    /// Decides approvals and access requests.
    Approver,
    /// Reads the audit trail.
    Auditor,
}

/// The signed-in human, put into request extensions by the authentication layer.
#[derive(Debug, Clone)]
pub struct Operator {
    /// Their subject.
    pub sub: String,
    /// Their roles.
    pub roles: Vec<AdminRole>,
    /// Their names and groups, for per-approval approver lists.
    pub human: crate::core::grant::Human,
}

impl Operator {
    fn require(&self, role: AdminRole) -> Result<(), OAuthError> {
        if self.roles.contains(&role) {
            Ok(())
        } else {
            Err(OAuthError::new(
                ErrorCode::InsufficientScope,
                "this operation needs another control-plane role",
            ))
        }
    }
}

/// The admin router (mounted at the server root).
pub fn router(broker: Arc<Broker>) -> Router<Arc<Broker>> {
    let mut r = Router::new();
    for &(method, path) in ROUTES {
        let m = match (method, path) {
            (_, "/admin/v1/whoami") => get(whoami),
            (_, "/admin/v1/agents") => get(agents),
            (_, "/admin/v1/agents/{id}/disable") => post(disable),
            (_, "/admin/v1/agents/{id}/enable") => post(enable),
            (_, "/admin/v1/agents/{id}/channel-grants/withdraw") => post(withdraw),
            (_, "/admin/v1/agents/{id}/channel-grants/restore") => post(restore),
            (_, "/admin/v1/tokens/revoke") => post(revoke_token),
            (_, "/admin/v1/approvals") => get(list_approvals),
            (_, "/admin/v1/approvals/{id}") => get(show_approval),
            (_, "/admin/v1/approvals/{id}/approve") => post(approve),
            (_, "/admin/v1/approvals/{id}/deny") => post(deny),
            (_, "/admin/v1/audit") => get(audit_query),
            (_, "/admin/v1/access-requests") => get(list_access_requests),
            (_, "/admin/v1/access-requests/{id}") => get(show_access_request),
            (_, "/admin/v1/access-requests/{id}/approve") => post(approve_access_request),
            (_, "/admin/v1/access-requests/{id}/deny") => post(deny_access_request),
            (_, "/admin/v1/runtime-grants") => get(list_runtime_grants),
            (_, "/admin/v1/agents/{id}/runtime-grants") => post(add_runtime_grant),
            (_, "/admin/v1/agents/{id}/runtime-grants/withdraw") => post(withdraw_runtime_grant),
            _ => get(revocations),
        };
        r = r.route(path, m);
    }
    r.route_layer(axum::middleware::from_fn_with_state(broker, authenticate))
}

fn refuse(description: &'static str) -> Response {
    OAuthError::new(ErrorCode::InvalidToken, description)
        .with_challenge("Bearer realm=\"lanyard-admin\"")
        .into_response()
}

/// The one gate in front of every admin route.
async fn authenticate(State(b): State<Arc<Broker>>, mut req: Request, next: Next) -> Response {
    match human(&b, req.headers()).await {
        Ok(op) => {
            req.extensions_mut().insert(op);
            next.run(req).await
        }
        Err(resp) => resp,
    }
}

async fn human(b: &Broker, headers: &HeaderMap) -> Result<Operator, Response> {
    // Agent credentials are never admin credentials, whatever else the request holds.
    if headers.contains_key("dpop") {
        return Err(refuse(
            "admin routes take a human's ID token, not agent credentials",
        ));
    }
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (auth.next(), auth.next()) else {
        return Err(refuse("a human's ID token is required"));
    };
    let value = value.to_str().unwrap_or("");
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(refuse("a human's ID token is required"));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(refuse(
            "admin routes take a human's ID token, not agent credentials",
        ));
    }
    let token = token.trim();
    // A lanyard token (ID-JAG or access token) names an agent; refuse it before anything else.
    if let Ok(jws) = verify::parse(token)
        && (jws.header.typ_is("oauth-id-jag+jwt") || jws.header.typ_is("at+jwt"))
    {
        return Err(refuse(
            "admin routes take a human's ID token, not agent credentials",
        ));
    }
    let now = b.clock.now();
    let active = b.policy.load_full();
    let Some(cp) = active.policy.control_plane() else {
        return Err(refuse(
            "the policy has no [control_plane]; the admin API is closed",
        ));
    };
    let subject = token_exchange::verify_id_token(b, &active, token, now, |idp| {
        cp.client_ids.get(&idp.id).cloned()
    })
    .await
    .map_err(|r| {
        tracing::info!(reason = %r, "admin authentication refused");
        match r {
            crate::core::Rejection::KeysUnavailable => {
                OAuthError::unavailable("identity provider keys unavailable", 2).into_response()
            }
            _ => refuse("the ID token is not valid for the admin API"),
        }
    })?;
    let has = |list: &[HumanMatch]| list.iter().any(|m| subject.human.matches(m));
    let mut roles = Vec::new();
    if has(&cp.admins) {
        roles.push(AdminRole::Admin);
    }
    if has(&cp.approvers) {
        roles.push(AdminRole::Approver);
    }
    if has(&cp.auditors) {
        roles.push(AdminRole::Auditor);
    }
    if roles.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "this human has no control-plane role",
        )
        .into_response());
    }
    Ok(Operator {
        sub: subject.human.sub.clone(),
        roles,
        human: subject.human,
    })
}

fn ok(v: Value) -> Response {
    crate::http::response::no_store_json(StatusCode::OK, v.to_string().into_bytes())
}

fn unavailable(e: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "store unavailable for an admin operation");
    OAuthError::unavailable("try again later", 1)
}

fn not_found() -> OAuthError {
    OAuthError::new(crate::oauth::ErrorCode::NotFound, "no such agent")
}

async fn whoami(axum::Extension(op): axum::Extension<Operator>) -> Response {
    let roles: Vec<&str> = op
        .roles
        .iter()
        .map(|r| match r {
            AdminRole::Admin => "admin",
            AdminRole::Approver => "approver",
            AdminRole::Auditor => "auditor",
        })
        .collect();
    ok(json!({ "sub": op.sub, "roles": roles }))
}
