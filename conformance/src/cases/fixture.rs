//! What sections C, D and E need to make real requests: the demo agents, humans and dev IdP
//! from `/dev/bootstrap`, ID tokens minted by the dev IdP, agent client authentication
//! (secret Basic or post, `private_key_jwt`), token-exchange forms, and a successful
//! exchange decoded for inspection.
//!
//! Every case that needs these SKIPs (with the reason) when the target is not a lanyard dev
//! server or the demo content it relies on is missing; it never guesses credentials.
//! Every secret, assertion and subject token sent is registered with the request, so B17
//! can check that no response echoes it.

use serde_json::{Map, Value, json};

use super::{Ctx, Issuer, Outcome, Role};
use crate::http::{Req, Resp};
use crate::jwt::{self, Decoded, Signer};
use crate::oauth::{self, marker};

/// The demo agent authenticating with a client secret.
pub const TRIAGE: &str = "triage-bot";
/// The demo agent authenticating with `private_key_jwt` (ES256).
pub const DEPLOY: &str = "deploy-bot";
/// The demo agent switched off by its owner (every request 401).
pub const RETIRED: &str = "retired-bot";
/// A demo human in groups eng and eng-leads.
pub const ALICE: &str = "alice";
/// A demo human in group support only.
pub const BOB: &str = "bob";
/// The demo GitHub MCP resource.
pub const GITHUB: &str = "https://mcp.github.example/";
/// The demo channel whose members must be in group eng.
pub const CH_ENG: &str = "slack:T01/C-eng-api";
/// RFC 8693 §2.1 `requested_token_type`/`subject_token_type` URNs used as wrong values.
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// RFC 8693 §3.
pub const TOKEN_TYPE_SAML2: &str = "urn:ietf:params:oauth:token-type:saml2";

/// One demo agent as bootstrap describes it.
pub struct Agent {
    /// Its client id at lanyard (and at the RAS).
    pub client_id: String,
    /// Its client id at the dev IdP: the `aud` of ID tokens minted for it.
    pub idp_client_id: String,
    /// Its client secret, for secret-authenticated agents.
    pub secret: Option<String>,
    /// Its private JWK, for `private_key_jwt` agents.
    pub private_jwk: Option<Map<String, Value>>,
    /// Whether its owner has it switched on.
    pub enabled: bool,
    /// Its maximum access-token lifetime in seconds, when bootstrap says.
    pub max_ttl: Option<u64>,
    /// Whether it is registered with `dpop_bound_access_tokens = true`.
    pub dpop_bound: bool,
}

/// One demo human.
pub struct Human {
    /// Login name at the dev IdP's mint endpoint.
    pub username: String,
    /// The `sub` the dev IdP puts in the human's ID tokens.
    pub sub: String,
}

/// How a request authenticates the agent.
pub enum Auth {
    /// RFC 6749 §2.3.1 HTTP Basic with the agent's secret.
    Basic,
    /// `client_id` and `client_secret` in the form.
    Post,
    /// A fresh, valid `private_key_jwt` assertion, with `client_id` in the form.
    Key,
}

/// A token-exchange request's policy-relevant parameters.
#[derive(Clone)]
pub struct Ask<'a> {
    /// The agent (by client id).
    pub agent: &'a str,
    /// The human (by dev IdP username).
    pub user: &'a str,
    /// The `resource` parameter.
    pub resource: Option<&'a str>,
    /// The `scope` parameter.
    pub scope: Option<&'a str>,
    /// lanyard's `channel` parameter.
    pub channel: Option<&'a str>,
}

impl Ask<'static> {
    /// triage-bot for alice in the eng channel, asking for exactly what that channel grants
    /// without approval: everything asked for is granted.
    pub fn triage() -> Self {
        Self {
            agent: TRIAGE,
            user: ALICE,
            resource: Some(GITHUB),
            scope: Some("repo.read issue.comment"),
            channel: Some(CH_ENG),
        }
    }

    /// deploy-bot (`private_key_jwt`) for alice in the eng channel, asking for repo.read.
    pub fn deploy() -> Self {
        Self {
            agent: DEPLOY,
            user: ALICE,
            resource: Some(GITHUB),
            scope: Some("repo.read"),
            channel: Some(CH_ENG),
        }
    }
}

