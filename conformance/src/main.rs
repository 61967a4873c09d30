//! lanyard-conformance: a black-box run of the CHECKLIST.md §3 conformance checklist
//! against a live lanyard server.
//!
//! Layout:
//! - `main.rs`: arguments, discovery (bootstrap, issuers, RFC 8414 metadata), the report.
//! - `cases/`: the case framework and registry (`mod.rs`), one file per checklist section.
//! - `http.rs`: hand-built requests, fully read responses, leak and token observations.
//! - `oauth.rs`: URNs, the RFC 6749 §5.2 error check, URL rules, secret markers.
//! - `jwt.rs`: JWT minting (the only josekit user).
//!
//! Output is one line per case (per issuer for per-issuer cases), then `K skipped`, then
//! exactly `N passed, M failed`. The exit code is 1 if anything failed, 2 on a usage error.

/// `println!` that never panics: if stdout is gone (e.g. piped into `head`), the lines are
/// dropped and the run still ends with the right exit code.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that never panics.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod cases;
mod http;
mod jwt;
mod oauth;

use std::process::ExitCode;

use serde_json::Value;
use url::Url;

use cases::{Case, Ctx, Issuer, Outcome, Role, Target};
use http::{Http, Req};

const USAGE: &str = "\
usage: lanyard-conformance <base-url> [options]

  <base-url>            where the server listens, e.g. http://127.0.0.1:8080
  --idp-issuer URL      an IdP-role (token exchange) issuer to test; repeatable
  --as-issuer URL       an AS-role (jwt-bearer) issuer to test; repeatable
  --only ID[,ID...]     run only these cases: a section letter (B), a line (A2, with its
                        parts such as A2.introspection) or an exact id; repeatable
  --list                list the cases and exit
  -h, --help            this text

Issuers come from the flags if given, else from GET <base-url>/dev/bootstrap on a lanyard
dev server, else the base URL itself is the issuer and its metadata says its role.";

/// Parsed command line.
struct Args {
    base: String,
    idp_issuers: Vec<String>,
    as_issuers: Vec<String>,
    only: Vec<String>,
    list: bool,
}

/// What the command line asked for.
enum Command {
    Run(Args),
    Help,
}

