//! A real OIDC issuer for the humans' ID tokens: OpenID Connect discovery and a JWKS over
//! HTTP on 127.0.0.1, and RS256 (2048-bit) ID tokens signed with its own key — what an
//! enterprise IdP (Okta, Entra ID, Keycloak) hands an agent after a human signs in.
//!
//! ID tokens are minted *before* the timed phase: RSA signing is the IdP's cost, not
//! lanyard's, and a load generator that signed on the shared cores would charge it to lanyard.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use lanyard::config::SigningAlg;
use lanyard::crypto::{SigningKey, Typ, random_id, sign_jwt};
use serde_json::{Value, json};

use crate::site::{Agent, Human};

/// The running issuer.
pub struct Issuer {
    /// Its issuer identifier (`http://127.0.0.1:PORT`).
    pub issuer: String,
    key: Arc<SigningKey>,
}

struct Docs {
    discovery: Value,
    jwks: Value,
}

impl Issuer {
    /// Make a key and serve discovery and JWKS on a loopback port (on the current runtime).
    pub async fn start(now: u64) -> Result<Self, String> {
        let (key, _pem) =
            SigningKey::generate(SigningAlg::Rs256, now).map_err(|e| format!("issuer key: {e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("issuer bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let issuer = format!("http://{addr}");
        let docs = Arc::new(Docs {
            discovery: json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/jwks"),
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }),
            jwks: json!({ "keys": [Value::Object(key.public_jwk().clone())] }),
        });
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(d): State<Arc<Docs>>| async move { axum::Json(d.discovery.clone()) }),
            )
            .route(
                "/jwks",
                get(|State(d): State<Arc<Docs>>| async move { axum::Json(d.jwks.clone()) }),
            )
            .with_state(docs);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self {
            issuer,
            key: Arc::new(key),
        })
    }

    /// The issuer's JWK Set.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [Value::Object(self.key.public_jwk().clone())] })
    }

    /// An ID token for `human`, issued to `agent`'s SSO client, valid for an hour from `now`,
    /// signed in at `now`.
    pub fn id_token(&self, human: &Human, agent: &Agent, now: u64) -> Result<String, String> {
        let claims = json!({
            "iss": self.issuer,
            "sub": human.sub,
            "aud": agent.sso_id,
            "iat": now,
            "exp": now + 3600,
            "auth_time": now,
            "amr": ["pwd", "mfa"],
            "jti": random_id(16).map_err(|e| e.to_string())?,
            "email": human.email,
            "email_verified": true,
            "name": human.name,
            "preferred_username": human.email,
            "groups": human.groups,
        });
        sign_jwt(&self.key, Typ::IdToken, &claims).map_err(|e| e.to_string())
    }

    /// Mint one ID token per flow on `threads` OS threads.
    pub fn mint_pool(
        self: &Arc<Self>,
        world: &Arc<crate::site::World>,
        now: u64,
        threads: usize,
    ) -> Result<Vec<String>, String> {
        let n = world.flows.len();
        let threads = threads.clamp(1, n.max(1));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let me = self.clone();
                let w = world.clone();
                std::thread::spawn(move || -> Result<Vec<(usize, String)>, String> {
                    (t..n)
                        .step_by(threads)
                        .map(|i| {
                            let f = &w.flows[i];
                            me.id_token(&w.humans[f.human], &w.agents[f.agent], now)
                                .map(|t| (i, t))
                        })
                        .collect()
                })
            })
            .collect();
        let mut out = vec![String::new(); n];
        for h in handles {
            let part = h
                .join()
                .map_err(|_| "an ID-token minting thread failed".to_owned())??;
            for (i, t) in part {
                out[i] = t;
            }
        }
        Ok(out)
    }
}
