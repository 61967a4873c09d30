//! What sections F–J need at the resource-AS role (leg 2, RFC 7523 jwt-bearer): ID-JAGs
//! obtained through the real leg 1 (a dev IdP ID token exchanged at the IdP role, see
//! `fixture.rs`), the agent's authentication at the AS, the dev test issuer that lets the
//! runner sign ID-JAGs with altered claims as a *trusted* issuer, forged assertions, and
//! successful token responses decoded.
//!
//! Forged assertions come from a [`Forge`]: when bootstrap names a test issuer, each forgery
//! is validly signed by it, so the property under test is the only thing wrong; otherwise a
//! real ID-JAG is re-encoded and its signature no longer matches (the server must still
//! refuse it with `invalid_grant`, but a refusal then proves less, and the case says so).

use serde_json::{Map, Value, json};

use super::fixture::{
    Agent, Ask, Auth, Fixture, Form, Issued, agent_signer, dpop_proof, proof_claims, register,
};
use super::{Ctx, Findings, Issuer, Outcome};
use crate::http::{Req, Resp};
use crate::jwt::{self, Decoded, Signer};
use crate::oauth::{self, expect_error, marker};

/// `typ` of an ID-JAG (ID-JAG §3.1).
pub const TYP_ID_JAG: &str = "oauth-id-jag+jwt";

/// The resource-AS issuer under test, with the IdP-role fixture that feeds it ID-JAGs.
pub struct Leg2 {
    /// The IdP-role fixture, its `audience` set to this AS.
    pub fx: Fixture,
    /// The AS-role issuer identifier.
    pub as_issuer: String,
    /// Its token endpoint.
    pub token_endpoint: String,
    test_issuer: Result<TestIssuer, String>,
}

impl Leg2 {
    /// The leg-2 fixture for the AS-role issuer `iss`, or a SKIP saying why there is none.
    pub fn for_as(cx: &Ctx, iss: &Issuer) -> Result<Self, Outcome> {
        let mut fx = Fixture::any(cx)?;
        let token_endpoint = iss.token_endpoint()?;
        fx.audience = iss.issuer.clone();
        fx.as_token_endpoint = Some(token_endpoint.clone());
        Ok(Self {
            fx,
            as_issuer: iss.issuer.clone(),
            token_endpoint,
            test_issuer: TestIssuer::from_bootstrap(cx),
        })
    }

    /// A demo agent, or a SKIP.
    pub fn agent(&self, id: &str) -> Result<&Agent, Outcome> {
        self.fx.agent(id)
    }

    /// The dev test issuer, or a SKIP saying why there is none.
    pub fn test_issuer(&self) -> Result<&TestIssuer, Outcome> {
        self.test_issuer
            .as_ref()
            .map_err(|e| Outcome::skip(e.clone()))
    }

    /// The dev test issuer, if bootstrap names one.
    pub fn test_issuer_opt(&self) -> Option<&TestIssuer> {
        self.test_issuer.as_ref().ok()
    }

    fn agent_for(&self, ask: &Ask<'_>) -> Result<&Agent, String> {
        self.fx
            .agent(ask.agent)
            .map_err(|_| format!("bootstrap lists no demo agent {}", ask.agent))
    }

    /// Leg 1: a fresh ID-JAG for `ask`, addressed to this AS.
    pub async fn id_jag(&self, cx: &Ctx, ask: &Ask<'_>) -> Result<Issued, String> {
        let agent = self.agent_for(ask)?;
        self.fx
            .obtain(cx, ask, auth_for(agent))
            .await
            .map_err(|e| format!("leg 1: {e}"))
    }

    /// Leg 1 with a DPoP proof made with `key`: an ID-JAG bound to that key (`cnf.jkt`).
    pub async fn bound_id_jag(
        &self,
        cx: &Ctx,
        ask: &Ask<'_>,
        key: &Signer,
    ) -> Result<Issued, String> {
        let agent = self.agent_for(ask)?;
        let id_token = self.fx.id_token_for(cx, ask).await?;
        let proof = dpop_proof(key, &proof_claims(&self.fx.token_endpoint))?;
        let req = self
            .fx
            .te_request(&self.fx.te_form(ask, &id_token), agent, auth_for(agent))?
            .header("DPoP", &proof)
            .secret(jwt::signature_segment(&proof));
        let resp = cx.http.send(req).await?;
        let issued =
            Issued::from_response(&resp, id_token).map_err(|e| format!("leg 1 with DPoP: {e}"))?;
        match issued.claim("cnf").and_then(|c| c.get("jkt")) {
            Some(Value::String(_)) => Ok(issued),
            other => Err(format!(
                "leg 1 with a DPoP proof gave an ID-JAG without cnf.jkt ({other:?}); see D54"
            )),
        }
    }

