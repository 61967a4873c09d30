//! One module per grant type, each with the same shape: `GRANT_TYPE`, `Params`,
//! `handle(…)`, `reject(Rejection) -> OAuthError`. Dispatch is a closed enum.

pub mod access_request;
pub mod approval;
pub mod client_auth;
pub mod cx;
pub mod dpop;
pub mod introspection;
pub mod jwt_bearer;
pub mod revocation;
pub mod runtime;
pub mod token_exchange;
pub mod token_status;

use crate::audit;
use crate::clock::UnixTime;
use crate::config::Role;
use crate::core::Rejection;
use crate::oauth::{ErrorCode, FormParams, OAuthError, urn};
use cx::{GrantCx, IssuerRuntime};

/// The grant types lanyard knows; each role serves one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// RFC 8693, at the IdP role.
    TokenExchange,
    /// RFC 7523, at the resource-AS role.
    JwtBearer,
}

impl GrantType {
    /// The grant type `value` names at the issuer playing `role`, if that issuer serves it.
    pub fn for_role(role: Role, value: &str) -> Option<Self> {
        match (role, value) {
            (Role::Idp, urn::GRANT_TOKEN_EXCHANGE) => Some(Self::TokenExchange),
            (Role::AuthorizationServer, urn::GRANT_JWT_BEARER) => Some(Self::JwtBearer),
            _ => None,
        }
    }
}

/// What a grant reads of a request besides its form: the two credential headers. The HTTP
/// layer fills it in; nothing here knows HTTP types.
#[derive(Debug, Clone, Default)]
pub struct RequestHeaders {
    /// The first `Authorization` header; a value that is not visible ASCII is kept as
    /// `"\0"`, which no authentication method accepts.
    pub authorization: Option<String>,
    /// The `DPoP` header(s) (RFC 9449 §4.3).
    pub dpop: DpopHeader,
}

/// How many `DPoP` headers a request carried, and the one when there was one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DpopHeader {
    /// None: no proof.
    #[default]
    Absent,
    /// Exactly one, visible ASCII.
    One(String),
    /// More than one (refused).
    Several,
    /// One that is not visible ASCII (refused).
    NotAscii,
}

/// A successful answer: a JSON body, served with `Cache-Control: no-store` (RFC 6749 §5.1;
/// every answer of these endpoints is specific to one client and moment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `200 OK` or, for a newly filed access request, `201 Created`.
    pub created: bool,
    /// The JSON document.
    pub body: Vec<u8>,
}

impl Answer {
    /// A `200 OK` JSON answer.
    pub fn ok(body: Vec<u8>) -> Self {
        Self {
            created: false,
            body,
        }
    }

    /// A `201 Created` JSON answer.
    pub fn created(body: Vec<u8>) -> Self {
        Self {
            created: true,
            body,
        }
    }
}

/// Authenticate the client, check any DPoP proof, then run the grant.
pub async fn dispatch(
    b: &GrantCx,
    iss: &IssuerRuntime,
    grant: GrantType,
    headers: &RequestHeaders,
    form: FormParams,
) -> Result<Answer, OAuthError> {
    let now = b.clock.now();
    let active = b.policy.load_full();
    let client = client_auth::authenticate(b, iss, &active, headers, &form, now).await?;
    let proof = dpop::check(b, iss, headers, now).await?;
    match grant {
        GrantType::TokenExchange => {
            token_exchange::handle(b, iss, &active, client, proof, &form, now).await
        }
        GrantType::JwtBearer => {
            jwt_bearer::handle(b, iss, &active, client, proof, &form, now).await
        }
    }
}

