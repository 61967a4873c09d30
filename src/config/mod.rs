//! Server configuration: a versioned TOML file → validated [`Settings`].
//!
//! The file is for operators (listen address, issuers, keys, store, logging). What agents may
//! do lives in the separate, human-owned policy file (`policy/`). Every field is documented
//! here and in `lanyard.example.toml`, which a unit test parses.
//!
//! Validation collects **every** error with its field path before giving up, so an operator
//! fixes a broken file in one round. A short list of environment variables ([`ENV_VARS`])
//! overrides deployment values and secrets; their errors name the variable.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::oauth::FormLimits;

mod raw;
mod settings;
mod validate;

pub use raw::*;
pub use settings::*;
pub use validate::*;

/// The only configuration version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// Environment variables that override the file: (variable, field it overrides, meaning).
pub const ENV_VARS: &[(&str, &str, &str)] = &[
    (
        "LANYARD_CONFIG",
        "—",
        "path of the configuration file (instead of --config)",
    ),
    ("LANYARD_LISTEN", "server.listen", "socket address to bind"),
    (
        "LANYARD_LOG",
        "log.level",
        "tracing filter, e.g. `info` or `lanyard=debug`",
    ),
    ("LANYARD_LOG_FORMAT", "log.format", "`json` or `pretty`"),
    ("LANYARD_STORE_PATH", "store.path", "embedded store file"),
    (
        "LANYARD_REDIS_URL",
        "store.url",
        "Redis URL of the shared store; may carry a password (a secret)",
    ),
    (
        "LANYARD_KEYS_DIR",
        "keys.dir",
        "directory holding the signing keyrings (e.g. a mounted secret)",
    ),
    (
        "LANYARD_IDP_ISSUER",
        "idp.issuer",
        "issuer identifier of the IdP role",
    ),
    (
        "LANYARD_AS_ISSUER",
        "authorization_server.issuer",
        "issuer identifier of the resource-AS role",
    ),
    (
        "LANYARD_POLICY_FILE",
        "policy.file",
        "the human-owned policy file",
    ),
];

/// One configuration problem, with the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted field path (`server.listen`), or `<file>` for syntax errors.
    pub field: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// What is wrong, in operator terms.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// All problems found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parse and validate a configuration text. `base` resolves relative paths (the file's
/// directory); `env` looks up the override variables (pass `|k| std::env::var(k).ok()`).
pub fn parse(
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigErrors> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        ConfigErrors(vec![ConfigError {
            field: "<file>".into(),
            line,
            message: e.message().to_owned(),
        }])
    })?;
    validate(raw, base, env, text)
}

/// Read, parse and validate a file.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            field: "<file>".into(),
            line: None,
            message: format!("cannot read {}: {e}", path.display()),
        }])
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, env)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Finds the line of `key = ` inside `[table]` for error messages; best effort.
fn find_line(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut in_table = table.is_empty();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('[') {
            in_table = l.trim_matches(|c| c == '[' || c == ']').trim() == table;
            continue;
        }
        if in_table
            && l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests;
