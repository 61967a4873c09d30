//! Test support: start lanyard as a child process, a test OIDC issuer, signed assertions.

// Shared by every test file; not every file uses every helper.
#![allow(dead_code)]

pub mod flow;
pub mod idp;
pub mod redis;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use josekit::jwk::KeyPair as _;
use sha2::{Digest, Sha256};

/// The IdP-role issuer every test server uses (an identifier; reached over 127.0.0.1).
pub const IDP_ISSUER: &str = "https://lanyard.test/idp";
/// The resource-AS issuer.
pub const AS_ISSUER: &str = "https://lanyard.test/as";
/// The test resource.
pub const API: &str = "https://api.example/";
/// The client secret of agent `bot-secret` (a generated, high-entropy value in real use).
pub const SECRET: &str = "s3cr3t-0123456789abcdef0123456789abcdef";

pub fn lanyard_bin() -> &'static str {
    env!("CARGO_BIN_EXE_lanyard")
}

pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A scratch directory with a config, keys and a policy for one test server.
pub struct Site {
    pub dir: tempfile::TempDir,
    /// The agent `bot-key`'s ES256 key pair (private_key_jwt).
    pub agent_key: josekit::jwk::alg::ec::EcKeyPair,
}

impl Site {
    /// A site trusting `idp_issuer` (a test OIDC issuer) with the standard test policy.
    pub fn new(idp_issuer: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut agent_key = josekit::jws::ES256.generate_key_pair().unwrap();
        agent_key.set_key_id(Some("bot-key-1"));
        let site = Self { dir, agent_key };
        site.write_config("");
        let jwks = serde_json::json!({ "keys": [site.public_agent_jwk()] });
        std::fs::write(site.path("bot-key.jwks.json"), jwks.to_string()).unwrap();
        site.write_policy(&standard_policy(idp_issuer));
        let out = Command::new(lanyard_bin())
            .args(["keys", "generate", "--config"])
            .arg(site.path("lanyard.toml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "keys generate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        site
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn public_agent_jwk(&self) -> serde_json::Value {
        let mut j: serde_json::Map<String, serde_json::Value> =
            self.agent_key.to_jwk_public_key().into();
        j.insert("kid".into(), "bot-key-1".into());
        serde_json::Value::Object(j)
    }

    /// Write `lanyard.toml`, with `extra` appended (more tables, overrides).
    pub fn write_config(&self, extra: &str) {
        self.write_config_with_store("path = \"data/lanyard.redb\"", extra);
    }

    /// Write `lanyard.toml` with `store` as the body of its `[store]` table.
    pub fn write_config_with_store(&self, store: &str, extra: &str) {
        // The test IdP listens on 127.0.0.1, which production configs refuse by default.
        let outbound = if extra.contains("[outbound]") {
            ""
        } else {
            "[outbound]\nallow_private_addresses = true\n"
        };
        let text = format!(
            r#"version = 1
[server]
listen = "127.0.0.1:0"
shutdown_grace = "2s"
[log]
format = "json"
level = "info"
[store]
{store}
[keys]
dir = "keys"
reload_interval = "200ms"
[idp]
issuer = "{IDP_ISSUER}"
[authorization_server]
issuer = "{AS_ISSUER}"
[policy]
file = "policy.toml"
reload_interval = "200ms"
{outbound}{extra}"#
        );
        std::fs::write(self.path("lanyard.toml"), text).unwrap();
    }

    pub fn write_policy(&self, text: &str) {
        std::fs::write(self.path("policy.toml"), text).unwrap();
    }

    pub fn start(&self) -> Lanyard {
        Lanyard::start(&self.path("lanyard.toml"))
    }

    /// Start with extra environment variables (`LANYARD_LOG`, …).
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Lanyard {
        Lanyard::start_with_env(&self.path("lanyard.toml"), env)
    }
}

pub fn standard_policy(idp_issuer: &str) -> String {
    format!(
        r#"version = 1
[[idp]]
id = "corp"
issuer = "{idp_issuer}"
algorithms = ["RS256"]

[[resource]]
uri = "{API}"
authorization_server = "{AS_ISSUER}"
actions = ["read", "write", "admin"]

[[agent]]
id = "bot-secret"
owner = "alice@example.com"
credential = {{ client_secret_sha256 = "{sha}" }}
idp_client_ids = {{ corp = "bot-secret-sso" }}
never = ["admin"]
grants = [{{ resource = "{API}", actions = ["read", "write", "admin"] }}]

[[agent]]
id = "bot-key"
owner = "alice@example.com"
credential = {{ jwks_file = "bot-key.jwks.json" }}
idp_client_ids = {{ corp = "bot-key-sso" }}
grants = [{{ resource = "{API}", actions = ["read"] }}]

[[entitlement]]
group = "staff"
resource = "{API}"
actions = ["read", "write", "admin"]
"#,
        sha = sha256_hex(SECRET)
    )
}

/// A running lanyard process. Killed on drop.
pub struct Lanyard {
    pub child: Child,
    pub base: String,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Lanyard {
    /// Start `lanyard serve --config <path>` and wait until it listens and is ready.
    pub fn start(config: &Path) -> Self {
        Self::start_with_env(config, &[])
    }

    /// Like [`Lanyard::start`], with extra environment variables for the process.
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Self {
        let me = Self::start_listening_env(config, "http", env);
        me.wait_ready();
        me
    }

    /// Start `lanyard serve --config <path>` and wait until it listens (not until it is
    /// ready: a TLS server needs the caller's client). `base` uses `scheme`.
    pub fn start_listening(config: &Path, scheme: &str) -> Self {
        Self::start_listening_env(config, scheme, &[])
    }

    fn start_listening_env(config: &Path, scheme: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(lanyard_bin())
            .args(["serve", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let l2 = logs.clone();
        // Drain stderr for the whole life of the process so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "lanyard listening"
                {
                    let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
                }
                l2.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "lanyard did not start:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child,
            base: format!("{scheme}://{addr}"),
            logs,
        }
    }

    fn wait_ready(&self) {
        let client = reqwest::blocking_client();
        for _ in 0..500 {
            if client
                .get(format!("{}/readyz", self.base))
                .send()
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("lanyard never became ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Lanyard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client for tests (reqwest's async client on a small runtime).
pub mod reqwest {

    pub struct Blocking {
        rt: tokio::runtime::Runtime,
        client: ::reqwest::Client,
    }

    pub struct Req<'a> {
        b: &'a Blocking,
        rb: ::reqwest::RequestBuilder,
    }

    pub struct Resp {
        pub status: u16,
        pub headers: ::reqwest::header::HeaderMap,
        pub body: String,
    }

    impl Resp {
        pub fn status(&self) -> u16 {
            self.status
        }
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
        }
        pub fn header(&self, h: &str) -> Option<&str> {
            self.headers.get(h).and_then(|v| v.to_str().ok())
        }
    }

    pub fn blocking_client() -> Blocking {
        Blocking {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: ::reqwest::Client::builder()
                .redirect(::reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    impl Blocking {
        pub fn get(&self, url: String) -> Req<'_> {
            Req {
                b: self,
                rb: self.client.get(url),
            }
        }
        pub fn post(&self, url: String) -> Req<'_> {
            Req {
                b: self,
                rb: self.client.post(url),
            }
        }
    }

    impl Req<'_> {
        pub fn form(self, pairs: &[(&str, &str)]) -> Self {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            Self {
                b: self.b,
                rb: self
                    .rb
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body),
            }
        }
        pub fn basic(self, user: &str, pass: &str) -> Self {
            Self {
                b: self.b,
                rb: self.rb.basic_auth(user, Some(pass)),
            }
        }
        pub fn body(self, body: String) -> Self {
            Self {
                b: self.b,
                rb: self.rb.body(body),
            }
        }
        pub fn header(self, k: &str, v: &str) -> Self {
            Self {
                b: self.b,
                rb: self.rb.header(k, v),
            }
        }
        pub fn send(self) -> std::result::Result<Resp, ::reqwest::Error> {
            self.b.rt.block_on(async {
                let r = self.rb.send().await?;
                let status = r.status().as_u16();
                let headers = r.headers().clone();
                let body = r.text().await?;
                Ok(Resp {
                    status,
                    headers,
                    body,
                })
            })
        }
    }
}

/// Decode a JWT's header and claims without verifying.
pub fn decode(jwt: &str) -> (serde_json::Value, serde_json::Value) {
    use base64::Engine as _;
    let mut it = jwt.split('.');
    let mut part = || {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(it.next().unwrap())
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    (part(), part())
}

/// Seconds since the epoch (tests may read the wall clock).
#[allow(clippy::disallowed_methods)]
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A `private_key_jwt` client assertion for agent `bot-key`.
pub fn client_assertion(site: &Site, aud: &str, jti: &str) -> String {
    let signer = josekit::jws::ES256
        .signer_from_jwk(&site.agent_key.to_jwk_key_pair())
        .unwrap();
    let mut h = josekit::jws::JwsHeader::new();
    h.set_key_id("bot-key-1");
    h.set_token_type("JWT");
    let mut p = josekit::jwt::JwtPayload::new();
    let n = now();
    p.set_claim("iss", Some("bot-key".into())).unwrap();
    p.set_claim("sub", Some("bot-key".into())).unwrap();
    p.set_claim("aud", Some(aud.into())).unwrap();
    p.set_claim("jti", Some(jti.into())).unwrap();
    p.set_claim("iat", Some(n.into())).unwrap();
    p.set_claim("exp", Some((n + 120).into())).unwrap();
    josekit::jwt::encode_with_signer(&p, &h, &signer).unwrap()
}

/// The form of a token exchange for an ID token.
pub fn te_form<'a>(id_token: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:id-jag",
        ),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:id_token",
        ),
        ("subject_token", id_token),
        ("audience", AS_ISSUER),
        ("resource", API),
    ];
    f.extend_from_slice(extra);
    f
}