    /// The jwt-bearer form for `assertion`.
    pub fn form(assertion: &str) -> Form {
        Form(vec![
            ("grant_type".into(), oauth::GRANT_JWT_BEARER.into()),
            ("assertion".into(), assertion.into()),
        ])
    }

    /// A POST of `form` to this AS's token endpoint, authenticated as `agent`: HTTP Basic
    /// with its secret, else a fresh `private_key_jwt` assertion whose `aud` is this AS.
    pub fn request(&self, form: &Form, agent: &Agent) -> Result<Req, String> {
        let mut req = Req::post(&self.token_endpoint);
        let mut form = form.clone();
        if let Some(secret) = agent.secret.as_deref() {
            req = req.basic(&agent.client_id, secret);
        } else {
            let mut claims = self.fx.assertion_claims(agent);
            claims.insert("aud".into(), json!(self.as_issuer));
            let assertion = agent_signer(agent)?.sign("JWT", Value::Object(claims))?;
            form.add("client_id", &agent.client_id);
            form.add("client_assertion_type", oauth::CLIENT_ASSERTION_JWT_BEARER);
            form.add("client_assertion", &assertion);
        }
        Ok(register(req.params(&form.0), &form))
    }

    /// Sends `form` as `agent`, with a `DPoP` header when `dpop` is given.
    pub async fn send(
        &self,
        cx: &Ctx,
        agent: &Agent,
        form: &Form,
        dpop: Option<&str>,
    ) -> Result<Resp, String> {
        let mut req = self.request(form, agent)?;
        if let Some(proof) = dpop {
            req = req
                .header("DPoP", proof)
                .secret(jwt::signature_segment(proof));
        }
        cx.http.send(req).await
    }

    /// The plain jwt-bearer request for `assertion`.
    pub async fn redeem(&self, cx: &Ctx, agent: &Agent, assertion: &str) -> Result<Resp, String> {
        self.send(cx, agent, &Self::form(assertion), None).await
    }

    /// Expects 400 `invalid_grant` for `assertion`.
    pub async fn refused(
        &self,
        cx: &Ctx,
        agent: &Agent,
        assertion: &str,
    ) -> Result<String, String> {
        let resp = self.redeem(cx, agent, assertion).await?;
        expect_error(&resp, &[400], &["invalid_grant"])
    }

    /// Expects 200 with an access token for `assertion`.
    pub async fn accepted(
        &self,
        cx: &Ctx,
        agent: &Agent,
        assertion: &str,
    ) -> Result<Minted, String> {
        let resp = self.redeem(cx, agent, assertion).await?;
        Minted::from_response(&resp)
    }

    /// A valid DPoP proof by `key` for a POST to this AS's token endpoint.
    pub fn proof(&self, key: &Signer) -> Result<String, String> {
        dpop_proof(key, &proof_claims(&self.token_endpoint))
    }
}

/// How an agent authenticates at the IdP role: its secret if it has one, else its key.
pub fn auth_for(agent: &Agent) -> Auth {
    if agent.secret.is_some() {
        Auth::Basic
    } else {
        Auth::Key
    }
}

/// A successful jwt-bearer response and the access token in it.
pub struct Minted {
    /// The response body.
    pub body: Map<String, Value>,
    /// The access token, compact.
    pub token: String,
    /// The access token decoded (not verified).
    pub decoded: Decoded,
}

impl Minted {
    /// Requires 200, a JSON object and a string `access_token` that decodes as a JWS.
    pub fn from_response(resp: &Resp) -> Result<Self, String> {
        if resp.status != 200 {
            return Err(format!("jwt-bearer refused: {}", resp.summary()));
        }
        let Some(Value::Object(body)) = resp.json() else {
            return Err(format!("200 but not a JSON object: {}", resp.summary()));
        };
        let Some(Value::String(token)) = body.get("access_token").cloned() else {
            return Err("200 without a string access_token".to_owned());
        };
        let decoded = jwt::decode(&token).map_err(|e| format!("access_token: {e}"))?;
        Ok(Self {
            body,
            token,
            decoded,
        })
    }

