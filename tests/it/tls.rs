//! TLS termination: HTTPS with a CA made in the test, certificate reload without restart,
//! and mTLS refusing clients without a certificate signed by the configured CA.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::support::{AS_ISSUER, Lanyard, Site};

const METADATA: &str = "/.well-known/oauth-authorization-server/as";

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A leaf for `localhost` (server) or a client, as (cert PEM, key PEM, cert DER).
    fn issue(&self, cn: &str, purpose: ExtendedKeyUsagePurpose) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![purpose];
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// Replace a file atomically (write beside, rename), as a certificate manager would.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn write_key(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An HTTPS client trusting only `ca`, with an optional client identity; each request uses a
/// new connection so that a reloaded certificate is seen.
struct Client {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

struct Got {
    status: u16,
    body: String,
    peer_cert: Option<Vec<u8>>,
}

impl Client {
    fn new(ca: &Ca, addr: SocketAddr, identity: Option<(&str, &str)>) -> Self {
        let mut b = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca.cert.pem().as_bytes()).unwrap())
            .resolve("localhost", addr)
            .pool_max_idle_per_host(0)
            .tls_info(true)
            .timeout(Duration::from_secs(10));
        if let Some((cert, key)) = identity {
            b = b.identity(
                reqwest::Identity::from_pkcs8_pem(cert.as_bytes(), key.as_bytes()).unwrap(),
            );
        }
        Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: b.build().unwrap(),
        }
    }

    fn get(&self, url: &str) -> Result<Got, reqwest::Error> {
        self.rt.block_on(async {
            let r = self.client.get(url).send().await?;
            let status = r.status().as_u16();
            let peer_cert = r
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|t| t.peer_certificate().map(<[u8]>::to_vec));
            let body = r.text().await?;
            Ok(Got {
                status,
                body,
                peer_cert,
            })
        })
    }
}

struct TlsSite {
    site: Site,
    ca: Ca,
    server_der: Vec<u8>,
}

/// A site whose server certificate is issued by a fresh test CA; `extra` adds TLS settings.
fn tls_site(extra: &str) -> TlsSite {
    let site = Site::new("https://idp.unused.example");
    let ca = Ca::new("lanyard test CA");
    let (cert, key, server_der) = ca.issue("server-1", ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(site.path("server.pem"), cert).unwrap();
    write_key(&site.path("server.key"), &key);
    site.write_config(&format!(
        "[server.tls]\ncert_file = \"server.pem\"\nkey_file = \"server.key\"\n{extra}"
    ));
    TlsSite {
        site,
        ca,
        server_der,
    }
}

fn addr_of(l: &Lanyard) -> SocketAddr {
    l.base.trim_start_matches("https://").parse().unwrap()
}

fn url(l: &Lanyard, path: &str) -> String {
    format!("https://localhost:{}{path}", addr_of(l).port())
}

/// Poll until `f` holds (the server has just started or is reloading).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn https_metadata_is_served_with_the_configured_certificate() {
    let t = tls_site("");
    let l = Lanyard::start_listening(&t.site.path("lanyard.toml"), "https");
    let c = Client::new(&t.ca, addr_of(&l), None);
    eventually("readiness over https", || {
        c.get(&url(&l, "/readyz")).is_ok_and(|g| g.status == 200)
    });
    let g = c.get(&url(&l, METADATA)).unwrap();
    assert_eq!(g.status, 200);
    let doc: serde_json::Value = serde_json::from_str(&g.body).unwrap();
    assert_eq!(doc["issuer"], AS_ISSUER);
    assert_eq!(g.peer_cert.as_deref(), Some(t.server_der.as_slice()));

    // A client that does not trust the test CA refuses the server.
    let stranger = Client::new(&Ca::new("another CA"), addr_of(&l), None);
    assert!(stranger.get(&url(&l, METADATA)).is_err());
}

