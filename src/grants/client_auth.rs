//! Client authentication at the token endpoint: exactly one method per request, each
//! verified against the agent's credential in the policy (checklist section C).
//!
//! - `client_secret_basic` / `client_secret_post`: the policy holds the SHA-256 of a
//!   generated high-entropy secret; compared in constant time.
//! - `private_key_jwt`: `iss` = `sub` = the client id, `aud` = this issuer (exactly, one
//!   value; the token endpoint URL only for agents configured to accept it), `exp` ≤ 300 s
//!   after `iat`, `iat` at most 300 s old, `jti` single use through the store.
//! - workload identity: a JWT from a configured workload issuer (Kubernetes, SPIFFE), routed
//!   by `iss` (never by `typ`), whose `sub` is the agent's configured subject. Such tokens are
//!   reusable bearer credentials by design, bounded by their `exp`; no `jti` tracking.

use std::time::Instant;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::RequestHeaders;
use super::cx::{ActivePolicy, GrantCx, IssuerRuntime};
use crate::clock::UnixTime;
use crate::config::Role;
use crate::core::claims::ClientAssertionClaims;
use crate::core::validate::{self, TimeRules};
use crate::crypto::verify;
use crate::limits::{Kind, too_many};
use crate::oauth::client_auth::{BASIC_CHALLENGE, Presented, detect};
use crate::oauth::{FormParams, OAuthError, metadata::CLIENT_ASSERTION_ALGS};
use crate::policy::{Agent, Credential};
use crate::store::{FirstUse, RevocationSubject, replay_key};

/// JWT types that belong to other validation rules and are never a client credential.
const FOREIGN_TYPES: &[&str] = &[
    "at+jwt",
    "oauth-id-jag+jwt",
    "dpop+jwt",
    "txntoken+jwt",
    "secevent+jwt",
    "logout+jwt",
];

/// An authenticated agent.
#[derive(Debug, Clone, Copy)]
pub struct Client<'p> {
    /// The agent.
    pub agent: &'p Agent,
    /// How it authenticated.
    pub method: &'static str,
}

fn failed(detail: &'static str) -> OAuthError {
    tracing::info!(reason = detail, "client authentication failed");
    OAuthError::invalid_client("client authentication failed")
}

/// The agent whose client id at this issuer is `client_id`.
pub fn find_agent<'p>(
    active: &'p ActivePolicy,
    iss: &IssuerRuntime,
    client_id: &str,
) -> Option<&'p Agent> {
    let p = &active.policy;
    match iss.settings.role {
        Role::Idp => p.agent(client_id),
        Role::AuthorizationServer => {
            let issuer = iss.settings.issuer.as_str();
            p.agent(client_id)
                .filter(|a| a.client_id_at(issuer) == client_id)
                .or_else(|| {
                    p.agents()
                        .iter()
                        .find(|a| a.client_id_at(issuer) == client_id)
                })
        }
    }
}

/// Authenticate the request's client, then count the request against that client's rate
/// limit (`crate::limits`: only an authenticated request spends a client's budget).
/// Failures are 401 `invalid_client` (with a Basic challenge when Basic was used), or 429
/// once the failures naming that client id have spent their own budget; a store outage is
/// 503.
pub async fn authenticate<'p>(
    b: &GrantCx,
    iss: &IssuerRuntime,
    active: &'p ActivePolicy,
    headers: &RequestHeaders,
    form: &FormParams,
    now: UnixTime,
) -> Result<Client<'p>, OAuthError> {
    let presented = detect(headers.authorization.as_deref(), form)?
        .ok_or_else(|| OAuthError::invalid_client("client authentication required"))?;
    let named = presented.client_id().map(str::to_owned);
    let store = b.store.as_ref();
    match verify_presented(b, iss, active, presented, now).await {
        Ok(client) => {
            b.limiter
                .check(store, now, Kind::Client, &client.agent.id, Instant::now())
                .await
                .map_err(too_many)?;
            Ok(client)
        }
        Err(e) if e.status() == 401 => {
            if let Some(id) = named
                && let Err(wait) = b
                    .limiter
                    .check(store, now, Kind::Failure, &id, Instant::now())
                    .await
            {
                return Err(too_many(wait));
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

async fn verify_presented<'p>(
    b: &GrantCx,
    iss: &IssuerRuntime,
    active: &'p ActivePolicy,
    presented: Presented,
    now: UnixTime,
) -> Result<Client<'p>, OAuthError> {
    let method = presented.method();
    let agent = match presented {
        Presented::Basic { client_id, secret } => secret_auth(active, iss, &client_id, &secret)
            .map_err(|e| e.with_challenge(BASIC_CHALLENGE))?,
        Presented::Post { client_id, secret } => secret_auth(active, iss, &client_id, &secret)?,
        Presented::Assertion {
            assertion,
            client_id,
        } => assertion_auth(b, iss, active, &assertion, client_id.as_deref(), now).await?,
    };
    // A Basic client gets its challenge back on every 401 (RFC 6749 §5.2).
    let challenge = |e: OAuthError| {
        if method == "client_secret_basic" {
            e.with_challenge(BASIC_CHALLENGE)
        } else {
            e
        }
    };
    if !agent.enabled {
        return Err(challenge(failed("agent disabled in policy")));
    }
    let revoked = b
        .store
        .revocation(
            &RevocationSubject::Agent {
                client_id: agent.id.clone(),
            },
            now,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "store unavailable during client authentication");
            OAuthError::unavailable("try again later", 1)
        })?;
    // A disabled agent's revocation has no end; one re-enabled by a human keeps an end
    // date only so that tokens issued before it stay dead.
    if revoked.is_some_and(|r| r.until.is_none()) {
        return Err(challenge(failed("agent revoked")));
    }
    Ok(Client { agent, method })
}

