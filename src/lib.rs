//! lanyard: an OAuth 2.0 authorization server that gives every AI agent its own badge.
//!
//! It trusts an enterprise IdP, accepts a human's identity assertion from an agent that
//! authenticates with its own credential, and mints short-lived tokens for *this agent,
//! acting for this human, in this channel, for these actions* (ID-JAG, RFC 8693, RFC 7523,
//! RFC 9068). Resource servers verify those tokens offline against lanyard's JWKS.
//!
//! # Layout
//!
//! Requests flow `http → grants → { core, oauth, crypto, store, idp, policy, audit }`.
//! [`core`] is pure: claims, validation, the intersection (agent ∩ channel ∩ human ∩
//! request), rejections.
//!
//! - [`audit`]: audit records (who, for whom, where, what, the decision) and their hash chain:
//!   `verify` names the first broken record, `export` writes filtered JSON lines. Pure.
//! - [`app`]: composition root: settings → [`app::Broker`] (store, keyrings, policy, clock),
//!   reloading of keys and policy.
//! - [`cli`]: the `lanyard` command line (serve, keys, policy check, audit verify/export).
//! - [`config`]: the operator's versioned TOML → validated [`config::Settings`].
//! - [`clock`]: time as a parameter; the one place that reads the wall clock.
//! - [`oauth`]: wire vocabulary: URNs, strict form parsing, the RFC 6749 error type, RFC 8414
//!   metadata. Pure.
//! - [`crypto`]: the only josekit user: keyrings and rotation, JWT signing, JWK thumbprints.
//! - [`store`]: the [`store::Store`] contract, its executable test suite, the embedded durable
//!   backend (redb, group commit), the Redis backend (replicas) and a memory backend for
//!   unit tests.
//! - [`policy`]: the human-owned policy file: agents, resources, channels, entitlements;
//!   `policy check` with file/line/field errors.
//! - [`dev`]: `serve --dev`: throw-away keys and data, a demo policy and a built-in dev IdP.
//! - [`grants`]: one module per grant (token exchange, jwt-bearer) with shared client
//!   authentication and DPoP; introspection, revocation and the status of lanyard's own
//!   tokens; just-in-time approvals; access requests.
//! - [`idp`]: the only outbound HTTP: upstream discovery and JWKS caches (no redirects, size
//!   and time limits, non-public addresses refused unless allowed).
//! - [`http`]: the only axum user: router, the strict form extractor, protocol endpoints,
//!   well-known metadata and JWKS, the admin API, rate limits, health, metrics, request ids;
//!   `http::serve` serves connections on one single-threaded runtime per CPU.
//! - [`inflight`]: how many requests are in flight (the embedded store's hint for committing
//!   a lone request's write on its own thread).
//! - [`tls`]: rustls termination with certificate reload and optional client certificates.
//! - [`telemetry`]: tracing setup (JSON or pretty).
//! - [`verifier`]: for resource servers: verify lanyard access tokens (RFC 9068 §4) and
//!   DPoP proofs (RFC 9449 §7) against lanyard's JWKS; `http::require` is its tower layer
//!   and `http::demo_rs` a demo resource server built with it.
//! - `fuzzing` (hidden): the invariants the `fuzz/` targets check, shared with the corpus
//!   replay test so that `cargo test` checks the same properties.

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
