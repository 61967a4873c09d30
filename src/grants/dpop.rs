//! DPoP at the token endpoint (RFC 9449 §5), for both grants: at most one proof, validated,
//! single use per `jti` and target URI, and server nonces when configured.

use super::cx::{GrantCx, IssuerRuntime};
use super::{DpopHeader, RequestHeaders};
use crate::clock::UnixTime;
use crate::crypto::dpop::{self, MAX_PROOF_AGE, Proof};
use crate::crypto::random_id;
use crate::oauth::{ErrorCode, OAuthError};
use crate::store::{FirstUse, RecordKind, replay_key};

const NONCE_TTL: u64 = 300;

fn invalid(detail: &str) -> OAuthError {
    tracing::info!(reason = detail, "DPoP proof refused");
    OAuthError::new(ErrorCode::InvalidDpopProof, "invalid DPoP proof")
}

fn unavailable() -> OAuthError {
    OAuthError::unavailable("try again later", 1)
}

/// The request's verified proof, if it sent one.
pub async fn check(
    b: &GrantCx,
    iss: &IssuerRuntime,
    headers: &RequestHeaders,
    now: UnixTime,
) -> Result<Option<Proof>, OAuthError> {
    let raw = match &headers.dpop {
        DpopHeader::Absent => return Ok(None),
        DpopHeader::One(raw) => raw.as_str(),
        DpopHeader::Several => return Err(invalid("more than one DPoP header")),
        DpopHeader::NotAscii => return Err(invalid("DPoP header not ASCII")),
    };
    let htu = iss.settings.endpoint("token");
    let proof = dpop::validate(raw, "POST", &htu, None, b.settings.leeway, now)
        .map_err(|e| invalid(&e.to_string()))?;
    if iss.settings.require_dpop_nonce {
        let valid = match proof.nonce.as_deref() {
            Some(n) => b
                .store
                .get(RecordKind::Nonce, n, now)
                .await
                .map_err(|_| unavailable())?
                .is_some(),
            None => false,
        };
        if !valid {
            let fresh = random_id(18).map_err(|_| unavailable())?;
            b.store
                .put(RecordKind::Nonce, &fresh, Vec::new(), Some(now + NONCE_TTL))
                .await
                .map_err(|_| unavailable())?;
            let mut e = OAuthError::new(ErrorCode::UseDpopNonce, "a DPoP nonce is required");
            e.dpop_nonce = Some(fresh);
            return Err(e);
        }
    }
    let key = replay_key(&["dpop", &htu, &proof.jti]);
    let until = proof
        .iat
        .saturating_add(MAX_PROOF_AGE)
        .saturating_add(b.settings.leeway)
        .max(now + 1);
    match b.store.first_use(key, until, now).await {
        Ok(FirstUse::Yes) => Ok(Some(proof)),
        Ok(FirstUse::Replay) => Err(invalid("DPoP proof jti replayed")),
        Err(e) => {
            tracing::error!(error = %e, "store unavailable for the DPoP replay check");
            Err(unavailable())
        }
    }
}