/// The dev-server view of one IdP-role issuer under test.
pub struct Fixture {
    /// The IdP-role issuer identifier (the `aud` of client assertions, the ID-JAG `iss`).
    pub idp_issuer: String,
    /// Its token endpoint.
    pub token_endpoint: String,
    /// The `audience` to name: the AS-role issuer.
    pub audience: String,
    /// The AS-role issuer's token endpoint, when that issuer is under test.
    pub as_token_endpoint: Option<String>,
    /// The dev IdP's mint endpoint.
    pub mint_endpoint: String,
    /// The `max_age` configured for the dev IdP, in seconds.
    pub max_age: Option<u64>,
    agents: Vec<Agent>,
    humans: Vec<Human>,
}

/// Evaluates to the value, or returns `Ok(skip)` from the enclosing case body.
macro_rules! need {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(skip) => return Ok(skip),
        }
    };
}
pub(crate) use need;

impl Fixture {
    /// The fixture for the IdP-role issuer `iss`, or a SKIP saying why there is none.
    pub fn for_idp(cx: &Ctx, iss: &Issuer) -> Result<Self, Outcome> {
        let Some(b) = &cx.bootstrap else {
            return Err(Outcome::skip(
                "needs a lanyard dev server (GET /dev/bootstrap) for agent credentials, \
                 humans and an ID-token issuer",
            ));
        };
        let s = |p: &str| b.pointer(p).and_then(Value::as_str).map(str::to_owned);
        if s("/idp_issuer").as_deref() != Some(iss.issuer.as_str()) {
            return Err(Outcome::skip(format!(
                "bootstrap describes IdP issuer {:?}, not {:?}: no credentials for this issuer",
                s("/idp_issuer"),
                iss.issuer
            )));
        }
        let token_endpoint = iss.token_endpoint()?;
        let Some(mint_endpoint) = s("/dev_idp/mint_endpoint") else {
            return Err(Outcome::skip("bootstrap has no dev_idp.mint_endpoint"));
        };
        let agents = b
            .get("agents")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(parse_agent).collect())
            .unwrap_or_default();
        let humans = b
            .get("humans")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(parse_human).collect())
            .unwrap_or_default();
        Ok(Self {
            idp_issuer: iss.issuer.clone(),
            token_endpoint,
            audience: cx.audience_for_exchange(),
            as_token_endpoint: cx
                .with_role(Role::As)
                .find(|i| i.issuer == cx.audience_for_exchange())
                .and_then(|i| i.token_endpoint().ok()),
            mint_endpoint,
            max_age: b.get("dev_idp_max_age").and_then(Value::as_u64),
            agents,
            humans,
        })
    }

    /// The fixture for the first IdP-role issuer under test (for cases that run once).
    pub fn any(cx: &Ctx) -> Result<Self, Outcome> {
        match cx.with_role(Role::Idp).next() {
            Some(iss) => Self::for_idp(cx, iss),
            None => Err(Outcome::skip(
                "no IdP-role issuer under test: no way to obtain an ID-JAG",
            )),
        }
    }

    /// A demo agent by client id, or a SKIP.
    pub fn agent(&self, client_id: &str) -> Result<&Agent, Outcome> {
        self.agents
            .iter()
            .find(|a| a.client_id == client_id)
            .ok_or_else(|| Outcome::skip(format!("bootstrap lists no demo agent {client_id}")))
    }

    /// Every demo agent bootstrap lists.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// A demo human by username, or a SKIP.
    pub fn human(&self, username: &str) -> Result<&Human, Outcome> {
        self.humans
            .iter()
            .find(|h| h.username == username)
            .ok_or_else(|| Outcome::skip(format!("bootstrap lists no demo human {username}")))
    }

    /// An ID token from the dev IdP for `user` with `aud` = `idp_client_id`, optionally with
    /// `auth_time` back-dated by `auth_time_ago` seconds.
    pub async fn id_token(
        &self,
        cx: &Ctx,
        user: &str,
        idp_client_id: &str,
        auth_time_ago: Option<u64>,
    ) -> Result<String, String> {
        let mut req = Req::post(&self.mint_endpoint)
            .param("user", user)
            .param("client_id", idp_client_id);
        if let Some(ago) = auth_time_ago {
            req = req.param("auth_time_ago", &ago.to_string());
        }
        let resp = cx.http.send(req).await?;
        match resp.json().as_ref().and_then(|v| v.get("id_token")) {
            Some(Value::String(t)) if resp.status == 200 => Ok(t.clone()),
            _ => Err(format!(
                "dev IdP mint for {user}/{idp_client_id} failed: {}",
                resp.summary()
            )),
        }
    }

    /// A fresh ID token for the ask's human, addressed to the ask's agent.
    pub async fn id_token_for(&self, cx: &Ctx, ask: &Ask<'_>) -> Result<String, String> {
        let agent = self
            .agents
            .iter()
            .find(|a| a.client_id == ask.agent)
            .ok_or_else(|| format!("no demo agent {}", ask.agent))?;
        self.id_token(cx, ask.user, &agent.idp_client_id, None)
            .await
    }

    /// Default client-assertion claims for `agent` (RFC 7523 §3, checklist "valid agent
    /// auth"): iss = sub = client id, aud = the IdP issuer, a fresh jti, a 60 s lifetime.
    pub fn assertion_claims(&self, agent: &Agent) -> Map<String, Value> {
        let now = jwt::now();
        let claims = json!({
            "iss": agent.client_id,
            "sub": agent.client_id,
            "aud": self.idp_issuer,
            "jti": marker("jti"),
            "iat": now,
            "exp": now + 60,
        });
        claims.as_object().cloned().unwrap_or_default()
    }

    /// A client assertion signed with `agent`'s registered key, with `edit` applied to the
    /// default claims first.
    pub fn assertion(
        &self,
        agent: &Agent,
        edit: impl FnOnce(&mut Map<String, Value>),
    ) -> Result<String, String> {
        let mut claims = self.assertion_claims(agent);
        edit(&mut claims);
        agent_signer(agent)?.sign("JWT", Value::Object(claims))
    }

    /// The token-exchange form for `ask` with `subject_token`.
    pub fn te_form(&self, ask: &Ask<'_>, subject_token: &str) -> Form {
        let mut f = Form(vec![
            ("grant_type".into(), oauth::GRANT_TOKEN_EXCHANGE.into()),
            (
                "requested_token_type".into(),
                oauth::TOKEN_TYPE_ID_JAG.into(),
            ),
            ("subject_token".into(), subject_token.into()),
            (
                "subject_token_type".into(),
                oauth::TOKEN_TYPE_ID_TOKEN.into(),
            ),
            ("audience".into(), self.audience.clone()),
        ]);
        for (name, value) in [
            ("resource", ask.resource),
            ("scope", ask.scope),
            ("channel", ask.channel),
        ] {
            if let Some(v) = value {
                f.add(name, v);
            }
        }
        f
    }

    /// A POST of `form` to the IdP token endpoint as it is (no authentication added), with
    /// the tokens and secrets it carries registered for B17.
    pub fn te_post(&self, form: &Form) -> Req {
        register(Req::post(&self.token_endpoint).params(&form.0), form)
    }

    /// A POST of `form` to the IdP token endpoint, authenticated as `agent` by `auth`. The
    /// subject token's signature and every credential are registered as secrets.
    pub fn te_request(&self, form: &Form, agent: &Agent, auth: Auth) -> Result<Req, String> {
        let mut req = Req::post(&self.token_endpoint);
        let mut form = form.clone();
        match auth {
            Auth::Basic => {
                let secret = agent_secret(agent)?;
                req = req.basic(&agent.client_id, secret);
            }
            Auth::Post => {
                let secret = agent_secret(agent)?;
                form.add("client_id", &agent.client_id);
                form.add("client_secret", secret);
                req = req.secret(secret);
            }
            Auth::Key => {
                let assertion = self.assertion(agent, |_| {})?;
                form.add("client_id", &agent.client_id);
                form.add("client_assertion_type", oauth::CLIENT_ASSERTION_JWT_BEARER);
                form.add("client_assertion", &assertion);
                req = req.secret(jwt::signature_segment(&assertion));
            }
        }
        Ok(register(req.params(&form.0), &form))
    }

    /// A token exchange for `ask` with a fresh ID token, authenticated by `auth`.
    pub async fn exchange(&self, cx: &Ctx, ask: &Ask<'_>, auth: Auth) -> Result<Resp, String> {
        let agent = self
            .agents
            .iter()
            .find(|a| a.client_id == ask.agent)
            .ok_or_else(|| format!("no demo agent {}", ask.agent))?;
        let id_token = self.id_token_for(cx, ask).await?;
        let req = self.te_request(&self.te_form(ask, &id_token), agent, auth)?;
        cx.http.send(req).await
    }

    /// A successful exchange for `ask` (fresh ID token, `auth`), decoded; `Err` describes
    /// the failed response.
    pub async fn obtain(&self, cx: &Ctx, ask: &Ask<'_>, auth: Auth) -> Result<Issued, String> {
        let agent = self
            .agents
            .iter()
            .find(|a| a.client_id == ask.agent)
            .ok_or_else(|| format!("no demo agent {}", ask.agent))?;
        let id_token = self.id_token_for(cx, ask).await?;
        let form = self.te_form(ask, &id_token);
        let resp = cx.http.send(self.te_request(&form, agent, auth)?).await?;
        Issued::from_response(&resp, id_token)
    }

    /// An access token for `issued` (an ID-JAG for `agent`) from the AS-role issuer's
    /// jwt-bearer grant, the agent authenticating with Basic; `Err` says why there is none.
    pub async fn access_token(
        &self,
        cx: &Ctx,
        agent: &Agent,
        issued: &Issued,
    ) -> Result<String, String> {
        let te = self
            .as_token_endpoint
            .as_deref()
            .ok_or("the AS-role issuer is not under test")?;
        let secret = agent_secret(agent)?;
        let req = Req::post(te)
            .param("grant_type", oauth::GRANT_JWT_BEARER)
            .param("assertion", &issued.jwt)
            .secret(jwt::signature_segment(&issued.jwt))
            .basic(&agent.client_id, secret);
        let resp = cx.http.send(req).await?;
        match resp.json().as_ref().and_then(|v| v.get("access_token")) {
            Some(Value::String(t)) if resp.status == 200 => Ok(t.clone()),
            _ => Err(format!("jwt-bearer at {te}: {}", resp.summary())),
        }
    }
}

