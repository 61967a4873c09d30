//! Tests of `config`.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn runtime_grant_lifetimes_and_webhook_are_checked() {
    let base = include_str!("../../lanyard.example.toml");
    let s = parse(base, Path::new("/etc/lanyard"), &no_env).expect("example config is valid");
    assert_eq!(s.access.runtime_grant_ttl, Duration::from_secs(7 * 86_400));
    assert_eq!(
        s.access.runtime_grant_max_ttl,
        Duration::from_secs(30 * 86_400)
    );
    assert_eq!(s.access.webhook_url, None);
    let with = |hook: &str| {
        let text = base.replace(
            "# webhook_url = \"https://hooks.example.com/lanyard\"",
            &format!("webhook_url = \"{hook}\""),
        );
        parse(&text, Path::new("/etc/lanyard"), &no_env).map(|s| s.access.webhook_url)
    };
    assert!(with("https://hooks.example.com/x").is_ok_and(|u| u.is_some()));
    assert!(with("http://127.0.0.1:9/x").is_ok_and(|u| u.is_some()));
    assert!(with("http://localhost:9/x").is_ok_and(|u| u.is_some()));
    let e = with("http://hooks.example.com/x").expect_err("plain http off loopback");
    assert!(e.0.iter().any(|e| e.field == "notifications.webhook_url"));
    assert!(with("ftp://127.0.0.1/x").is_err());
    let long = base.replace("default_ttl = \"7d\"", "default_ttl = \"60d\"");
    assert!(
        parse(&long, Path::new("/etc/lanyard"), &no_env).is_err(),
        "default above max"
    );
}

/// The shipped example must stay valid: operators copy it.
#[test]
fn example_config_parses() {
    let text = include_str!("../../lanyard.example.toml");
    let s = parse(text, Path::new("/etc/lanyard"), &no_env).expect("example config is valid");
    assert_eq!(s.idp.as_ref().map(|i| i.path.as_str()), Some("/idp"));
    assert_eq!(
        s.authorization_server.as_ref().map(|i| i.path.as_str()),
        Some("/as")
    );
    assert_eq!(s.keys.algorithm, SigningAlg::Es256);
}

#[test]
fn every_error_is_reported_with_its_field() {
    let text = r#"
version = 1
[server]
listen = "nowhere"
leeway = "forever"
[keys]
algorithm = "HS256"
[idp]
issuer = "http://idp.example.com"
[authorization_server]
issuer = "https://as.example.com?x=1"
max_token_ttl = "2h"
"#;
    let errs = parse(text, Path::new("."), &no_env).expect_err("invalid").0;
    let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "server.listen",
            "server.leeway",
            "keys.algorithm",
            "idp.issuer",
            "authorization_server.max_token_ttl",
            "authorization_server.issuer",
        ]
    );
    assert_eq!(errs[0].line, Some(4));
    assert_eq!(errs[2].line, Some(7));
    assert_eq!(errs[5].line, Some(11));
}

#[test]
fn unknown_field_is_refused_with_its_line() {
    let errs = parse(
        "version = 1\n[server]\nlisten_addr = \"x\"\n",
        Path::new("."),
        &no_env,
    )
    .expect_err("unknown field")
    .0;
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, Some(3));
    assert!(
        errs[0].message.contains("listen_addr"),
        "{}",
        errs[0].message
    );
}

#[test]
fn wrong_version_is_refused() {
    let errs = parse(
        "version = 2\n[idp]\nissuer = \"https://a.example\"\n",
        Path::new("."),
        &no_env,
    )
    .expect_err("version")
    .0;
    assert_eq!(errs[0].field, "version");
}

#[test]
fn roles_must_be_distinct_trust_domains() {
    let text = "version = 1\n[idp]\nissuer = \"https://x.example/t\"\n[authorization_server]\nissuer = \"https://x.example/t/\"\n";
    let errs = parse(text, Path::new("."), &no_env)
        .expect_err("same path")
        .0;
    assert_eq!(errs[0].field, "authorization_server.issuer");
}

