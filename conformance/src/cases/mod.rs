//! The case framework: one [`Case`] per checklist line (or per separately reported part of
//! a line), the registry in run order, and the [`Ctx`] every case reads.
//!
//! Adding a section: write `cases/c_client_auth.rs` with a `pub const CASES: &[Case]`, add
//! it to [`registry`]. A case either runs once ([`Target::Once`]), once per discovered
//! issuer ([`Target::EachIssuer`]), or once per issuer holding a role ([`Target::Role`]);
//! the runner turns "no issuer has that role" into a SKIP with a reason by itself.

pub mod a_discovery;
pub mod b_hygiene;
pub mod c_client_auth;
pub mod d_token_exchange;
pub mod e_id_jag;
pub mod f_jwt_bearer;
pub mod fixture;
pub mod g_rejections;
pub mod h_sender_constraint;
pub mod i_dpop;
pub mod j_access_token;
pub mod k_introspection;
pub mod l_revocation;
pub mod leg2;

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

use crate::http::{Http, Resp};
use crate::oauth;

/// What a check concluded. A skip always says why.
#[derive(Debug)]
pub enum Outcome {
    /// The server met the requirement; the optional detail is printed in parentheses.
    Pass(Option<String>),
    /// The server did not; the reason is printed after a colon.
    Fail(String),
    /// The requirement could not be checked here; the reason says why.
    Skip(String),
}

impl Outcome {
    /// A pass with a detail worth printing (what was actually observed).
    pub fn pass(detail: impl Into<String>) -> Self {
        Self::Pass(Some(detail.into()))
    }

    /// A skip; the reason is mandatory by construction.
    pub fn skip(reason: impl Into<String>) -> Self {
        Self::Skip(reason.into())
    }
}

/// What a case body returns: `Err(reason)` is a failure, so checks can use `?`.
pub type CheckResult = Result<Outcome, String>;

/// The boxed future a case's check function returns.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + 'a>>;

/// A check that runs once for the whole deployment.
pub type OnceFn = for<'a> fn(&'a Ctx) -> CaseFuture<'a>;

/// A check that runs against one issuer.
pub type IssuerFn = for<'a> fn(&'a Ctx, &'a Issuer) -> CaseFuture<'a>;

/// Wraps a case body so that `Err(reason)` becomes [`Outcome::Fail`].
pub fn check<'a>(body: impl Future<Output = CheckResult> + 'a) -> CaseFuture<'a> {
    Box::pin(async move { body.await.unwrap_or_else(Outcome::Fail) })
}

/// Which issuers a case runs against.
pub enum Target {
    /// Once, for the whole deployment.
    Once(OnceFn),
    /// Once per discovered issuer; the printed id gets `@<issuer label>`.
    EachIssuer(IssuerFn),
    /// Once per issuer holding the role; SKIP "role not deployed" when there is none.
    Role(Role, IssuerFn),
}

/// One conformance case.
pub struct Case {
    /// The printed id: section letter plus checklist line, with a `.part` suffix when one
    /// line is reported in pieces (e.g. `A2.introspection`).
    pub id: &'static str,
    /// The line number in CHECKLIST.md §3.
    pub line: u32,
    /// A short statement of what is checked.
    pub title: &'static str,
    /// The clause as the checklist cites it, e.g. `8414 §2, §3.3`.
    pub clause: &'static str,
    /// What the case runs against, and its check function.
    pub target: Target,
}

/// Every case, in run order: checklist order, except the summary cases that report on the
/// traffic of all the others (A7, B15, B17), which must come last.
pub fn registry() -> Vec<&'static Case> {
    [
        a_discovery::CASES,
        b_hygiene::CASES,
        c_client_auth::CASES,
        d_token_exchange::CASES,
        e_id_jag::CASES,
        f_jwt_bearer::CASES,
        g_rejections::CASES,
        h_sender_constraint::CASES,
        i_dpop::CASES,
        j_access_token::CASES,
        k_introspection::CASES,
        // L118 disables and re-enables an agent: it runs after every other request-making case.
        l_revocation::CASES,
        a_discovery::SUMMARY,
        b_hygiene::SUMMARY,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The two roles a lanyard issuer can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// ID-JAG issuer: RFC 8693 token exchange, ID token → ID-JAG.
    Idp,
    /// Resource authorization server: RFC 7523 jwt-bearer, ID-JAG → access token.
    As,
}

impl Role {
    /// Both roles, in display order.
    pub const ALL: [Role; 2] = [Role::Idp, Role::As];

