//! Checklist §3 K: RFC 7662 introspection (lines 109–112), and the helpers section L shares.
//!
//! Each case runs at every issuer that advertises an `introspection_endpoint` and whose
//! tokens the runner can obtain from the dev flow: the IdP-role issuer's tokens are ID-JAGs
//! (leg 1, token exchange), the AS-role issuer's are access tokens (leg 1, then leg 2
//! jwt-bearer). The caller is the agent a token was issued to unless a case says otherwise:
//! triage-bot with HTTP Basic, deploy-bot with `private_key_jwt` (`aud` = the issuer). Every
//! probe that expects a refusal or `{"active":false}` has a control showing that the same
//! caller gets `active:true` for a live token of its own, so a server answering everything
//! inactive (or refusing everything) cannot pass.

use serde_json::{Map, Value, json};

use super::fixture::{Agent, Ask, Auth, DEPLOY, Fixture, Issued, TRIAGE, need};
use super::{Case, CaseFuture, Ctx, Findings, Issuer, Outcome, Role, Target, check};
use crate::http::{Req, Resp};
use crate::jwt::{self, Signer};
use crate::oauth::{self, expect_error, marker};

/// Section K, in checklist order.
pub const CASES: &[Case] = &[
    Case {
        id: "K109",
        line: 109,
        title: "unauthenticated introspection → 401 invalid_client",
        clause: "7662 §2.1, §2.3",
        target: Target::EachIssuer(k109_unauthenticated),
    },
    Case {
        id: "K110",
        line: 110,
        title: "active token → 200 active:true with iss, sub, aud, client_id, scope, exp, iat, jti, \
                token_type (and cnf when bound)",
        clause: "7662 §2.2; 9449 §6.2",
        target: Target::EachIssuer(k110_active),
    },
    Case {
        id: "K111",
        line: 111,
        title: "revoked, unknown, garbage, forged, other-issuer or other agent's token → exactly \
                {\"active\":false}",
        clause: "7662 §2.2",
        target: Target::EachIssuer(k111_inactive),
    },
    Case {
        id: "K112",
        line: 112,
        title: "introspection without token → 400 invalid_request",
        clause: "7662 §2.1",
        target: Target::EachIssuer(k112_missing_token),
    },
];

/// A `token_type_hint` no registry defines (sections K and L).
pub(super) const UNKNOWN_HINT: &str = "lanyard_conformance_unknown_token_type";

/// One issuer under test as the dev fixture sees it: which kind of token it issues and
/// where its introspection and revocation endpoints are.
pub(super) struct Scene {
    /// The dev fixture (agents, humans, the IdP-role issuer, the AS-role token endpoint).
    pub fx: Fixture,
    /// This issuer's identifier.
    pub issuer: String,
    /// The role whose tokens this issuer issues (ID-JAGs for the IdP, access tokens for
    /// the AS).
    pub role: Role,
    introspection: Option<String>,
    revocation: Option<String>,
}

/// A live token obtained from the dev flow.
pub(super) struct Live {
    /// The compact JWT.
    pub compact: String,
    /// Its claims (decoded, not verified).
    pub claims: Map<String, Value>,
    /// The `token_type` of the token response that issued it.
    pub token_type: Option<String>,
}

impl Scene {
    /// The scene for `iss`, or a SKIP saying why its tokens cannot be obtained.
    pub fn new(cx: &Ctx, iss: &Issuer) -> Result<Self, Outcome> {
        let fx = Fixture::any(cx)?;
        let role = if iss.roles.contains(&Role::Idp) && iss.issuer == fx.idp_issuer {
            Role::Idp
        } else if iss.roles.contains(&Role::As)
            && iss.issuer == fx.audience
            && fx.as_token_endpoint.is_some()
        {
            Role::As
        } else {
            return Err(Outcome::skip(format!(
                "no way to obtain a token issued by {}: it is neither the bootstrap's IdP-role \
                 issuer nor the AS-role issuer the IdP exchanges for",
                iss.issuer
            )));
        };
        let endpoint = |name: &str| {
            iss.metadata
                .as_ref()
                .and_then(|m| oauth::endpoint_url(name, m.get(name)).ok())
                .map(|u| u.to_string())
        };
        Ok(Self {
            introspection: endpoint("introspection_endpoint"),
            revocation: endpoint("revocation_endpoint"),
            issuer: iss.issuer.clone(),
            role,
            fx,
        })
    }