/// A successful token-exchange response and the ID-JAG in it.
pub struct Issued {
    /// The ID token that was exchanged.
    pub id_token: String,
    /// The response body.
    pub body: Map<String, Value>,
    /// The `access_token` (the ID-JAG), compact.
    pub jwt: String,
    /// The ID-JAG decoded (not verified).
    pub decoded: Decoded,
}

impl Issued {
    /// Requires a 200 JSON object with a string `access_token` that decodes as a JWS.
    pub fn from_response(resp: &Resp, id_token: String) -> Result<Self, String> {
        if resp.status != 200 {
            return Err(format!("token exchange failed: {}", resp.summary()));
        }
        let Some(Value::Object(body)) = resp.json() else {
            return Err(format!("200 but not a JSON object: {}", resp.summary()));
        };
        let Some(Value::String(jwt)) = body.get("access_token").cloned() else {
            return Err("200 without a string access_token".to_owned());
        };
        let decoded = jwt::decode(&jwt).map_err(|e| format!("access_token: {e}"))?;
        Ok(Self {
            id_token,
            body,
            jwt,
            decoded,
        })
    }

    /// A claim of the ID-JAG.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.decoded.claims.get(name)
    }
}

/// A form body in order; duplicates allowed.
#[derive(Clone, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// Appends a pair.
    pub fn add(&mut self, name: &str, value: &str) {
        self.0.push((name.to_owned(), value.to_owned()));
    }

    /// Removes every pair named `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| k != name);
    }

    /// Replaces every pair named `name` by one with `value` (appended if absent).
    pub fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.add(name, value);
    }

    /// Builder-style [`Form::remove`].
    pub fn without(mut self, name: &str) -> Self {
        self.remove(name);
        self
    }

    /// Builder-style [`Form::set`].
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.set(name, value);
        self
    }

    /// Builder-style [`Form::add`].
    pub fn plus(mut self, name: &str, value: &str) -> Self {
        self.add(name, value);
        self
    }
}

