//! A real OIDC issuer for tests: discovery and JWKS over HTTP on 127.0.0.1, RS256 ID tokens.
//! It can be switched to failing (HTTP 500) to simulate an outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use josekit::jwk::KeyPair as _;

pub struct TestIdp {
    pub issuer: String,
    key: josekit::jwk::alg::rsa::RsaKeyPair,
    down: Arc<AtomicBool>,
    _rt: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct S {
    issuer: String,
    jwks: serde_json::Value,
    down: Arc<AtomicBool>,
}

async fn discovery(State(s): State<S>) -> Response {
    if s.down.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    axum::Json(serde_json::json!({
        "issuer": s.issuer,
        "jwks_uri": format!("{}/jwks", s.issuer),
        "authorization_endpoint": format!("{}/authorize", s.issuer),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn jwks(State(s): State<S>) -> Response {
    if s.down.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    axum::Json(s.jwks.clone()).into_response()
}

impl TestIdp {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let mut key = josekit::jws::RS256.generate_key_pair(2048).unwrap();
        key.set_key_id(Some("idp-1"));
        let mut public: serde_json::Map<String, serde_json::Value> = key.to_jwk_public_key().into();
        public.insert("kid".into(), "idp-1".into());
        public.insert("use".into(), "sig".into());
        let down = Arc::new(AtomicBool::new(false));
        let state = S {
            issuer: issuer.clone(),
            jwks: serde_json::json!({"keys": [public]}),
            down: down.clone(),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(state);
        rt.spawn(async move { axum::serve(listener, app).await });
        Self {
            issuer,
            key,
            down,
            _rt: rt,
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// An ID token for `sub` (in group `staff`), issued to client `aud`.
    pub fn id_token(&self, sub: &str, aud: &str) -> String {
        self.id_token_with(sub, aud, serde_json::json!({}))
    }

    /// An ID token with extra or overriding claims.
    pub fn id_token_with(&self, sub: &str, aud: &str, extra: serde_json::Value) -> String {
        let signer = josekit::jws::RS256
            .signer_from_jwk(&self.key.to_jwk_key_pair())
            .unwrap();
        let mut h = josekit::jws::JwsHeader::new();
        h.set_key_id("idp-1");
        h.set_token_type("JWT");
        let n = super::now();
        let mut claims = serde_json::json!({
            "iss": self.issuer, "sub": sub, "aud": aud, "iat": n, "exp": n + 300,
            "auth_time": n, "email": format!("{sub}@example.com"), "groups": ["staff"],
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let p = josekit::jwt::JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
        josekit::jwt::encode_with_signer(&p, &h, &signer).unwrap()
    }
}