    /// The scene of the issuer holding the other role, when it is under test and usable.
    pub fn other(&self, cx: &Ctx) -> Result<Self, String> {
        cx.issuers
            .iter()
            .filter(|i| i.issuer != self.issuer)
            .find_map(|i| Self::new(cx, i).ok().filter(|s| s.role != self.role))
            .ok_or_else(|| "no other issuer under test whose tokens can be obtained".to_owned())
    }

    /// The advertised introspection endpoint, or a SKIP.
    pub fn introspection_endpoint(&self) -> Result<&str, Outcome> {
        self.introspection.as_deref().ok_or_else(|| {
            Outcome::skip("no usable introspection_endpoint advertised (see A2.introspection)")
        })
    }

    /// The advertised revocation endpoint, or a SKIP.
    pub fn revocation_endpoint(&self) -> Result<&str, Outcome> {
        self.revocation.as_deref().ok_or_else(|| {
            Outcome::skip("no usable revocation_endpoint advertised (see A2.revocation)")
        })
    }

    /// A demo agent, or an error naming it.
    pub fn agent(&self, id: &str) -> Result<&Agent, String> {
        self.fx
            .agent(id)
            .map_err(|_| format!("bootstrap lists no demo agent {id}"))
    }

    /// A fresh live token of this issuer for `ask` (its agent authenticating with its own
    /// method); with `dpop`, the issuing request carries a proof by that key, so the token
    /// is bound to it.
    pub async fn token(
        &self,
        cx: &Ctx,
        ask: &Ask<'_>,
        dpop: Option<&Signer>,
    ) -> Result<Live, String> {
        let fx = &self.fx;
        let agent = self.agent(ask.agent)?;
        let id_token = fx.id_token_for(cx, ask).await?;
        let form = fx.te_form(ask, &id_token);
        let mut req = fx.te_request(&form, agent, auth_of(agent))?;
        if self.role == Role::Idp
            && let Some(signer) = dpop
        {
            let proof = dpop_proof(signer, &fx.token_endpoint)?;
            req = req
                .header("DPoP", &proof)
                .secret(jwt::signature_segment(&proof));
        }
        let issued = Issued::from_response(&cx.http.send(req).await?, id_token)?;
        if self.role == Role::Idp {
            return Ok(Live {
                token_type: string(issued.body.get("token_type")),
                claims: issued.decoded.claims,
                compact: issued.jwt,
            });
        }
        let te = fx
            .as_token_endpoint
            .as_deref()
            .ok_or("the AS-role issuer is not under test")?;
        let resp = jwt_bearer(cx, fx, agent, &self.issuer, te, &issued.jwt, dpop).await?;
        let body = match resp.json() {
            Some(Value::Object(b)) if resp.status == 200 => b,
            _ => return Err(format!("jwt-bearer at {te}: {}", resp.summary())),
        };
        let compact = string(body.get("access_token"))
            .ok_or_else(|| format!("jwt-bearer at {te}: 200 without a string access_token"))?;
        let claims = jwt::decode(&compact)
            .map_err(|e| format!("access token: {e}"))?
            .claims;
        Ok(Live {
            token_type: string(body.get("token_type")),
            claims,
            compact,
        })
    }

    /// `POST` to this issuer's introspection endpoint as `agent`, with `token`.
    pub async fn introspect(&self, cx: &Ctx, agent: &str, token: &str) -> Result<Resp, String> {
        let url = self
            .introspection
            .as_deref()
            .ok_or("no introspection_endpoint advertised")?;
        let agent = self.agent(agent)?;
        let req = with_token(Req::post(url), token);
        cx.http
            .send(authenticated(req, &self.fx, agent, &self.issuer)?)
            .await
    }