fn secret_auth<'p>(
    active: &'p ActivePolicy,
    iss: &IssuerRuntime,
    client_id: &str,
    secret: &str,
) -> Result<&'p Agent, OAuthError> {
    // Hash even when the client is unknown, so timing does not reveal which ids exist.
    let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    let agent = find_agent(active, iss, client_id);
    let expected = match agent.map(|a| &a.credential) {
        Some(Credential::ClientSecretSha256(h)) => *h,
        _ => [0u8; 32],
    };
    match agent {
        Some(a)
            if matches!(a.credential, Credential::ClientSecretSha256(_))
                && bool::from(presented.ct_eq(&expected)) =>
        {
            Ok(a)
        }
        _ => Err(failed("unknown client or wrong secret")),
    }
}

async fn assertion_auth<'p>(
    b: &GrantCx,
    iss: &IssuerRuntime,
    active: &'p ActivePolicy,
    assertion: &str,
    form_client_id: Option<&str>,
    now: UnixTime,
) -> Result<&'p Agent, OAuthError> {
    let jws =
        verify::parse(assertion).map_err(|_| failed("client assertion is not a compact JWS"))?;
    if FOREIGN_TYPES.iter().any(|t| jws.header.typ_is(t)) {
        return Err(failed(
            "client assertion has the type of another kind of JWT",
        ));
    }
    let claims: ClientAssertionClaims = serde_json::from_slice(&jws.payload)
        .map_err(|_| failed("client assertion claims malformed"))?;
    let (Some(a_iss), Some(a_sub)) = (claims.iss.as_deref(), claims.sub.as_deref()) else {
        return Err(failed("client assertion without iss or sub"));
    };
    let token_endpoint = iss.settings.endpoint("token");
    let leeway = b.settings.leeway;
    if a_iss == a_sub {
        // private_key_jwt: RFC 7523 §3, 7523bis.
        let agent = find_agent(active, iss, a_sub).ok_or_else(|| failed("unknown client"))?;
        if form_client_id.is_some_and(|c| c != a_sub) {
            return Err(failed("client_id differs from the assertion's sub"));
        }
        let keys = active
            .agent_keys
            .get(&agent.id)
            .ok_or_else(|| failed("client has no private_key_jwt keys"))?;
        keys.verify(&jws, CLIENT_ASSERTION_ALGS)
            .map_err(|_| failed("client assertion signature"))?;
        let aud = claims
            .aud
            .as_ref()
            .ok_or_else(|| failed("client assertion without aud"))?;
        let aud_ok = aud.is_exactly(&iss.settings.issuer)
            || (agent.accept_token_endpoint_aud
                && matches!(aud, crate::core::claims::Audience::One(a) if *a == token_endpoint));
        if !aud_ok {
            return Err(failed("client assertion aud is not this issuer"));
        }
        let rules = TimeRules {
            leeway,
            max_lifetime: 300,
            max_age: Some(300),
            require_iat: false,
        };
        validate::times(claims.exp, claims.iat, claims.nbf, rules, now)
            .map_err(|_| failed("client assertion time claims"))?;
        let jti =
            validate::jti(claims.jti.as_deref()).map_err(|_| failed("client assertion jti"))?;
        let exp = claims.exp.map_or(now, |e| e.secs());
        let key = replay_key(&["client_assertion", &iss.settings.issuer, &agent.id, jti]);
        match b
            .store
            .first_use(key, exp.saturating_add(leeway), now)
            .await
        {
            Ok(FirstUse::Yes) => Ok(agent),
            Ok(FirstUse::Replay) => Err(failed("client assertion jti replayed")),
            Err(e) => {
                tracing::error!(error = %e, "store unavailable for the client assertion replay check");
                Err(OAuthError::unavailable("try again later", 1))
            }
        }
    } else {
        // A workload-identity token, routed by its issuer.
        let agent = active
            .policy
            .agents()
            .iter()
            .find(|a| matches!(&a.credential, Credential::Workload { issuer, subject } if issuer == a_iss && subject == a_sub))
            .ok_or_else(|| failed("no agent for this workload identity"))?;
        if form_client_id
            .is_some_and(|c| c != agent.client_id_at(&iss.settings.issuer) && c != agent.id)
        {
            return Err(failed("client_id differs from the workload's agent"));
        }
        let up = active
            .upstreams
            .get(a_iss)
            .ok_or_else(|| failed("workload issuer not configured"))?;
        let keys = up
            .keys_for(&b.fetcher, jws.header.kid.as_deref())
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "workload issuer keys unavailable");
                OAuthError::unavailable("try again later", 2)
            })?;
        keys.0
            .verify(&jws, up.algorithms())
            .map_err(|_| failed("workload token signature"))?;
        let aud = claims
            .aud
            .as_ref()
            .ok_or_else(|| failed("workload token without aud"))?;
        if !(aud.is_exactly(&iss.settings.issuer) || aud.is_exactly(&token_endpoint)) {
            return Err(failed("workload token aud is not this server"));
        }
        let rules = TimeRules {
            leeway,
            max_lifetime: 86_400,
            max_age: None,
            require_iat: false,
        };
        validate::times(claims.exp, claims.iat, claims.nbf, rules, now)
            .map_err(|_| failed("workload token time claims"))?;
        Ok(agent)
    }
}