/// Registers the JWT-shaped tokens a form carries (their signature segments) and any
/// secrets as B17 markers.
pub fn register(mut req: Req, form: &Form) -> Req {
    for (name, value) in &form.0 {
        match name.as_str() {
            "subject_token" | "actor_token" | "assertion" | "client_assertion" => {
                req = req.secret(if jwt::is_compact(value) {
                    jwt::signature_segment(value)
                } else {
                    value
                });
            }
            "client_secret" => req = req.secret(value),
            _ => {}
        }
    }
    req
}

/// The agent's client secret, or an error naming the agent.
pub fn agent_secret(agent: &Agent) -> Result<&str, String> {
    agent
        .secret
        .as_deref()
        .ok_or_else(|| format!("demo agent {} has no client_secret", agent.client_id))
}

/// A signer for the agent's registered private key.
pub fn agent_signer(agent: &Agent) -> Result<Signer, String> {
    let jwk = agent
        .private_jwk
        .as_ref()
        .ok_or_else(|| format!("demo agent {} has no private_jwk", agent.client_id))?;
    Signer::from_private_jwk(jwk)
}

/// An RFC 9449 §4.2 proof: `typ` dpop+jwt, the public key in `jwk`, and the given claims.
pub fn dpop_proof(signer: &Signer, claims: &Value) -> Result<String, String> {
    let jwk = signer
        .public_jwk()
        .ok_or("no public JWK for the DPoP key")?;
    let mut header = Map::new();
    header.insert("typ".into(), json!("dpop+jwt"));
    header.insert("jwk".into(), Value::Object(jwk.clone()));
    signer.sign_with_header(header, claims)
}