    /// `POST` to this issuer's revocation endpoint as `agent`, with `token` and the hint.
    pub async fn revoke(
        &self,
        cx: &Ctx,
        agent: &str,
        token: &str,
        hint: Option<&str>,
    ) -> Result<Resp, String> {
        let url = self
            .revocation
            .as_deref()
            .ok_or("no revocation_endpoint advertised")?;
        let agent = self.agent(agent)?;
        let mut req = with_token(Req::post(url), token);
        if let Some(h) = hint {
            req = req.param("token_type_hint", h);
        }
        cx.http
            .send(authenticated(req, &self.fx, agent, &self.issuer)?)
            .await
    }

    /// Whether `agent` sees `token` as active here: `Ok`, or why not.
    pub async fn still_active(&self, cx: &Ctx, agent: &str, token: &str) -> Result<(), String> {
        let resp = self.introspect(cx, agent, token).await?;
        expect_active(&resp).map(|_| ())
    }

    /// The `typ` this issuer's tokens carry.
    pub fn token_typ(&self) -> &'static str {
        match self.role {
            Role::Idp => "oauth-id-jag+jwt",
            Role::As => "at+jwt",
        }
    }
}

/// The string value of a JSON member, if it is one.
fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_owned)
}

/// How a demo agent authenticates: its secret by Basic when it has one, else
/// `private_key_jwt`.
pub(super) fn auth_of(agent: &Agent) -> Auth {
    if agent.secret.is_some() {
        Auth::Basic
    } else {
        Auth::Key
    }
}

/// Adds `agent`'s client authentication for a request to `issuer`: Basic with its secret,
/// or a fresh `private_key_jwt` assertion with `aud` = `issuer`.
pub(super) fn authenticated(
    req: Req,
    fx: &Fixture,
    agent: &Agent,
    issuer: &str,
) -> Result<Req, String> {
    if let Some(secret) = &agent.secret {
        return Ok(req.basic(&agent.client_id, secret));
    }
    let assertion = fx.assertion(agent, |c| {
        c.insert("aud".into(), json!(issuer));
    })?;
    Ok(req
        .param("client_id", &agent.client_id)
        .param("client_assertion_type", oauth::CLIENT_ASSERTION_JWT_BEARER)
        .param("client_assertion", &assertion)
        .secret(jwt::signature_segment(&assertion)))
}

/// Adds the `token` parameter, registering it (its signature, for a JWT) as a secret.
pub(super) fn with_token(req: Req, token: &str) -> Req {
    let marker = if jwt::is_compact(token) {
        jwt::signature_segment(token)
    } else {
        token
    };
    req.param("token", token).secret(marker)
}

/// A jwt-bearer request at the AS-role token endpoint `te` with `id_jag`, `agent`
/// authenticating for `as_issuer`, and an optional DPoP proof by `dpop`.
pub(super) async fn jwt_bearer(
    cx: &Ctx,
    fx: &Fixture,
    agent: &Agent,
    as_issuer: &str,
    te: &str,
    id_jag: &str,
    dpop: Option<&Signer>,
) -> Result<Resp, String> {
    let mut req = Req::post(te)
        .param("grant_type", oauth::GRANT_JWT_BEARER)
        .param("assertion", id_jag)
        .secret(jwt::signature_segment(id_jag));
    if let Some(signer) = dpop {
        let proof = dpop_proof(signer, te)?;
        req = req
            .header("DPoP", &proof)
            .secret(jwt::signature_segment(&proof));
    }
    cx.http
        .send(authenticated(req, fx, agent, as_issuer)?)
        .await
}

/// An RFC 9449 §4.2 proof for a `POST` to `htu`.
fn dpop_proof(signer: &Signer, htu: &str) -> Result<String, String> {
    let jwk = signer
        .public_jwk()
        .ok_or("no public JWK for the DPoP key")?;
    let mut header = Map::new();
    header.insert("typ".into(), json!("dpop+jwt"));
    header.insert("jwk".into(), Value::Object(jwk.clone()));
    let claims = json!({"jti": marker("dpopjti"), "htm": "POST", "htu": htu, "iat": jwt::now()});
    signer.sign_with_header(header, &claims)
}

