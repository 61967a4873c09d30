//! The `lanyard` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::audit;
use crate::clock::{Clock, SystemClock, UnixTime};
use crate::config::{self, Role, Settings, SigningAlg};
use crate::crypto::keyring;

/// lanyard: an OAuth 2.0 authorization server that gives every AI agent its own badge.
#[derive(Debug, Parser)]
#[command(name = "lanyard", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage signing keys.
    Keys {
        /// Which key operation.
        #[command(subcommand)]
        op: KeysOp,
    },
    /// Work with the human-owned policy file.
    Policy {
        /// Which policy operation.
        #[command(subcommand)]
        op: PolicyOp,
    },
    /// Check and export the hash-chained audit trail. The embedded store is opened by one
    /// process at a time: stop the server first.
    Audit {
        /// Which audit operation.
        #[command(subcommand)]
        op: AuditOp,
    },
}

/// `lanyard serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (or $LANYARD_CONFIG).
    #[arg(long, env = "LANYARD_CONFIG", conflicts_with = "dev")]
    pub config: Option<PathBuf>,
    /// Address to bind, overriding the configuration.
    #[arg(long)]
    pub listen: Option<String>,
    /// Development mode: loopback only, throw-away keys and data, both roles, a demo policy
    /// and a built-in, INSECURE dev IdP. Never in production.
    #[arg(long)]
    pub dev: bool,
}

/// `lanyard keys …`
#[derive(Debug, Subcommand)]
pub enum KeysOp {
    /// Create the first signing key of each enabled role (private keys 0600).
    Generate(KeysArgs),
    /// Add the next key: published now, signing after `keys.publish_lead`; delete keys whose
    /// last token has expired.
    Rotate(KeysArgs),
    /// List keys with their state.
    List(KeysArgs),
}

/// Which role's keyring.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// The IdP role.
    Idp,
    /// The resource-authorization-server role.
    As,
    /// Every enabled role.
    All,
}

/// Arguments of the `keys` operations.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Configuration file (or $LANYARD_CONFIG).
    #[arg(long, env = "LANYARD_CONFIG", default_value = "lanyard.toml")]
    pub config: PathBuf,
    /// Which role's keyring.
    #[arg(long, value_enum, default_value = "all")]
    pub role: RoleArg,
    /// Algorithm of a new key (default: keys.algorithm from the configuration).
    #[arg(long)]
    pub alg: Option<String>,
}

/// `lanyard policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyOp {
    /// Check a policy file; print every error with file, line and field.
    Check {
        /// The policy file.
        file: PathBuf,
    },
}

/// `lanyard audit …`
#[derive(Debug, Subcommand)]
pub enum AuditOp {
    /// Walk the chain from the first record: exit 0 and print `N records, chain intact`, or
    /// exit 1 and print the first broken record's seq and why. Exit 2: bad configuration;
    /// exit 3: the store cannot be opened (e.g. a running server holds it).
    Verify(AuditStoreArgs),
    /// Write records as JSON lines (each with its `seq` and chain `hash`), filtered. The chain
    /// is checked on the way: if it is broken, every matching record is still written and the
    /// command exits 1 naming the first broken record.
    Export(AuditExportArgs),
}

/// Where the audit trail is.
#[derive(Debug, Args)]
pub struct AuditStoreArgs {
    /// Configuration file (or $LANYARD_CONFIG); its `[store]` is read.
    #[arg(long, env = "LANYARD_CONFIG", default_value = "lanyard.toml")]
    pub config: PathBuf,
}

/// Arguments of `audit export`.
#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Where the audit trail is.
    #[command(flatten)]
    pub store: AuditStoreArgs,
    /// Records at or after this time (RFC 3339 or unix seconds).
    #[arg(long, value_parser = time_arg)]
    pub since: Option<UnixTime>,
    /// Records before this time (RFC 3339 or unix seconds).
    #[arg(long, value_parser = time_arg)]
    pub until: Option<UnixTime>,
    /// Only records of this human.
    #[arg(long)]
    pub human: Option<String>,
    /// Only records of this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only records in this channel.
    #[arg(long)]
    pub channel: Option<String>,
    /// Only records with this decision (`issued`, `denied`, …).
    #[arg(long)]
    pub decision: Option<String>,
    /// Write here (created with mode 0600, replaced if present) instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

fn time_arg(s: &str) -> Result<UnixTime, String> {
    audit::export::parse_time(s).map_err(|e| e.to_string())
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Run a parsed command line; the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(a) => serve(a),
        Command::Keys { op } => keys(op),
        Command::Policy {
            op: PolicyOp::Check { file },
        } => policy_check(&file),
        Command::Audit { op } => audit_cmd(op),
    }
}