fn parse_args(mut raw: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut base = None;
    let mut args = Args {
        base: String::new(),
        idp_issuers: Vec::new(),
        as_issuers: Vec::new(),
        only: Vec::new(),
        list: false,
    };
    while let Some(arg) = raw.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| raw.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--list" => args.list = true,
            "--idp-issuer" => args.idp_issuers.push(value("--idp-issuer")?),
            "--as-issuer" => args.as_issuers.push(value("--as-issuer")?),
            "--only" => args.only.extend(
                value("--only")?
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            ),
            f if f.starts_with('-') => return Err(format!("unknown option {f}")),
            _ if base.is_none() => base = Some(arg),
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    if args.list {
        return Ok(Command::Run(args));
    }
    let base = base.ok_or("missing <base-url>")?;
    match Url::parse(&base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        Ok(u) => {
            return Err(format!(
                "base URL must be http or https, not {}",
                u.scheme()
            ));
        }
        Err(e) => return Err(format!("base URL {base:?}: {e}")),
    }
    args.base = base.trim_end_matches('/').to_owned();
    Ok(Command::Run(args))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            out!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            err!("lanyard-conformance: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cases: Vec<&Case> = cases::registry()
        .into_iter()
        .filter(|c| selected(c.id, &args.only))
        .collect();
    if cases.is_empty() {
        err!(
            "lanyard-conformance: no case matches --only {}",
            args.only.join(",")
        );
        return ExitCode::from(2);
    }
    if args.list {
        for c in &cases {
            out!("{:<18} line {:<3} [{}] {}", c.id, c.line, c.clause, c.title);
        }
        return ExitCode::SUCCESS;
    }
    let http = match Http::new() {
        Ok(h) => h,
        Err(e) => {
            err!("lanyard-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    let cx = discover(http, &args).await;
    let tally = run(&cx, &cases).await;
    out!("{} skipped", tally.skipped);
    out!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `--only` matching: a section letter, a checklist line with all its parts, or an exact id.
fn selected(id: &str, only: &[String]) -> bool {
    only.is_empty()
        || only.iter().any(|p| {
            id == p
                || id
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
                || (p.len() == 1 && id.starts_with(p.as_str()))
        })
}

/// Finds the issuers under test and fetches their metadata. Never fails: whatever could
/// not be found is left for A1 to report.
async fn discover(http: Http, args: &Args) -> Ctx {
    let bootstrap = fetch_bootstrap(&http, &args.base).await;

    // Explicit flags win over bootstrap: the operator knows what they want tested.
    let mut wanted: Vec<(String, Option<Role>)> = Vec::new();
    if !args.idp_issuers.is_empty() || !args.as_issuers.is_empty() {
        out!("# issuers from the command line");
        wanted.extend(
            args.idp_issuers
                .iter()
                .map(|i| (i.clone(), Some(Role::Idp))),
        );
        wanted.extend(args.as_issuers.iter().map(|i| (i.clone(), Some(Role::As))));
    } else if let Some(b) = &bootstrap {
        for (key, role) in [("idp_issuer", Role::Idp), ("as_issuer", Role::As)] {
            match b.get(key) {
                Some(Value::String(s)) => wanted.push((s.clone(), Some(role))),
                _ => out!(
                    "# bootstrap: {key} is null: the {} role is not deployed",
                    role.name()
                ),
            }
        }
    }
    if wanted.is_empty() {
        out!("# testing the base URL as the only issuer; its metadata decides its role");
        wanted.push((args.base.clone(), None));
    }

    // One issuer string named for both roles is one trust domain holding both.
    let mut merged: Vec<(String, Vec<Role>)> = Vec::new();
    for (issuer, role) in wanted {
        let roles: Vec<Role> = role.into_iter().collect();
        match merged.iter_mut().find(|(i, _)| *i == issuer) {
            Some((_, existing)) => {
                for r in roles {
                    if !existing.contains(&r) {
                        existing.push(r);
                    }
                }
            }
            None => merged.push((issuer, roles)),
        }
    }

    let mut issuers = Vec::new();
    for (issuer, declared) in merged {
        issuers.push(fetch_issuer(&http, issuer, declared).await);
    }
    label_issuers(&mut issuers);
    for i in &issuers {
        let url = i.metadata_url.as_deref().unwrap_or("(no metadata URL)");
        out!("# issuer {} = {} (metadata {url})", i.label, i.issuer);
    }
    Ctx {
        http,
        bootstrap,
        issuers,
    }
}

/// `GET {base}/dev/bootstrap`: a 200 JSON object means a lanyard dev server. Anything else
/// means a production deployment (or not lanyard), which is fine.
async fn fetch_bootstrap(http: &Http, base: &str) -> Option<Value> {
    let url = format!("{base}/dev/bootstrap");
    match http.send(Req::get(&url)).await {
        Ok(resp) if resp.status == 200 => match resp.json() {
            Some(doc @ Value::Object(_)) => {
                out!("# {url}: lanyard dev server");
                if let Some(w) = doc.get("warning").and_then(Value::as_str) {
                    out!("# bootstrap warning: {w}");
                }
                Some(doc)
            }
            _ => {
                out!("# {url}: 200 but not a JSON object; not using it");
                None
            }
        },
        Ok(resp) => {
            out!("# {url}: {} (not a dev server)", resp.status);
            None
        }
        Err(e) => {
            out!("# {url}: {e}");
            None
        }
    }
}

/// Fetches one issuer's metadata from its RFC 8414 §3.1 URL. Roles not declared by
/// bootstrap or flags are read from `grant_types_supported`.
async fn fetch_issuer(http: &Http, issuer: String, declared: Vec<Role>) -> Issuer {
    let metadata_url = metadata_url(&issuer);
    let metadata_resp = match &metadata_url {
        Ok(url) => http.send(Req::get(url)).await,
        Err(e) => Err(e.clone()),
    };
    let metadata = match &metadata_resp {
        Ok(resp) if resp.status == 200 => match resp.json() {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        },
        _ => None,
    };
    let roles = if declared.is_empty() {
        let grants: Vec<&str> = metadata
            .as_ref()
            .and_then(|m| m.get("grant_types_supported"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        Role::ALL
            .into_iter()
            .filter(|r| grants.contains(&r.grant_type()))
            .collect()
    } else {
        declared
    };
    Issuer {
        label: String::new(),
        issuer,
        roles,
        metadata_url,
        metadata_resp,
        metadata,
    }
}

/// RFC 8414 §3.1: `/.well-known/oauth-authorization-server` goes between the origin and the
/// issuer's path, with any terminating "/" of the path removed first.
fn metadata_url(issuer: &str) -> Result<String, String> {
    let url = Url::parse(issuer).map_err(|e| format!("issuer {issuer:?} is not a URL: {e}"))?;
    // Plain http only on loopback, so a dev server can be tested; anything else is not
    // contacted at all rather than fetched insecurely.
    match url.scheme() {
        "https" => {}
        "http" if oauth::is_loopback(&url) => {}
        scheme => {
            return Err(format!(
                "metadata not fetched: issuer uses {scheme} (https required off loopback)"
            ));
        }
    }
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    Ok(format!(
        "{origin}/.well-known/oauth-authorization-server{path}"
    ))
}

/// Labels issuers by role ("idp", "as", "idp+as", "issuer" when unknown), numbering any
/// that would otherwise share a label.
fn label_issuers(issuers: &mut [Issuer]) {
    let base: Vec<String> = issuers
        .iter()
        .map(|i| {
            if i.roles.is_empty() {
                "issuer".to_owned()
            } else {
                i.roles
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join("+")
            }
        })
        .collect();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, label) in issuers.iter_mut().zip(&base) {
        let shared = base.iter().filter(|l| *l == label).count() > 1;
        i.label = if shared {
            let n = match seen.iter_mut().find(|(l, _)| l == label) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    seen.push((label.clone(), 1));
                    1
                }
            };
            format!("{label}{n}")
        } else {
            label.clone()
        };
    }
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

/// Runs the cases in order, printing each result as it comes.
async fn run(cx: &Ctx, cases: &[&Case]) -> Tally {
    let mut tally = Tally::default();
    for case in cases {
        match &case.target {
            Target::Once(check) => {
                cx.http.set_current_case(case.id);
                let outcome = check(cx).await;
                report(&mut tally, case, case.id, &outcome);
            }
            Target::EachIssuer(check) => {
                for iss in &cx.issuers {
                    run_for_issuer(cx, &mut tally, case, *check, iss).await;
                }
            }
            Target::Role(role, check) => {
                let holders: Vec<&Issuer> = cx.with_role(*role).collect();
                if holders.is_empty() {
                    let reason = if cx.issuers.iter().any(|i| i.roles.is_empty()) {
                        format!(
                            "role not deployed or unknown: no issuer is known to hold the {} role (see A1/A2)",
                            role.name()
                        )
                    } else {
                        format!("role not deployed: no {} issuer", role.name())
                    };
                    report(&mut tally, case, case.id, &Outcome::Skip(reason));
                }
                for iss in holders {
                    run_for_issuer(cx, &mut tally, case, *check, iss).await;
                }
            }
        }
    }
    tally
}

async fn run_for_issuer(
    cx: &Ctx,
    tally: &mut Tally,
    case: &Case,
    check: cases::IssuerFn,
    iss: &Issuer,
) {
    let id = format!("{}@{}", case.id, iss.label);
    cx.http.set_current_case(&id);
    let outcome = check(cx, iss).await;
    report(tally, case, &id, &outcome);
}

/// Prints one result line and counts it.
fn report(tally: &mut Tally, case: &Case, id: &str, outcome: &Outcome) {
    let head = format!("{id}  [{}] {}", case.clause, case.title);
    match outcome {
        Outcome::Pass(detail) => {
            tally.passed += 1;
            match detail {
                Some(d) => out!("PASS  {head} ({d})"),
                None => out!("PASS  {head}"),
            }
        }
        Outcome::Fail(reason) => {
            tally.failed += 1;
            out!("FAIL  {head}: {reason}");
        }
        Outcome::Skip(reason) => {
            tally.skipped += 1;
            out!("SKIP  {head}: {reason}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_inserts_well_known_before_the_path() {
        let cases = [
            (
                "http://127.0.0.1:8080/as",
                "http://127.0.0.1:8080/.well-known/oauth-authorization-server/as",
            ),
            (
                "https://h.example/",
                "https://h.example/.well-known/oauth-authorization-server",
            ),
            (
                "https://h.example",
                "https://h.example/.well-known/oauth-authorization-server",
            ),
            (
                "https://h.example:443/t/x/",
                "https://h.example/.well-known/oauth-authorization-server/t/x",
            ),
        ];
        for (issuer, want) in cases {
            assert_eq!(metadata_url(issuer).as_deref(), Ok(want), "{issuer}");
        }
    }

    #[test]
    fn only_matches_sections_lines_and_parts() {
        let only = |p: &str| vec![p.to_owned()];
        assert!(selected("A2.introspection", &only("A2")));
        assert!(selected("A2", &only("A2")));
        assert!(selected("B12", &only("B")));
        assert!(!selected("B12", &only("B1")));
        assert!(!selected("A2", &only("A2.introspection")));
    }
}