/// 200 with a JSON object whose `active` is `true`; returns the object.
pub(super) fn expect_active(resp: &Resp) -> Result<Map<String, Value>, String> {
    match resp.json() {
        Some(Value::Object(body)) if resp.status == 200 => match body.get("active") {
            Some(Value::Bool(true)) => Ok(body),
            other => Err(format!(
                "expected active:true, got active={}",
                other.map_or_else(|| "(absent)".to_owned(), Value::to_string)
            )),
        },
        _ => Err(format!("expected 200 active:true, got {}", resp.summary())),
    }
}

/// 200 `application/json` whose body is exactly `{"active":false}` (RFC 7662 §2.2: nothing
/// else about a token the caller may not see).
pub(super) fn expect_inactive(resp: &Resp) -> Result<String, String> {
    if resp.status != 200 {
        return Err(format!(
            "expected 200 {{\"active\":false}}, got {}",
            resp.summary()
        ));
    }
    if resp.media_type().as_deref() != Some("application/json") {
        return Err(format!(
            "Content-Type {:?} is not application/json",
            resp.header("content-type").unwrap_or("(none)")
        ));
    }
    match resp.json() {
        Some(body) if body == json!({"active": false}) => Ok("200 {\"active\":false}".to_owned()),
        Some(body) => Err(format!("body is {body}, not exactly {{\"active\":false}}")),
        None => Err(format!("body is not JSON: {}", resp.summary())),
    }
}

/// A client-authentication failure: 401 `invalid_client`, `WWW-Authenticate` naming Basic
/// when Basic was tried (RFC 6749 §5.2), and nothing about the token (no `active`).
pub(super) fn expect_invalid_client(resp: &Resp, basic_tried: bool) -> Result<String, String> {
    let mut problems = Vec::new();
    let ok = expect_error(resp, &[401], &["invalid_client"]).unwrap_or_else(|e| {
        problems.push(e);
        String::new()
    });
    if basic_tried {
        let www = resp.header_joined("www-authenticate").unwrap_or_default();
        if !www
            .split(',')
            .any(|c| c.trim_start().to_ascii_lowercase().starts_with("basic"))
        {
            problems.push(format!(
                "Basic was tried but WWW-Authenticate is {www:?}, not a Basic challenge"
            ));
        }
    }
    if resp
        .json()
        .as_ref()
        .is_some_and(|b| b.get("active").is_some())
    {
        problems.push("the refusal carries an active member".to_owned());
    }
    if !problems.is_empty() {
        return Err(problems.join(", "));
    }
    Ok(if basic_tried {
        format!("{ok} + Basic challenge")
    } else {
        ok
    })
}

/// The three unauthenticated variants of a request to `url` carrying `token`: no
/// credentials, a bare `client_id`, and Basic with a wrong secret. Each is
/// `(label, request, basic_tried)`.
pub(super) fn unauthenticated_probes(url: &str, token: &str) -> Vec<(&'static str, Req, bool)> {
    vec![
        ("no credentials", with_token(Req::post(url), token), false),
        (
            "client_id only",
            with_token(Req::post(url), token).param("client_id", TRIAGE),
            false,
        ),
        (
            "Basic with a wrong secret",
            with_token(Req::post(url), token).basic(TRIAGE, &marker("wrongsecret")),
            true,
        ),
    ]
}

/// Values that are not a token this issuer issued, as `(label, value)`: an unknown opaque
/// string, garbage, and two forgeries made from `live` (one of its live tokens): a copy
/// with a signature bit flipped, and a look-alike signed by a key it never published.
pub(super) fn not_tokens(sc: &Scene, live: &Live) -> Result<Vec<(&'static str, String)>, String> {
    let flipped = jwt::flip_signature_bit(&live.compact)?;
    let stranger = Signer::ephemeral_es256(&marker("kid"))?;
    let mut claims = live.claims.clone();
    claims.insert("jti".into(), json!(marker("jti")));
    let lookalike = stranger.sign(sc.token_typ(), Value::Object(claims))?;
    Ok(vec![
        ("unknown opaque string", marker("token")),
        (
            "garbage (three non-base64 segments)",
            "%%%.###.!!!".to_owned(),
        ),
        ("live token with one signature bit flipped", flipped),
        ("look-alike signed by an unpublished key", lookalike),
    ])
}

