//! One module per grant type, each with the same shape: `GRANT_TYPE`, `Params`,
//! `handle(…)`, `reject(Rejection) -> OAuthError`. Dispatch is a closed enum.

pub mod client_auth;
pub mod dpop;
pub mod jwt_bearer;
pub mod token_exchange;

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;

use crate::app::{Broker, IssuerRuntime};
use crate::audit;
use crate::clock::UnixTime;
use crate::core::Rejection;
use crate::http::token::GrantType;
use crate::oauth::{ErrorCode, FormParams, OAuthError};

/// Authenticate the client, check any DPoP proof, then run the grant.
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
    let proof = dpop::check(b, iss, headers, now).await?;
    match grant {
        GrantType::TokenExchange => {
            token_exchange::handle(b, iss, &active, client, proof, &form, now).await
        }
        GrantType::JwtBearer => {
            jwt_bearer::handle(b, iss, &active, client, proof, &form, headers, now).await
        }
    }
}

fn server_error(e: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "token issuance failed");
    OAuthError::new(ErrorCode::ServerError, "internal error")
}

/// The audit trail of one token request: who, for whom, where, and the outcome.
pub(crate) struct Trail<'a> {
    b: &'a Broker,
    iss: &'a IssuerRuntime,
    event: &'static str,
    agent: &'a str,
    now: UnixTime,
    pub(crate) human: Option<String>,
    pub(crate) channel: Option<String>,
    pub(crate) resource: Option<String>,
}

impl<'a> Trail<'a> {
    pub(crate) fn new(
        b: &'a Broker,
        iss: &'a IssuerRuntime,
        event: &'static str,
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
        }
    }

    fn record<'r>(
        &'r self,
        decision: &'static str,
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
            approver: None,
            approval: None,
            token_id,
            issuer: &self.iss.settings.issuer,
        }
    }

    /// Record a denial (in the background: it issues nothing, so it need not hold up the
    /// response) and map it to the wire.
    pub(crate) fn deny(&self, r: &Rejection, map: fn(&Rejection) -> OAuthError) -> OAuthError {
        let reason = format!("{r:?}");
        tracing::info!(event = self.event, agent = %self.agent, reason = %reason, "token request denied");
        if let Ok(bytes) = serde_json::to_vec(&self.record("denied", &[], &reason, None)) {
            let store = self.b.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.append_audit(bytes).await {
                    tracing::warn!(error = %e, "audit write of a denial failed");
                }
            });
        }
        map(r)
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
            &self.record("issued", actions, reason, Some(jti)),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "audit write failed; token withheld");
            OAuthError::unavailable("try again later", 1)
        })?;
        tracing::info!(event = self.event, agent = %self.agent, resource = ?self.resource, jti, "token issued");
        Ok(())
    }
}