#[test]
fn environment_overrides_file_and_is_validated() {
    let text = "version = 1\n[authorization_server]\nissuer = \"https://as.example\"\n";
    let env = |k: &str| match k {
        "LANYARD_AS_ISSUER" => Some("https://other.example/as".to_owned()),
        "LANYARD_LISTEN" => Some("0.0.0.0:9000".to_owned()),
        "LANYARD_IDP_ISSUER" => Some("https://idp.example".to_owned()),
        _ => None,
    };
    let errs = parse(text, Path::new("."), &env)
        .expect_err("idp override without table")
        .0;
    assert_eq!(errs[0].field, "$LANYARD_IDP_ISSUER");
    let env2 = |k: &str| {
        if k == "LANYARD_IDP_ISSUER" {
            None
        } else {
            env(k)
        }
    };
    let s = parse(text, Path::new("."), &env2).expect("valid");
    assert_eq!(s.listen.port(), 9000);
    assert_eq!(
        s.authorization_server.map(|i| i.issuer),
        Some("https://other.example/as".to_owned())
    );
}

/// The example's commented Redis fields, switched on, form a valid Redis configuration.
#[test]
fn example_config_parses_with_tls_and_limits() {
    let text = include_str!("../../lanyard.example.toml")
        .replace("# [server.tls]", "[server.tls]")
        .replace("# cert_file = ", "cert_file = ")
        .replace("# key_file = ", "key_file = ")
        .replace("# client_ca_file = ", "client_ca_file = ")
        .replace(
            "# require_client_cert = false",
            "require_client_cert = true",
        )
        .replace("# burst = ", "burst = ");
    let s = parse(&text, Path::new("/etc/lanyard"), &no_env).expect("tls example is valid");
    let tls = s.tls.expect("tls configured");
    assert_eq!(tls.cert_file, Path::new("/etc/lanyard/tls/server.pem"));
    assert_eq!(tls.key_file, Path::new("/etc/lanyard/tls/server.key"));
    assert_eq!(
        tls.client_ca_file.as_deref(),
        Some(Path::new("/etc/lanyard/tls/clients-ca.pem"))
    );
    assert!(tls.require_client_cert);
    let one_sec = Duration::from_secs(1);
    assert_eq!(
        s.limits.per_client,
        Some(Rate {
            count: 50,
            per: one_sec
        })
    );
    assert_eq!(
        s.limits.per_address,
        Some(Rate {
            count: 100,
            per: one_sec
        })
    );
    assert_eq!(s.limits.burst, Some(50));
    assert_eq!(s.limits.max_concurrent_requests, 1024);
}

#[test]
fn tls_and_limit_mistakes_are_reported_by_field() {
    let text = "version = 1\n[server.tls]\nkey_file = \"k.pem\"\nrequire_client_cert = true\n[limits]\nper_client = \"fast\"\nper_address = \"off\"\nburst = 0\n";
    let e = parse(text, Path::new("/x"), &no_env).expect_err("refused");
    let fields: Vec<_> = e.0.iter().map(|e| e.field.as_str()).collect();
    for f in [
        "server.tls.cert_file",
        "server.tls.require_client_cert",
        "limits.per_client",
        "limits.burst",
    ] {
        assert!(fields.contains(&f), "{f} not in {fields:?}");
    }
    assert!(!fields.contains(&"limits.per_address"));
}

#[test]
fn rates_parse_per_second_minute_and_hour() {
    assert_eq!(
        Rate::parse("600/m"),
        Some(Rate {
            count: 600,
            per: Duration::from_secs(60)
        })
    );
    assert_eq!(
        Rate::parse(" 5 / h"),
        Some(Rate {
            count: 5,
            per: Duration::from_secs(3600)
        })
    );
    for bad in ["0/s", "5", "5/d", "-1/s", "x/s"] {
        assert_eq!(Rate::parse(bad), None, "{bad}");
    }
}

#[test]
fn example_config_parses_with_the_redis_backend() {
    let text = include_str!("../../lanyard.example.toml")
        .replace("backend = \"embedded\"", "backend = \"redis\"")
        .replace("path = \"data/lanyard.redb\"", "")
        .replace("# url = ", "url = ")
        .replace("# key_prefix = ", "key_prefix = ")
        .replace("# connect_timeout = ", "connect_timeout = ")
        .replace("# response_timeout = ", "response_timeout = ");
    let s = parse(&text, Path::new("/etc/lanyard"), &no_env).expect("redis example is valid");
    let StoreSettings::Redis(r) = s.store else {
        panic!("not the redis backend: {:?}", s.store)
    };
    assert_eq!(r.url.expose(), "redis://redis.internal:6379/0");
    assert_eq!(r.key_prefix, "lanyard:");
    assert_eq!(r.connect_timeout, Duration::from_secs(1));
}