/// A signer for binding tokens at this issuer, or why it cannot be done.
fn dpop_signer(iss: &Issuer) -> Result<Signer, String> {
    let algs: Vec<&str> = iss
        .metadata
        .as_ref()
        .and_then(|m| m.get("dpop_signing_alg_values_supported"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !algs.contains(&"ES256") {
        return Err(format!(
            "dpop_signing_alg_values_supported {algs:?} lacks ES256 (the runner's proof alg)"
        ));
    }
    Signer::ephemeral_es256(&marker("dpopkid"))
}

/// The scene of `iss` with an introspection endpoint and triage-bot, or return the SKIP.
macro_rules! setup {
    ($cx:expr, $iss:expr) => {{
        let sc = need!(Scene::new($cx, $iss));
        need!(sc.introspection_endpoint());
        need!(sc.fx.agent(TRIAGE));
        sc
    }};
}

fn k109_unauthenticated<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let sc = setup!(cx, iss);
        let url = need!(sc.introspection_endpoint()).to_owned();
        let live = sc.token(cx, &Ask::triage(), None).await?;
        let mut f = Findings::new();
        let control = sc.introspect(cx, TRIAGE, &live.compact).await?;
        expect_active(&control)
            .map_err(|e| format!("control (triage-bot, Basic, its own live token) failed: {e}"))?;
        f.note("control (triage-bot, Basic): 200 active:true");
        for (label, req, basic) in unauthenticated_probes(&url, &live.compact) {
            let resp = cx.http.send(req).await?;
            f.record(label, expect_invalid_client(&resp, basic));
        }
        Ok(f.outcome())
    })
}

/// Compares one introspection answer with the token it describes. `bound_jkt` is the
/// thumbprint the token must be bound to, if any.
fn compare_record(
    sc: &Scene,
    live: &Live,
    body: &Map<String, Value>,
    bound_jkt: Option<&str>,
) -> Result<String, String> {
    let mut problems = Vec::new();
    let c = &live.claims;
    match body.get("iss") {
        Some(Value::String(s)) if *s == sc.issuer => {}
        other => problems.push(format!("iss is {other:?}, not {:?}", sc.issuer)),
    }
    for name in ["sub", "client_id", "scope", "exp", "iat", "jti"] {
        match (body.get(name), c.get(name)) {
            (Some(got), Some(want)) if got == want => {}
            (None, _) => problems.push(format!("no {name}")),
            (Some(got), Some(want)) => problems.push(format!("{name} is {got}, token has {want}")),
            (Some(got), None) => problems.push(format!("{name} is {got}, token has none")),
        }
    }
    match (body.get("aud"), c.get("aud")) {
        (Some(got), Some(want))
            if audiences(got) == audiences(want) && !audiences(got).is_empty() => {}
        (None, _) => problems.push("no aud".to_owned()),
        (got, want) => problems.push(format!("aud is {got:?}, token has {want:?}")),
    }
    match (
        body.get("token_type").and_then(Value::as_str),
        &live.token_type,
    ) {
        (Some(got), Some(want)) if got.eq_ignore_ascii_case(want) => {}
        (Some(got), want) => problems.push(format!(
            "token_type is {got:?}, the token response said {want:?}"
        )),
        (None, _) => problems.push("no string token_type".to_owned()),
    }
    match (bound_jkt, body.get("cnf")) {
        (None, None) => {}
        (None, Some(cnf)) => problems.push(format!("cnf {cnf} for an unbound token")),
        (Some(jkt), cnf) => {
            let got = cnf.and_then(|v| v.get("jkt")).and_then(Value::as_str);
            let in_token = c
                .get("cnf")
                .and_then(|v| v.get("jkt"))
                .and_then(Value::as_str);
            if got != Some(jkt) || in_token != Some(jkt) {
                problems.push(format!(
                    "cnf.jkt is {got:?} (token {in_token:?}), expected {jkt:?}"
                ));
            }
        }
    }
    if let (Some(got), Some(want)) = (body.get("act"), c.get("act"))
        && got != want
    {
        problems.push(format!("act is {got}, token has {want}"));
    }
    if !problems.is_empty() {
        return Err(problems.join(", "));
    }
    let standard = [
        "active",
        "iss",
        "sub",
        "aud",
        "client_id",
        "scope",
        "exp",
        "iat",
        "jti",
        "token_type",
        "cnf",
    ];
    let extras: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !standard.contains(k))
        .collect();
    Ok(format!(
        "active:true, all 9 members equal the token's, token_type {}{}, also {extras:?}",
        body.get("token_type")
            .map_or_else(String::new, Value::to_string),
        bound_jkt.map_or_else(String::new, |j| format!(", cnf.jkt={j}")),
    ))
}