    /// A claim of the access token.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.decoded.claims.get(name)
    }

    /// The response's `token_type`.
    pub fn token_type(&self) -> &str {
        self.body
            .get("token_type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// The dev server's test ID-JAG issuer: trusted by the AS role, its private key handed out
/// by `/dev/bootstrap` (`test_id_jag_issuer`) so the runner can sign ID-JAGs as it.
pub struct TestIssuer {
    /// Its issuer identifier.
    pub issuer: String,
    /// The `kid` of its key.
    pub kid: String,
    /// Whether it is configured to allow `jti` reuse.
    pub allow_jti_reuse: bool,
    /// Its public JWK.
    pub public_jwk: Map<String, Value>,
    signer: Signer,
}

impl TestIssuer {
    fn from_bootstrap(cx: &Ctx) -> Result<Self, String> {
        let Some(b) = &cx.bootstrap else {
            return Err(
                "needs a lanyard dev server: no way to sign an ID-JAG as a trusted \
                        issuer without /dev/bootstrap"
                    .to_owned(),
            );
        };
        let Some(t) = b.get("test_id_jag_issuer").and_then(Value::as_object) else {
            return Err(
                "bootstrap names no test_id_jag_issuer: the runner cannot sign an \
                        ID-JAG as a trusted issuer, so no validly signed ID-JAG with altered \
                        claims can be made"
                    .to_owned(),
            );
        };
        let issuer = t
            .get("issuer")
            .and_then(Value::as_str)
            .ok_or("bootstrap test_id_jag_issuer has no issuer")?
            .to_owned();
        let jwk = t
            .get("private_jwk")
            .and_then(Value::as_object)
            .ok_or("bootstrap test_id_jag_issuer has no private_jwk")?;
        let kid = jwk
            .get("kid")
            .and_then(Value::as_str)
            .ok_or("bootstrap test_id_jag_issuer key has no kid")?
            .to_owned();
        let signer = Signer::from_private_jwk(jwk)?;
        let public_jwk = signer
            .public_jwk()
            .cloned()
            .ok_or("test issuer key has no public half")?;
        Ok(Self {
            issuer,
            kid,
            allow_jti_reuse: t
                .get("allow_jti_reuse")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            public_jwk,
            signer,
        })
    }

    /// The claims of a real ID-JAG re-issued by this issuer: same subject, audience, client,
    /// grants and actor; a fresh `jti`, `iat` now, `exp` in 300 s, no key binding.
    pub fn claims_from(&self, real: &Issued) -> Map<String, Value> {
        let now = jwt::now();
        let mut c = real.decoded.claims.clone();
        c.insert("iss".into(), json!(self.issuer));
        c.insert("jti".into(), json!(marker("jagjti")));
        c.insert("iat".into(), json!(now));
        c.insert("exp".into(), json!(now + 300));
        c.remove("cnf");
        c
    }

    /// The header this issuer would put on an ID-JAG: `alg` ES256, its `kid`, `typ`.
    pub fn header(&self) -> Map<String, Value> {
        let mut h = Map::new();
        h.insert("alg".into(), json!("ES256"));
        h.insert("kid".into(), json!(self.kid));
        h.insert("typ".into(), json!(TYP_ID_JAG));
        h
    }

    /// Signs `claims` under `header` exactly as given (nothing added).
    pub fn sign(
        &self,
        header: &Map<String, Value>,
        claims: &Map<String, Value>,
    ) -> Result<String, String> {
        let h = serde_json::to_vec(header).map_err(|e| format!("cannot encode: {e}"))?;
        let p = serde_json::to_vec(claims).map_err(|e| format!("cannot encode: {e}"))?;
        self.signer.sign_raw(&h, &p)
    }

    /// Signs these header and payload bytes exactly.
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> Result<String, String> {
        self.signer.sign_raw(header, payload)
    }
}

/// Where one case's forged assertions come from, and the control that makes their refusal
/// meaningful.
pub struct Forge<'a> {
    l2: &'a Leg2,
    agent: &'a Agent,
    real: Issued,
    signed: Option<&'a TestIssuer>,
    /// Whether re-encoding was chosen (the probes need the real issuer's bytes) rather than
    /// forced by the lack of a test issuer.
    chose_real: bool,
}

impl<'a> Forge<'a> {
    /// Forgeries signed by the test issuer when there is one, else re-encoded from a real
    /// ID-JAG for `ask` (obtained through leg 1 either way).
    pub async fn new(
        cx: &Ctx,
        l2: &'a Leg2,
        agent: &'a Agent,
        ask: &Ask<'_>,
    ) -> Result<Self, String> {
        let real = l2.id_jag(cx, ask).await?;
        Ok(Self {
            l2,
            agent,
            real,
            signed: l2.test_issuer_opt(),
            chose_real: false,
        })
    }

    /// Forgeries always re-encoded from a real ID-JAG (for probes that must keep the real
    /// issuer's own signature bytes).
    pub async fn real(
        cx: &Ctx,
        l2: &'a Leg2,
        agent: &'a Agent,
        ask: &Ask<'_>,
    ) -> Result<Self, String> {
        let real = l2.id_jag(cx, ask).await?;
        Ok(Self {
            l2,
            agent,
            real,
            signed: None,
            chose_real: true,
        })
    }

    /// How the forgeries are made, for pass details.
    pub fn how(&self) -> &'static str {
        if self.signed.is_some() {
            "forgeries validly signed by the dev test issuer"
        } else if self.chose_real {
            "probes made from a real ID-JAG of the IdP role"
        } else {
            "forgeries re-encoded from a real ID-JAG (signature no longer matches: no test \
             issuer in bootstrap)"
        }
    }

    /// The real ID-JAG the forgeries start from.
    pub fn real_id_jag(&self) -> &Issued {
        &self.real
    }

    /// The header and claims a forgery starts from.
    pub fn base(&self) -> (Map<String, Value>, Map<String, Value>) {
        match self.signed {
            Some(t) => (t.header(), t.claims_from(&self.real)),
            None => (
                self.real.decoded.header.clone(),
                self.real.decoded.claims.clone(),
            ),
        }
    }

    /// A forgery: the base header and claims with `edit` applied, then signed (or given the
    /// real signature).
    pub fn forge(
        &self,
        edit: impl FnOnce(&mut Map<String, Value>, &mut Map<String, Value>),
    ) -> Result<String, String> {
        let (mut h, mut c) = self.base();
        edit(&mut h, &mut c);
        match self.signed {
            Some(t) => t.sign(&h, &c),
            None => jwt::reencode(&h, &c, jwt::signature_segment(&self.real.jwt)),
        }
    }

    /// A forgery with exactly these header and payload bytes.
    pub fn raw(&self, header: &[u8], payload: &[u8]) -> Result<String, String> {
        match self.signed {
            Some(t) => t.sign_raw(header, payload),
            None => Ok(format!(
                "{}.{}.{}",
                jwt::b64url(header),
                jwt::b64url(payload),
                jwt::signature_segment(&self.real.jwt)
            )),
        }
    }

    /// Sends `assertion` and expects 400 `invalid_grant`.
    pub async fn refused(&self, cx: &Ctx, assertion: &str) -> Result<String, String> {
        self.l2.refused(cx, self.agent, assertion).await
    }

    /// Records `assertion`'s refusal under `label`.
    pub async fn probe(
        &self,
        cx: &Ctx,
        f: &mut Findings,
        label: &str,
        assertion: Result<String, String>,
    ) {
        let result = match assertion {
            Ok(a) => self.refused(cx, &a).await,
            Err(e) => Err(format!("cannot build the probe: {e}")),
        };
        f.record(label, result);
    }

    /// The control, run after the probes: the unaltered assertion (a test-issuer token from
    /// the same claims, or the real ID-JAG itself, which no refused probe may have used up)
    /// MUST be accepted, or the refusals above prove nothing.
    pub async fn finish(&self, cx: &Ctx, f: &mut Findings) {
        let control = match self.signed {
            Some(_) => self.forge(|_, _| {}),
            None => Ok(self.real.jwt.clone()),
        };
        let what = if self.signed.is_some() {
            "control (unaltered test-issuer ID-JAG)"
        } else {
            "control (the unaltered real ID-JAG, after the probes)"
        };
        match control {
            Ok(a) => match self.l2.accepted(cx, self.agent, &a).await {
                Ok(_) => f.note(format!("{what}: 200")),
                Err(e) => f.fail(format!("{what}: {e}")),
            },
            Err(e) => f.fail(format!("{what}: cannot build it: {e}")),
        }
        f.note(self.how());
    }
}

