//! The `lanyard` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::clock::{Clock, SystemClock};
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
        rt.block_on(crate::app::serve(settings))
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

/// How long a replaced key stays published: the role's longest token plus leeway.
pub fn retention(s: &Settings, i: &config::IssuerSettings) -> u64 {
    i.max_token_ttl.as_secs() + s.leeway
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
                retention(&s, i),
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
            KeysOp::List(_) => keyring::list(&dir, now, retention(&s, i)).map(|keys| {
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