/// An `aud` value (string or array of strings) as a sorted list.
fn audiences(v: &Value) -> Vec<&str> {
    let mut out: Vec<&str> = match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    out.sort_unstable();
    out
}

fn k110_active<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let sc = setup!(cx, iss);
        let mut f = Findings::new();
        for (label, ask) in [
            ("triage-bot (Basic)", Ask::triage()),
            ("deploy-bot (private_key_jwt)", Ask::deploy()),
        ] {
            if sc.fx.agent(ask.agent).is_err() {
                f.note(format!("{label}: not in bootstrap, not tried"));
                continue;
            }
            let result = async {
                let live = sc.token(cx, &ask, None).await?;
                let body = expect_active(&sc.introspect(cx, ask.agent, &live.compact).await?)?;
                compare_record(&sc, &live, &body, None)
            }
            .await;
            f.record(label, result);
        }
        match dpop_signer(iss) {
            Ok(signer) => {
                let result = async {
                    let jkt = jwt::thumbprint(signer.public_jwk().ok_or("no public JWK")?)?;
                    let live = sc.token(cx, &Ask::triage(), Some(&signer)).await?;
                    let body = expect_active(&sc.introspect(cx, TRIAGE, &live.compact).await?)?;
                    compare_record(&sc, &live, &body, Some(&jkt))
                }
                .await;
                f.record("triage-bot, DPoP-bound", result);
            }
            Err(why) => f.note(format!("DPoP-bound: not tried ({why})")),
        }
        Ok(f.outcome())
    })
}

fn k111_inactive<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let sc = setup!(cx, iss);
        let live = sc.token(cx, &Ask::triage(), None).await?;
        let mut f = Findings::new();
        expect_active(&sc.introspect(cx, TRIAGE, &live.compact).await?)
            .map_err(|e| format!("control (triage-bot, its own live token) failed: {e}"))?;
        f.note("control (own live token): active:true");
        for (label, token) in not_tokens(&sc, &live)? {
            let resp = sc.introspect(cx, TRIAGE, &token).await?;
            f.record(label, expect_inactive(&resp));
        }
        // Another agent's live token: live (its own agent sees it active), but not visible.
        if sc.fx.agent(DEPLOY).is_ok() {
            let result = async {
                let theirs = sc.token(cx, &Ask::deploy(), None).await?;
                sc.still_active(cx, DEPLOY, &theirs.compact)
                    .await
                    .map_err(|e| format!("control (deploy-bot sees its own token): {e}"))?;
                expect_inactive(&sc.introspect(cx, TRIAGE, &theirs.compact).await?)
                    .map(|ok| format!("{ok} (deploy-bot itself sees it active)"))
            }
            .await;
            f.record("deploy-bot's live token, asked by triage-bot", result);
        } else {
            f.note(format!("another agent's token: not tried (no {DEPLOY})"));
        }
        // The other issuer's live token (its iss and aud are not this issuer's tokens').
        match sc.other(cx) {
            Ok(other) => {
                let result = async {
                    let theirs = other.token(cx, &Ask::triage(), None).await?;
                    expect_inactive(&sc.introspect(cx, TRIAGE, &theirs.compact).await?)
                }
                .await;
                f.record(
                    &format!("live token of {} (other issuer)", other.issuer),
                    result,
                );
            }
            Err(why) => f.note(format!("other issuer's token: not tried ({why})")),
        }
        // A revoked token, through this issuer's revocation endpoint.
        if sc.revocation_endpoint().is_ok() {
            let result = async {
                let doomed = sc.token(cx, &Ask::triage(), None).await?;
                let resp = sc.revoke(cx, TRIAGE, &doomed.compact, None).await?;
                if resp.status != 200 {
                    return Err(format!("revocation refused ({}), see L114", resp.summary()));
                }
                expect_inactive(&sc.introspect(cx, TRIAGE, &doomed.compact).await?)
            }
            .await;
            f.record("own token after revocation", result);
        } else {
            f.note("revoked: not tried (no revocation_endpoint)");
        }
        f.note(
            "expired: not tried (lanyard tokens live 300 s or more and the runner does not \
             wait; token_status::liveness checks exp first)",
        );
        Ok(f.outcome())
    })
}