/// Valid proof claims for a POST to `htu`.
pub fn proof_claims(htu: &str) -> Value {
    json!({"jti": marker("dpopjti"), "htm": "POST", "htu": htu, "iat": jwt::now()})
}

/// The public keys of an issuer's JWKS (`jwks_uri` from its metadata).
pub async fn jwks(cx: &Ctx, iss: &Issuer) -> Result<Vec<Map<String, Value>>, String> {
    let meta = iss
        .metadata
        .as_ref()
        .ok_or("no metadata for this issuer (see A1)")?;
    let url = oauth::endpoint_url("jwks_uri", meta.get("jwks_uri"))?;
    let resp = cx.http.send(Req::get(url.as_str())).await?;
    if resp.status != 200 {
        return Err(format!("GET {url}: {}", resp.summary()));
    }
    match resp.json().as_ref().and_then(|v| v.get("keys")) {
        Some(Value::Array(keys)) => Ok(keys.iter().filter_map(Value::as_object).cloned().collect()),
        _ => Err(format!("GET {url}: not a JWK Set")),
    }
}

/// Checks a lanyard-issued JWT against its issuer's JWKS (checklist A7): the header `kid`
/// names a published key, the header `alg` equals that key's `alg`, and the signature
/// verifies with it. Returns the kid and alg.
pub fn check_against_jwks(compact: &str, keys: &[Map<String, Value>]) -> Result<String, String> {
    let d = jwt::decode(compact)?;
    let kid = match d.header.get("kid") {
        Some(Value::String(k)) if !k.is_empty() => k,
        Some(other) => return Err(format!("header kid is not a non-empty string: {other}")),
        None => return Err("header has no kid".to_owned()),
    };
    let alg = d
        .header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or("(none)");
    let key = keys
        .iter()
        .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
        .ok_or_else(|| format!("kid {kid:?} is not in the issuer's JWKS"))?;
    match key.get("alg").and_then(Value::as_str) {
        Some(key_alg) if key_alg == alg => {}
        Some(key_alg) => {
            return Err(format!(
                "header alg {alg} but JWKS key {kid:?} has alg {key_alg}"
            ));
        }
        None => return Err(format!("JWKS key {kid:?} has no alg")),
    }
    jwt::verify(compact, key).map_err(|e| format!("kid {kid:?}: {e}"))?;
    Ok(format!("kid {kid} {alg}"))
}

fn parse_agent(v: &Value) -> Option<Agent> {
    Some(Agent {
        client_id: v.get("client_id")?.as_str()?.to_owned(),
        idp_client_id: v.get("idp_client_id")?.as_str()?.to_owned(),
        secret: v
            .get("client_secret")
            .and_then(Value::as_str)
            .map(str::to_owned),
        private_jwk: v.get("private_jwk").and_then(Value::as_object).cloned(),
        enabled: v.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        max_ttl: v.get("max_ttl").and_then(Value::as_u64),
        dpop_bound: v
            .get("dpop_bound_access_tokens")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

fn parse_human(v: &Value) -> Option<Human> {
    Some(Human {
        username: v.get("username")?.as_str()?.to_owned(),
        sub: v.get("sub")?.as_str()?.to_owned(),
    })
}