const REDIS_BASE: &str = "version = 1\n[authorization_server]\nissuer = \"https://as.example\"\n";

#[test]
fn redis_url_comes_from_the_environment_and_is_hidden_from_logs() {
    let text = format!("{REDIS_BASE}[store]\nbackend = \"redis\"\nkey_prefix = \"prod:\"\n");
    let env = |k: &str| {
        (k == "LANYARD_REDIS_URL")
            .then(|| "rediss://lanyard:hunter2@redis.example:6380/2".to_owned())
    };
    let s = parse(&text, Path::new("."), &env).expect("valid");
    let StoreSettings::Redis(r) = &s.store else {
        panic!("not redis")
    };
    assert_eq!(r.key_prefix, "prod:");
    assert_eq!(
        r.url.expose(),
        "rediss://lanyard:hunter2@redis.example:6380/2"
    );
    let shown = format!("{s:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("redis.example"), "{shown}");
}

#[test]
fn redis_settings_are_checked_with_their_field() {
    let errs = |store: &str, env: &dyn Fn(&str) -> Option<String>| -> Vec<String> {
        parse(
            &format!("{REDIS_BASE}[store]\n{store}"),
            Path::new("."),
            env,
        )
        .expect_err("invalid")
        .0
        .into_iter()
        .map(|e| e.field)
        .collect()
    };
    assert_eq!(errs("backend = \"redis\"\n", &no_env), ["store.url"]);
    assert_eq!(
        errs(
            "backend = \"redis\"\nurl = \"http://redis:6379\"\npath = \"x.redb\"\nkey_prefix = \"\"\nconnect_timeout = \"1ms\"\n",
            &no_env
        ),
        [
            "store.path",
            "store.url",
            "store.key_prefix",
            "store.connect_timeout"
        ]
    );
    assert_eq!(
        errs("url = \"redis://r:6379\"\nkey_prefix = \"x:\"\n", &no_env),
        ["store.url", "store.key_prefix"],
        "redis fields with the embedded backend"
    );
    let bad_env = |k: &str| (k == "LANYARD_REDIS_URL").then(|| "redis://".to_owned());
    assert_eq!(
        errs("backend = \"redis\"\n", &bad_env),
        ["$LANYARD_REDIS_URL"]
    );
    let env = |k: &str| (k == "LANYARD_REDIS_URL").then(|| "redis://r:6379".to_owned());
    assert_eq!(
        errs("backend = \"embedded\"\n", &env),
        ["$LANYARD_REDIS_URL"],
        "a Redis URL set for an embedded store is a mistake, not ignored"
    );
    assert_eq!(
        errs("backend = \"memcached\"\n", &no_env),
        ["store.backend"]
    );
}

#[test]
fn redis_url_rules() {
    assert!(check_redis_url("redis://127.0.0.1:6379/0").is_ok());
    assert!(check_redis_url("redis://:pw@redis.internal").is_ok());
    assert!(check_redis_url("rediss://u:pw@redis.example:6380/3").is_ok());
    assert!(check_redis_url("unix:///run/redis/redis.sock").is_ok());
    assert!(check_redis_url("redis://").is_err());
    assert!(check_redis_url("redis://h/notadb").is_err());
    assert!(check_redis_url("unix://").is_err());
    assert!(check_redis_url("http://h:6379").is_err());
    assert!(check_redis_url("h:6379").is_err());
    assert!(
        check_redis_url("redis://u:secretpw@").is_err_and(|m| !m.contains("secretpw")),
        "messages never repeat the URL"
    );
}

#[test]
fn issuer_rules() {
    assert_eq!(check_issuer("https://a.example/as"), Ok("/as".into()));
    assert_eq!(check_issuer("https://a.example"), Ok("".into()));
    assert_eq!(check_issuer("http://127.0.0.1:8080/idp"), Ok("/idp".into()));
    assert_eq!(check_issuer("http://localhost:1/"), Ok("".into()));
    assert!(check_issuer("http://a.example").is_err());
    assert!(check_issuer("https://a.example/#f").is_err());
    assert!(check_issuer("https://u:p@a.example").is_err());
    assert!(check_issuer("a.example").is_err());
}
