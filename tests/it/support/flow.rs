//! Both legs against one lanyard whose resource-AS role trusts its own IdP role as a separate
//! trust domain (a `[[trusted_issuer]]` with that role's published JWKS), and a test OIDC
//! issuer upstream.

use super::reqwest::{Blocking, Resp, blocking_client};
use super::{AS_ISSUER, IDP_ISSUER, Lanyard, SECRET, Site, idp::TestIdp, standard_policy, te_form};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

pub struct Flow {
    pub idp: TestIdp,
    pub site: Site,
    pub server: Lanyard,
    pub http: Blocking,
}

impl Flow {
    /// With the standard test policy.
    pub fn start() -> Self {
        Self::start_with(standard_policy)
    }

    /// With the policy `policy(upstream issuer)`, plus the trust in the IdP role.
    pub fn start_with(policy: impl Fn(&str) -> String) -> Self {
        Self::start_configured(policy, "")
    }

    /// With the policy `policy(upstream issuer)` and extra environment variables for lanyard.
    pub fn start_with_env(policy: impl Fn(&str) -> String, env: &[(&str, &str)]) -> Self {
        Self::start_full(policy, None, "", env)
    }

    /// As [`Self::start_with`], with extra configuration text appended to `lanyard.toml`.
    pub fn start_configured(policy: impl Fn(&str) -> String, config_extra: &str) -> Self {
        Self::start_on_store(policy, None, config_extra)
    }

    /// As [`Self::start_configured`], with the `[store]` table's body given (e.g. Redis).
    pub fn start_on_store(
        policy: impl Fn(&str) -> String,
        store: Option<&str>,
        config_extra: &str,
    ) -> Self {
        Self::start_full(policy, store, config_extra, &[])
    }

    fn start_full(
        policy: impl Fn(&str) -> String,
        store: Option<&str>,
        config_extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let idp = TestIdp::start();
        let site = Site::new(&idp.issuer);
        match store {
            Some(store) => site.write_config_with_store(store, config_extra),
            None => site.write_config(config_extra),
        }
        site.write_policy(&policy(&idp.issuer));
        let server = site.start_with_env(env);
        let http = blocking_client();
        let jwks = http.get(server.url("/idp/jwks.json")).send().unwrap();
        assert_eq!(jwks.status(), 200);
        std::fs::write(site.path("idp-role.jwks.json"), &jwks.body).unwrap();
        let reloads = |s: &Lanyard| s.log_text().matches("policy reloaded").count();
        let before = reloads(&server);
        site.write_policy(&format!(
            "{}\n[[trusted_issuer]]\nissuer = \"{IDP_ISSUER}\"\njwks_file = \"idp-role.jwks.json\"\nalgorithms = [\"ES256\"]\n",
            policy(&idp.issuer)
        ));
        server.signal("HUP");
        for _ in 0..500 {
            if reloads(&server) > before {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            reloads(&server) > before,
            "policy not reloaded:\n{}",
            server.log_text()
        );
        Self {
            idp,
            site,
            server,
            http,
        }
    }

    /// Leg 1 for `bot-secret`, acting for alice, asking for `scope` on the test API.
    pub fn id_jag(&self, scope: &str) -> String {
        self.id_jag_for(super::API, scope)
    }

    /// Leg 1 for `bot-secret`, acting for alice, asking for `scope` on `resource`.
    pub fn id_jag_for(&self, resource: &str, scope: &str) -> String {
        let r = self.exchange(resource, &[("scope", scope)]);
        assert_eq!(r.status(), 200, "{}", r.body);
        r.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// Leg 1 for `bot-secret` (client_secret_basic), acting for alice, on `resource`, with
    /// extra form fields; the response as it came.
    pub fn exchange(&self, resource: &str, extra: &[(&str, &str)]) -> Resp {
        let t = self.idp.id_token("alice", "bot-secret-sso");
        let mut form = te_form(&t, extra);
        for f in &mut form {
            if f.0 == "resource" {
                f.1 = resource;
            }
        }
        self.http
            .post(self.server.url("/idp/token"))
            .basic("bot-secret", SECRET)
            .form(&form)
            .send()
            .unwrap()
    }

    /// Leg 2 for `bot-secret` with `assertion` and extra form fields.
    pub fn redeem(&self, assertion: &str, extra: &[(&str, &str)]) -> Resp {
        let mut form = vec![("grant_type", JWT_BEARER), ("assertion", assertion)];
        form.extend_from_slice(extra);
        self.http
            .post(self.server.url("/as/token"))
            .basic("bot-secret", SECRET)
            .form(&form)
            .send()
            .unwrap()
    }

    pub fn as_issuer(&self) -> &'static str {
        AS_ISSUER
    }
}