/// Revocations that stop issuance (DESIGN "clean revocation"): the agent's grant in this
/// channel withdrawn by a human, or (jwt-bearer) the presented ID-JAG revoked. A withdrawn
/// grant has no end (`until: None`); a restored one only keeps older tokens dead.
pub(crate) async fn revoked_for_issuance(
    b: &GrantCx,
    agent: &str,
    channel: Option<&str>,
    id_jag_jti: Option<&str>,
    now: UnixTime,
) -> Result<Option<Rejection>, OAuthError> {
    let unavailable = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "store unavailable for the revocation check");
        OAuthError::unavailable("try again later", 1)
    };
    if let Some(channel) = channel {
        let subject = crate::store::RevocationSubject::ChannelGrant {
            client_id: agent.to_owned(),
            channel: channel.to_owned(),
        };
        if let Some(r) = b
            .store
            .revocation(&subject, now)
            .await
            .map_err(unavailable)?
            && r.until.is_none()
        {
            return Ok(Some(Rejection::Denied(
                "the agent's grant in this channel was withdrawn",
            )));
        }
    }
    if let Some(jti) = id_jag_jti {
        let subject = crate::store::RevocationSubject::Token {
            jti: jti.to_owned(),
        };
        if b.store
            .revocation(&subject, now)
            .await
            .map_err(unavailable)?
            .is_some()
        {
            return Ok(Some(Rejection::Denied("the ID-JAG was revoked")));
        }
    }
    Ok(None)
}

/// A store failure (or a record that cannot be encoded or decoded) about a record of `kind`:
/// 503, nothing decided (fail closed).
pub(crate) fn record_unavailable(
    kind: crate::store::RecordKind,
    e: &dyn std::fmt::Display,
) -> OAuthError {
    tracing::error!(error = %e, kind = kind.prefix(), "store unavailable for a record");
    OAuthError::unavailable("try again later", 1)
}

/// A JSON record of `kind` from the store: read (`take = false`) or removed atomically
/// (`take = true`; exactly one concurrent caller gets it). A store failure or an undecodable
/// record is 503 (fail closed).
pub(crate) async fn stored<T: serde::de::DeserializeOwned>(
    b: &GrantCx,
    kind: crate::store::RecordKind,
    id: &str,
    now: UnixTime,
    take: bool,
) -> Result<Option<T>, OAuthError> {
    let got = if take {
        b.store.take(kind, id, now).await
    } else {
        b.store.get(kind, id, now).await
    };
    got.map_err(|e| record_unavailable(kind, &e))?
        .map(|bytes| serde_json::from_slice(&bytes))
        .transpose()
        .map_err(|e| record_unavailable(kind, &e))
}

/// Write (create or replace) a JSON record of `kind`, live until `expires_at`.
pub(crate) async fn save_record<T: serde::Serialize>(
    b: &GrantCx,
    kind: crate::store::RecordKind,
    id: &str,
    value: &T,
    expires_at: UnixTime,
) -> Result<(), OAuthError> {
    let bytes = serde_json::to_vec(value).map_err(|e| record_unavailable(kind, &e))?;
    b.store
        .put(kind, id, bytes, Some(expires_at))
        .await
        .map_err(|e| record_unavailable(kind, &e))
}

/// Every live JSON record of `kind`, ordered by id; records that do not decode are skipped.
pub(crate) async fn listed<T: serde::de::DeserializeOwned>(
    b: &GrantCx,
    kind: crate::store::RecordKind,
    now: UnixTime,
) -> Result<Vec<T>, OAuthError> {
    let records = b
        .store
        .list(kind, now)
        .await
        .map_err(|e| record_unavailable(kind, &e))?;
    Ok(records
        .iter()
        .filter_map(|(_, bytes)| serde_json::from_slice(bytes).ok())
        .collect())
}

fn server_error(e: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "token issuance failed");
    OAuthError::new(ErrorCode::ServerError, "internal error")
}

/// The audit trail of one token request: who, for whom, where, and the outcome.
pub(crate) struct Trail<'a> {
    b: &'a GrantCx,
    iss: &'a IssuerRuntime,
    event: audit::Event,
    agent: &'a str,
    now: UnixTime,
    pub(crate) human: Option<String>,
    pub(crate) channel: Option<String>,
    pub(crate) resource: Option<String>,
    /// The just-in-time approval used or asked for: (id, approver).
    pub(crate) approval: Option<(String, Option<String>)>,
}

impl<'a> Trail<'a> {
    pub(crate) fn new(
        b: &'a GrantCx,
        iss: &'a IssuerRuntime,
        event: audit::Event,
        agent: &'a str,
        now: UnixTime,
        channel: Option<String>,
    ) -> Self {
        Self {
            b,
            iss,
            event,
            agent,
            now,
            human: None,
            channel,
            resource: None,
            approval: None,
        }
    }