fn load_settings(path: &Path) -> Result<Settings, ExitCode> {
    config::load(path, &env).map_err(|e| {
        eprintln!("{}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn serve(a: ServeArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if a.dev {
        rt.block_on(crate::dev::serve(a.listen))
    } else {
        let path = a.config.unwrap_or_else(|| PathBuf::from("lanyard.toml"));
        let mut settings = match load_settings(&path) {
            Ok(s) => s,
            Err(code) => return code,
        };
        if let Some(l) = a.listen {
            match l.parse() {
                Ok(addr) => settings.listen = addr,
                Err(_) => {
                    eprintln!("--listen: not a socket address: {l}");
                    return ExitCode::from(2);
                }
            }
        }
        crate::telemetry::init(settings.log_format, &settings.log_level);
        rt.block_on(crate::server::serve(settings))
    };
    // Log lines are written in batches; write out the last one.
    crate::telemetry::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lanyard: {e}");
            ExitCode::FAILURE
        }
    }
}

fn roles(s: &Settings, r: RoleArg) -> Vec<&config::IssuerSettings> {
    s.issuers()
        .filter(|i| match r {
            RoleArg::All => true,
            RoleArg::Idp => i.role == Role::Idp,
            RoleArg::As => i.role == Role::AuthorizationServer,
        })
        .collect()
}