#[test]
fn replaced_certificate_is_served_without_restart() {
    let t = tls_site("");
    let l = Lanyard::start_listening(&t.site.path("lanyard.toml"), "https");
    let c = Client::new(&t.ca, addr_of(&l), None);
    eventually("readiness over https", || {
        c.get(&url(&l, "/readyz")).is_ok_and(|g| g.status == 200)
    });
    let pid = l.child.id();

    let (cert2, key2, der2) = t.ca.issue("server-2", ExtendedKeyUsagePurpose::ServerAuth);
    assert_ne!(der2, t.server_der);
    write_key(&t.site.path("server.key"), &key2);
    replace(&t.site.path("server.pem"), &cert2);

    eventually("the new certificate", || {
        c.get(&url(&l, METADATA))
            .is_ok_and(|g| g.status == 200 && g.peer_cert.as_deref() == Some(der2.as_slice()))
    });
    assert_eq!(l.child.id(), pid, "same process");
    // Log lines below warn are written by a background thread in small batches.
    eventually("the reload in the log", || {
        l.log_text().contains("TLS certificate reloaded")
    });
}

#[test]
fn mtls_required_refuses_clients_without_a_certificate_from_the_ca() {
    let t = tls_site("client_ca_file = \"clients-ca.pem\"\nrequire_client_cert = true\n");
    let clients = Ca::new("client CA");
    std::fs::write(t.site.path("clients-ca.pem"), clients.cert.pem()).unwrap();
    let (ccert, ckey, _) = clients.issue("bot-secret", ExtendedKeyUsagePurpose::ClientAuth);
    let l = Lanyard::start_listening(&t.site.path("lanyard.toml"), "https");

    let with_cert = Client::new(&t.ca, addr_of(&l), Some((&ccert, &ckey)));
    eventually("readiness over mTLS", || {
        with_cert
            .get(&url(&l, "/readyz"))
            .is_ok_and(|g| g.status == 200)
    });
    assert_eq!(with_cert.get(&url(&l, METADATA)).unwrap().status, 200);

    let without = Client::new(&t.ca, addr_of(&l), None);
    assert!(
        without.get(&url(&l, METADATA)).is_err(),
        "no client certificate: handshake refused"
    );

    // A certificate from a CA the server does not trust is refused too.
    let other = Ca::new("other client CA");
    let (ocert, okey, _) = other.issue("intruder", ExtendedKeyUsagePurpose::ClientAuth);
    let wrong = Client::new(&t.ca, addr_of(&l), Some((&ocert, &okey)));
    assert!(wrong.get(&url(&l, METADATA)).is_err());

    // The server keeps serving good clients afterwards.
    assert_eq!(with_cert.get(&url(&l, METADATA)).unwrap().status, 200);
}

#[test]
fn optional_client_certificate_accepts_clients_without_one() {
    let t = tls_site("client_ca_file = \"clients-ca.pem\"\n");
    let clients = Ca::new("client CA");
    std::fs::write(t.site.path("clients-ca.pem"), clients.cert.pem()).unwrap();
    let (ccert, ckey, _) = clients.issue("bot-secret", ExtendedKeyUsagePurpose::ClientAuth);
    let l = Lanyard::start_listening(&t.site.path("lanyard.toml"), "https");
    let without = Client::new(&t.ca, addr_of(&l), None);
    eventually("readiness over https", || {
        without
            .get(&url(&l, "/readyz"))
            .is_ok_and(|g| g.status == 200)
    });
    let with_cert = Client::new(&t.ca, addr_of(&l), Some((&ccert, &ckey)));
    assert_eq!(with_cert.get(&url(&l, METADATA)).unwrap().status, 200);
    assert_eq!(without.get(&url(&l, METADATA)).unwrap().status, 200);
}

#[test]
fn sigterm_stops_a_tls_server_cleanly_with_an_idle_connection_open() {
    let t = tls_site("");
    let mut l = Lanyard::start_listening(&t.site.path("lanyard.toml"), "https");
    // A pooling client keeps its connection open after the request.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(t.ca.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr_of(&l))
        .build()
        .unwrap();
    eventually("readiness over https", || {
        rt.block_on(client.get(url(&l, "/readyz")).send())
            .is_ok_and(|r| r.status() == 200)
    });
    let started = Instant::now();
    l.signal("TERM");
    let status = l.child.wait().unwrap();
    assert!(status.success(), "clean stop: {status:?}");
    // shutdown_grace is 2s in the test config; an idle keep-alive connection must not hold
    // the process until then.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    eventually("the stop logged", || l.log_text().contains("\"stopped\""));
    drop(rt);
}
