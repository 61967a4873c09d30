//! Integration tests: a real `lanyard` process on 127.0.0.1, driven over HTTP, with a real
//! OIDC issuer (discovery + JWKS) beside it. One binary; one file per behaviour.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod access_requests;
mod approvals;
mod attacks;
mod audit;
mod cli;
mod fuzz_corpus;
mod keys;
mod log_scan;
mod rate_limit;
mod redis_store;
mod replicas;
mod resource_server;
mod restart;
mod revocation;
mod tls;
mod token_exchange;
mod walkthrough;