fn keys(op: KeysOp) -> ExitCode {
    let (KeysOp::Generate(a) | KeysOp::Rotate(a) | KeysOp::List(a)) = &op;
    let s = match load_settings(&a.config) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let alg = match a.alg.as_deref().map(SigningAlg::parse) {
        None => s.keys.algorithm,
        Some(Some(alg)) => alg,
        Some(None) => {
            eprintln!("--alg must be ES256, RS256 or EdDSA");
            return ExitCode::from(2);
        }
    };
    let now = SystemClock.now();
    let targets = roles(&s, a.role);
    if targets.is_empty() {
        eprintln!("no enabled role matches --role");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for i in targets {
        let dir = s.keys.dir.join(i.role.as_str());
        let out = match &op {
            KeysOp::Generate(_) => keyring::generate(&dir, alg, now).map(|e| {
                format!(
                    "{}: generated {} key {} (active now) in {}",
                    i.role.as_str(),
                    e.alg,
                    e.kid,
                    dir.display()
                )
            }),
            KeysOp::Rotate(_) => keyring::rotate(
                &dir,
                alg,
                now,
                s.keys.publish_lead.as_secs(),
                s.key_retention(i),
            )
            .map(|(e, removed)| {
                let mut m = format!(
                    "{}: added {} key {}: published now, signs from {}",
                    i.role.as_str(),
                    e.alg,
                    e.kid,
                    keyring::fmt_time(e.use_from)
                );
                for k in removed {
                    m.push_str(&format!("\n{}: deleted expired key {k}", i.role.as_str()));
                }
                m
            }),
            KeysOp::List(_) => keyring::list(&dir, now, s.key_retention(i)).map(|keys| {
                let mut m = format!("{} ({}):", i.role.as_str(), i.issuer);
                for (e, st) in keys {
                    m.push_str(&format!(
                        "\n  {}  {}  created {}  signs from {}  {}",
                        e.kid,
                        e.alg,
                        keyring::fmt_time(e.created_at),
                        keyring::fmt_time(e.use_from),
                        st
                    ));
                }
                m
            }),
        };
        match out {
            Ok(m) => println!("{m}"),
            Err(e) => {
                eprintln!("{}: {e}", i.role.as_str());
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn policy_check(file: &Path) -> ExitCode {
    match crate::policy::load(file) {
        Ok(p) => {
            println!(
                "{}: ok ({} agents, {} resources, {} channels)",
                file.display(),
                p.agents().len(),
                p.resources().len(),
                p.channels().len()
            );
            ExitCode::SUCCESS
        }
        Err(errs) => {
            eprint!("{errs}");
            eprintln!("{}: {} error(s)", file.display(), errs.len());
            ExitCode::from(1)
        }
    }
}

/// Entries read from the store per page.
const AUDIT_PAGE: usize = 1024;

/// Exit code: the store cannot be opened or read.
const EXIT_STORE: u8 = 3;

fn audit_cmd(op: AuditOp) -> ExitCode {
    let args = match &op {
        AuditOp::Verify(a) => a,
        AuditOp::Export(a) => &a.store,
    };
    let settings = match load_settings(&args.config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let store = match crate::app::open_store(
        &settings.store,
        crate::app::StoreOpen::Existing,
        std::sync::Arc::new(SystemClock),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lanyard audit: {e}");
            if matches!(e, crate::store::StoreError::InUse(_)) {
                eprintln!("stop the server (SIGTERM) and run this again");
            }
            return ExitCode::from(EXIT_STORE);
        }
    };
    match op {
        AuditOp::Verify(_) => rt.block_on(audit_verify(store.as_ref())),
        AuditOp::Export(a) => rt.block_on(audit_export(store.as_ref(), a)),
    }
}

/// Read the whole chain page by page, handing each entry to `each`. A page that cannot be
/// read is read again one entry at a time, so that every entry before an unreadable one (e.g.
/// one cut too short to hold its hashes) is still handed over; then the walk ends with the
/// error.
async fn walk_audit(
    store: &dyn crate::store::Store,
    mut each: impl FnMut(&crate::store::AuditEntry) -> std::ops::ControlFlow<()>,
) -> Result<(), crate::store::StoreError> {
    let mut after = 0;
    let mut limit = AUDIT_PAGE;
    loop {
        let page = match store.audit_since(after, limit).await {
            Ok(p) => p,
            Err(e) if limit == 1 => return Err(e),
            Err(_) => {
                limit = 1;
                continue;
            }
        };
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.seq;
        for e in &page {
            if each(e).is_break() {
                return Ok(());
            }
        }
        if page.len() < limit {
            return Ok(());
        }
    }
}

/// Exit code and message for a walk that ended on a store error after `verified` records.
fn unreadable(e: &crate::store::StoreError, verified: u64) -> (ExitCode, String) {
    match e {
        // Stored bytes that do not even decode into an entry: tampering or damage.
        crate::store::StoreError::Corrupt(_) => (
            ExitCode::FAILURE,
            format!(
                "after record {verified}: {e}\nchain broken after record {verified}; the {verified} record(s) before it verify"
            ),
        ),
        _ => (ExitCode::from(EXIT_STORE), format!("lanyard audit: {e}")),
    }
}

async fn audit_verify(store: &dyn crate::store::Store) -> ExitCode {
    let mut chain = audit::verify::ChainVerifier::new();
    let mut broken = None;
    let walked = walk_audit(store, |e| match chain.push(e) {
        Ok(()) => std::ops::ControlFlow::Continue(()),
        Err(b) => {
            broken = Some(b);
            std::ops::ControlFlow::Break(())
        }
    })
    .await;
    let v = chain.verified();
    if let Some(b) = broken {
        println!("{b}");
        println!(
            "chain broken at record {}; the {} record(s) before it verify",
            b.seq, v.records
        );
        return ExitCode::FAILURE;
    }
    if let Err(e) = walked {
        let (code, msg) = unreadable(&e, v.records);
        if code == ExitCode::FAILURE {
            println!("{msg}");
        } else {
            eprintln!("{msg}");
        }
        return code;
    }
    println!("{} records, chain intact", v.records);
    if v.records > 0 {
        println!("head: record {} hash {}", v.records, audit::hex(&v.head));
    }
    ExitCode::SUCCESS
}

fn open_output(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

async fn audit_export(store: &dyn crate::store::Store, a: AuditExportArgs) -> ExitCode {
    use std::io::Write as _;
    let mut out: Box<dyn std::io::Write> = match &a.output {
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        Some(p) => match open_output(p) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("--output {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
    };
    let mut x = audit::export::Exporter::new(audit::export::Filter {
        since: a.since,
        until: a.until,
        human: a.human,
        agent: a.agent,
        channel: a.channel,
        decision: a.decision,
    });
    let mut io_err = None;
    let walked = walk_audit(store, |e| match x.push(e, &mut out) {
        Ok(()) => std::ops::ControlFlow::Continue(()),
        Err(err) => {
            io_err = Some(err);
            std::ops::ControlFlow::Break(())
        }
    })
    .await;
    if let Err(e) = out.flush()
        && io_err.is_none()
    {
        io_err = Some(e);
    }
    drop(out);
    if let Some(e) = io_err {
        eprintln!("lanyard audit export: cannot write: {e}");
        return ExitCode::FAILURE;
    }
    let s = x.finish();
    eprintln!("exported {} of {} records", s.written, s.read);
    if s.unreadable > 0 {
        eprintln!(
            "{} record(s) are not JSON objects and were not written",
            s.unreadable
        );
    }
    match (s.broken, walked) {
        (Some(b), _) => {
            eprintln!("audit chain broken: {b}");
            ExitCode::FAILURE
        }
        (None, Err(e)) => {
            let (code, msg) = unreadable(&e, s.read);
            eprintln!("audit export stopped after {} record(s)\n{msg}", s.read);
            code
        }
        (None, Ok(())) => ExitCode::SUCCESS,
    }
}