    /// The grant type this role serves at its token endpoint.
    pub fn grant_type(self) -> &'static str {
        match self {
            Role::Idp => oauth::GRANT_TOKEN_EXCHANGE,
            Role::As => oauth::GRANT_JWT_BEARER,
        }
    }

    /// The short name used in labels and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Idp => "idp",
            Role::As => "as",
        }
    }

    /// A request body for this role's grant carrying `token` where the grant's token goes,
    /// with the other parameters a real request would have, so that the property a case
    /// tests is the only thing wrong with it.
    pub fn grant_params(self, cx: &Ctx, token: &str) -> Vec<(String, String)> {
        let pairs: Vec<(&str, String)> = match self {
            Role::Idp => vec![
                ("grant_type", self.grant_type().to_owned()),
                ("requested_token_type", oauth::TOKEN_TYPE_ID_JAG.to_owned()),
                ("audience", cx.audience_for_exchange()),
                ("subject_token", token.to_owned()),
                ("subject_token_type", oauth::TOKEN_TYPE_ID_TOKEN.to_owned()),
            ],
            Role::As => vec![
                ("grant_type", self.grant_type().to_owned()),
                ("assertion", token.to_owned()),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// The parameter carrying the grant's token: `subject_token` or `assertion`.
    pub fn token_param(self) -> &'static str {
        match self {
            Role::Idp => "subject_token",
            Role::As => "assertion",
        }
    }
}

/// One discovered issuer (trust domain) and its metadata.
pub struct Issuer {
    /// Short unique label for output: `idp`, `as`, `idp+as`, `issuer`, or with an index.
    pub label: String,
    /// The issuer identifier exactly as configured; A1 compares it byte for byte.
    pub issuer: String,
    /// Roles, as declared by bootstrap or flags, or read from the metadata when neither
    /// said. Empty means unknown.
    pub roles: Vec<Role>,
    /// The RFC 8414 §3.1 URL the metadata was fetched from, or why none could be built.
    pub metadata_url: Result<String, String>,
    /// The metadata response, or the network error that prevented one.
    pub metadata_resp: Result<Resp, String>,
    /// The metadata object, when the response was 200 with a JSON object. Later cases use it
    /// even if A1 fails on the issuer value, so one fault does not hide the rest.
    pub metadata: Option<Map<String, Value>>,
}

impl Issuer {
    /// The metadata, or a SKIP outcome explaining its absence (A1 reports the cause).
    pub fn meta(&self) -> Result<&Map<String, Value>, Outcome> {
        self.metadata
            .as_ref()
            .ok_or_else(|| Outcome::skip("no usable metadata for this issuer (see A1)"))
    }

    /// The advertised `token_endpoint`, or a SKIP outcome when there is none to test.
    pub fn token_endpoint(&self) -> Result<String, Outcome> {
        let meta = self.meta()?;
        oauth::endpoint_url("token_endpoint", meta.get("token_endpoint"))
            .map(|u| u.to_string())
            .map_err(|e| Outcome::skip(format!("no usable token_endpoint: {e} (see A2)")))
    }

    /// The issuer's roles, or a SKIP outcome when they are unknown.
    pub fn known_roles(&self) -> Result<&[Role], Outcome> {
        if self.roles.is_empty() {
            Err(Outcome::skip(
                "issuer role unknown: metadata lists neither the token-exchange nor the \
                 jwt-bearer grant",
            ))
        } else {
            Ok(&self.roles)
        }
    }
}

/// Everything a case may read.
pub struct Ctx {
    /// The HTTP client (and the B15/B17 observations).
    pub http: Http,
    /// The `/dev/bootstrap` document, when the target is a lanyard dev server. Later
    /// sections read agents, humans and the dev IdP from it.
    pub bootstrap: Option<Value>,
    /// Every issuer under test.
    pub issuers: Vec<Issuer>,
}

impl Ctx {
    /// Issuers holding `role`.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Issuer> {
        self.issuers.iter().filter(move |i| i.roles.contains(&role))
    }

    /// Every issuer identifier the runner knows of: the ones under test and, from
    /// bootstrap, the IdP-role, AS-role and dev IdP issuers.
    pub fn known_issuers(&self) -> Vec<String> {
        let mut all: Vec<String> = self.issuers.iter().map(|i| i.issuer.clone()).collect();
        if let Some(b) = &self.bootstrap {
            let pointers = ["/idp_issuer", "/as_issuer", "/dev_idp/issuer"];
            for p in pointers {
                if let Some(Value::String(s)) = b.pointer(p) {
                    all.push(s.clone());
                }
            }
        }
        all.sort();
        all.dedup();
        all
    }

    /// The `audience` a token exchange would name: the AS-role issuer under test, else
    /// bootstrap's, else a placeholder (the cases using it expect a rejection either way).
    pub fn audience_for_exchange(&self) -> String {
        self.with_role(Role::As)
            .next()
            .map(|i| i.issuer.clone())
            .or_else(|| {
                self.bootstrap
                    .as_ref()
                    .and_then(|b| b.get("as_issuer"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "https://as.example.com".to_owned())
    }
}

/// Collects the results of several sub-checks so a case reports every problem at once
/// rather than stopping at the first.
#[derive(Default)]
pub struct Findings {
    problems: Vec<String>,
    notes: Vec<String>,
}

impl Findings {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem.
    pub fn fail(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// Whether any problem has been recorded.
    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// Records a pass detail.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Records a labelled sub-check: `Ok(note)` becomes a note, `Err(problem)` a problem.
    pub fn record(&mut self, label: &str, result: Result<String, String>) {
        match result {
            Ok(note) if note.is_empty() => {}
            Ok(note) => self.notes.push(format!("{label}: {note}")),
            Err(problem) => self.problems.push(format!("{label}: {problem}")),
        }
    }

    /// Pass with the notes as detail, or Fail with every problem.
    pub fn outcome(self) -> Outcome {
        if self.problems.is_empty() {
            Outcome::Pass((!self.notes.is_empty()).then(|| self.notes.join(", ")))
        } else {
            Outcome::Fail(self.problems.join("; "))
        }
    }
}