fn k112_missing_token<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let sc = setup!(cx, iss);
        let url = need!(sc.introspection_endpoint()).to_owned();
        let triage = sc.agent(TRIAGE)?;
        let mut f = Findings::new();
        let control = sc.introspect(cx, TRIAGE, &marker("token")).await?;
        expect_inactive(&control)
            .map_err(|e| format!("control (same request with an unknown token) failed: {e}"))?;
        f.note("control with token=<unknown>: 200 {\"active\":false}");
        let probes = [
            ("no parameters", Req::post(&url)),
            (
                "token_type_hint only",
                Req::post(&url).param("token_type_hint", "access_token"),
            ),
            ("empty token", Req::post(&url).param("token", "")),
        ];
        for (label, req) in probes {
            let req = authenticated(req, &sc.fx, triage, &sc.issuer)?;
            let resp = cx.http.send(req).await?;
            f.record(label, expect_error(&resp, &[400], &["invalid_request"]));
        }
        Ok(f.outcome())
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;

    fn resp(status: u16, body: &str) -> Resp {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("cache-control", HeaderValue::from_static("no-store"));
        Resp {
            status,
            headers,
            body: body.as_bytes().to_vec(),
            truncated: false,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn only_exactly_active_false_counts_as_inactive() {
        assert!(expect_inactive(&resp(200, r#"{"active":false}"#)).is_ok());
        assert!(expect_inactive(&resp(200, r#"{ "active" : false }"#)).is_ok());
        assert!(expect_inactive(&resp(200, r#"{"active":false,"sub":"x"}"#)).is_err());
        assert!(expect_inactive(&resp(200, r#"{"active":"false"}"#)).is_err());
        assert!(expect_inactive(&resp(200, r#"{"active":true}"#)).is_err());
        assert!(expect_inactive(&resp(401, r#"{"active":false}"#)).is_err());
    }

    #[test]
    fn active_needs_a_boolean_true() {
        assert!(expect_active(&resp(200, r#"{"active":true,"sub":"x"}"#)).is_ok());
        assert!(expect_active(&resp(200, r#"{"active":"true"}"#)).is_err());
        assert!(expect_active(&resp(200, r#"{"sub":"x"}"#)).is_err());
        assert!(expect_active(&resp(400, r#"{"active":true}"#)).is_err());
    }

    #[test]
    fn a_refusal_that_says_anything_about_the_token_fails() {
        let plain = r#"{"error":"invalid_client"}"#;
        assert!(expect_invalid_client(&resp(401, plain), false).is_ok());
        let leaky = r#"{"error":"invalid_client","active":true}"#;
        assert!(expect_invalid_client(&resp(401, leaky), false).is_err());
        // Basic tried, but no challenge header.
        assert!(expect_invalid_client(&resp(401, plain), true).is_err());
    }

    #[test]
    fn audience_string_equals_a_one_element_array() {
        assert_eq!(audiences(&json!("a")), audiences(&json!(["a"])));
        assert_eq!(audiences(&json!(["b", "a"])), audiences(&json!(["a", "b"])));
        assert_ne!(audiences(&json!("a")), audiences(&json!(["a", "b"])));
        assert!(audiences(&json!(5)).is_empty());
    }
}