/// A JSON object serialized with `name` repeated: `{"name":value, <the object's members>}`.
/// When the object already has `name`, the text carries it twice.
pub fn with_duplicate(
    obj: &Map<String, Value>,
    name: &str,
    value: &Value,
) -> Result<Vec<u8>, String> {
    let body = serde_json::to_string(obj).map_err(|e| format!("cannot encode: {e}"))?;
    let first = serde_json::to_string(&json!({ name: value }))
        .map_err(|e| format!("cannot encode: {e}"))?;
    let rest = body.strip_prefix('{').ok_or("not an object")?;
    let head = first.strip_suffix('}').ok_or("not an object")?;
    let sep = if rest == "}" { "" } else { "," };
    Ok(format!("{head}{sep}{rest}").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_member_is_written_first_and_kept_later() {
        let mut m = Map::new();
        m.insert("aud".into(), json!("a"));
        m.insert("sub".into(), json!("s"));
        let text = String::from_utf8(with_duplicate(&m, "aud", &json!("b")).unwrap()).unwrap();
        assert_eq!(text, r#"{"aud":"b","aud":"a","sub":"s"}"#);
        let empty =
            String::from_utf8(with_duplicate(&Map::new(), "x", &json!(1)).unwrap()).unwrap();
        assert_eq!(empty, r#"{"x":1}"#);
    }
}