    fn record<'r>(
        &'r self,
        decision: audit::Decision,
        actions: &'r [String],
        reason: &'r str,
        token_id: Option<&'r str>,
    ) -> audit::Record<'r> {
        audit::Record {
            at: self.now,
            event: self.event,
            decision,
            human: self.human.as_deref(),
            agent: Some(self.agent),
            channel: self.channel.as_deref(),
            resource: self.resource.as_deref(),
            actions,
            reason,
            approver: self.approval.as_ref().and_then(|a| a.1.as_deref()),
            approval: self.approval.as_ref().map(|a| a.0.as_str()),
            token_id,
            issuer: &self.iss.settings.issuer,
        }
    }

    /// Record a denial (in the background: it issues nothing, so it need not hold up the
    /// response) and map it to the wire.
    pub(crate) fn deny(&self, r: &Rejection, map: fn(&Rejection) -> OAuthError) -> OAuthError {
        let reason = r.to_string();
        tracing::info!(event = self.event.as_str(), agent = %self.agent, reason = %reason, "token request denied");
        if let Ok(bytes) =
            serde_json::to_vec(&self.record(audit::Decision::Denied, &[], &reason, None))
        {
            match self.b.denial_writes.clone().try_acquire_owned() {
                Ok(permit) => {
                    let store = self.b.store.clone();
                    tokio::spawn(async move {
                        if let Err(e) = store.append_audit(bytes).await {
                            tracing::warn!(error = %e, "audit write of a denial failed");
                        }
                        drop(permit);
                    });
                }
                Err(_) => {
                    let n = self
                        .b
                        .metrics
                        .denial_audit_dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // One line per thousand, not one per dropped record.
                    if n % 1000 == 0 {
                        tracing::warn!(
                            dropped = n + 1,
                            "refusal audit records dropped: too many queued"
                        );
                    }
                }
            }
        }
        map(r)
    }

    /// Record a decision that issues nothing but must be on record (an approval asked for).
    /// A failed write is logged; the caller's response does not depend on it.
    pub(crate) async fn record_decision(
        &self,
        decision: audit::Decision,
        actions: &[String],
        reason: &str,
    ) {
        if let Err(e) = audit::write(
            self.b.store.as_ref(),
            &self.record(decision, actions, reason, None),
        )
        .await
        {
            tracing::warn!(error = %e, decision = decision.as_str(), "audit write failed");
        }
    }

    /// Spend a single-use assertion (`replay` until `until`) and record the issuance it buys
    /// in one atomic store step, before the token is signed (fail closed). `Ok(false)`: the
    /// assertion was already spent, and nothing was recorded.
    pub(crate) async fn issued_spending(
        &self,
        replay: crate::store::ReplayKey,
        until: UnixTime,
        actions: &[String],
        jti: &str,
        reason: &str,
    ) -> Result<bool, OAuthError> {
        let body =
            serde_json::to_vec(&self.record(audit::Decision::Issued, actions, reason, Some(jti)))
                .map_err(|e| server_error(&e))?;
        match self
            .b
            .store
            .first_use_with_audit(replay, until, self.now, body)
            .await
        {
            Ok(crate::store::FirstUse::Yes) => {
                self.log_issued(jti);
                Ok(true)
            }
            Ok(crate::store::FirstUse::Replay) => Ok(false),
            Err(e) => {
                tracing::error!(error = %e, "store unavailable for the replay check and audit record; token withheld");
                Err(OAuthError::unavailable("try again later", 1))
            }
        }
    }

    /// Record an issuance durably before the token leaves (fail closed).
    pub(crate) async fn issued(
        &self,
        actions: &[String],
        jti: &str,
        reason: &str,
    ) -> Result<(), OAuthError> {
        audit::write(
            self.b.store.as_ref(),
            &self.record(audit::Decision::Issued, actions, reason, Some(jti)),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "audit write failed; token withheld");
            OAuthError::unavailable("try again later", 1)
        })?;
        self.log_issued(jti);
        Ok(())
    }

    /// Name the issued token on the request's span (see `http::middleware::observe`): its
    /// one log line then carries them, instead of a second event per request.
    fn log_issued(&self, jti: &str) {
        let span = tracing::Span::current();
        span.record("grant", self.event.as_str());
        span.record("agent", self.agent);
        if let Some(r) = &self.resource {
            span.record("resource", r.as_str());
        }
        span.record("jti", jti);
    }
}
