//! lanyard: an OAuth 2.0 authorization server that gives every AI agent its own badge.
//!
//! It trusts an enterprise IdP, accepts a human's identity assertion from an agent that
//! authenticates with its own credential, and mints short-lived tokens for *this agent,
//! acting for this human, in this channel, for these actions* (ID-JAG, RFC 8693, RFC 7523,
//! RFC 9068). Resource servers verify those tokens offline against lanyard's JWKS.
//!
//! # Layout
//!
//! Imports point down: `main → cli → dev → server → http → grants → { core, oauth, crypto,
//! store, idp, policy, audit, limits, metrics, notify }`; [`app`] builds the broker beside
//! them. [`core`] is pure: claims, validation, the intersection (agent ∩ channel ∩ human ∩
//! request), the approval rule, rejections.
//!
//! - [`cli`]: the `lanyard` command line (serve, keys, policy check, audit verify/export).
//! - [`dev`]: `serve --dev`: throw-away keys and data, a demo policy, a built-in dev IdP and
//!   its routes, wired in by the command line (nothing below knows dev mode).
//! - [`server`]: runs a built broker: binding, signals, draining, background reloads.
//! - [`http`]: the only axum user: router, the strict form extractor, protocol endpoints,
//!   well-known metadata and JWKS, the admin API, the address rate limit, health, metrics,
//!   request ids; `http::serve` serves connections on one single-threaded runtime per CPU.
//! - [`grants`]: the service layer, without a web framework: each leg a pure plan and an
//!   effectful commit (token exchange, jwt-bearer), client authentication, DPoP,
//!   introspection, revocation, just-in-time approvals, access requests, runtime grants;
//!   all run with a [`grants::cx::GrantCx`].
//! - [`app`]: composition root: settings → [`app::Broker`] (a `GrantCx` plus TLS, reload
//!   bookkeeping and draining), reloading of keys and policy.
//! - [`verifier`]: for resource servers: verify lanyard access tokens (RFC 9068 §4) and
//!   DPoP proofs (RFC 9449 §7) against lanyard's JWKS; `http::require` is its tower layer
//!   and `http::demo_rs` a demo resource server built with it.
//! - [`audit`]: audit records (who, for whom, where, what, the decision, as typed words) and
//!   their hash chain: `verify` names the first broken record, `export` writes filtered
//!   JSON lines. Pure.
//! - [`idp`]: outbound HTTP for keys: upstream discovery and JWKS caches (no redirects, size
//!   and time limits, non-public addresses refused unless allowed).
//! - [`notify`]: outbound webhooks, in the background, best effort.
//! - [`limits`]: rate budgets per address and per authenticated client (shared in Redis).
//! - [`metrics`]: lock-free counters rendered at `/metrics`.
//! - [`crypto`]: the only josekit user: keyrings and rotation, JWT signing and verification,
//!   JWK thumbprints, DPoP proofs.
//! - [`store`]: the [`store::Store`] contract, the embedded durable backend (redb, group
//!   commit), the Redis backend (replicas) and a memory backend for unit tests; the
//!   contract's executable suite is test support (feature `testing`).
//! - [`telemetry`]: tracing setup (JSON or pretty).
//! - [`oauth`]: wire vocabulary: URNs, strict form parsing, the RFC 6749 error type with the
//!   status each code declares, the issuers' roles, RFC 8414 metadata. Pure.
//! - [`config`]: the operator's versioned TOML → validated [`config::Settings`].
//! - [`policy`]: the human-owned policy file: agents, resources, channels, entitlements;
//!   `policy check` with file/line/field errors.
//! - [`clock`]: time as a parameter; the one place that reads the wall clock.
//! - [`tls`]: rustls termination with certificate reload and optional client certificates.
//! - [`inflight`], [`lane`]: how many requests are in flight, and which serving lane a
//!   thread belongs to (the stores' hints).
//! - `fuzzing` (hidden, feature `testing`): the invariants the `fuzz/` targets check, shared
//!   with the corpus replay test so that `cargo test` checks the same properties.

pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod crypto;
pub mod dev;
#[doc(hidden)]
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod grants;
pub mod http;
pub mod idp;
pub mod inflight;
pub mod lane;
pub mod limits;
pub mod metrics;
pub mod notify;
pub mod oauth;
pub mod policy;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod verifier;
