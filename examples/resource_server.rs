//! An example resource server that accepts lanyard access tokens and enforces one action per
//! route (see `lanyard::http::demo_rs` for the routes).
//!
//! ```sh
//! cargo run --example resource_server -- --issuer http://127.0.0.1:8080/as \
//!     --resource https://mcp.github.example/ --listen 127.0.0.1:8090
//! curl -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:8090/repos/acme/api
//! ```
//!
//! It discovers lanyard's JWKS through RFC 8414 metadata at `--issuer` (or takes
//! `--jwks-uri`), verifies each token per RFC 9068 §4 and DPoP per RFC 9449 §7, answers 401
//! `invalid_token` / 403 `insufficient_scope` with `WWW-Authenticate` challenges naming its
//! RFC 9728 metadata, and serves that metadata at `/.well-known/oauth-protected-resource`.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use lanyard::clock::SystemClock;
use lanyard::http::{demo_rs, require::Guard};
use lanyard::verifier::{Verifier, VerifierConfig};

#[derive(Parser)]
#[command(about = "Example resource server verifying lanyard access tokens")]
struct Args {
    /// lanyard's resource-AS issuer identifier (exactly as in its metadata).
    #[arg(long)]
    issuer: String,
    /// This resource's identifier (the `aud` of tokens for it). Default: its own URL.
    #[arg(long)]
    resource: Option<String>,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// The origin clients use to reach this server, if not `http://<listen>`.
    #[arg(long)]
    public_origin: Option<String>,
    /// Fetch lanyard's keys here instead of discovering `jwks_uri`.
    #[arg(long)]
    jwks_uri: Option<String>,
    /// Accepted signing algorithm (lanyard's `keys.algorithm`).
    #[arg(long, default_value = "ES256", value_parser = ["ES256", "RS256", "EdDSA"])]
    alg: String,
    /// Refuse tokens that are not DPoP-bound.
    #[arg(long)]
    require_dpop: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let origin = args
        .public_origin
        .unwrap_or_else(|| format!("http://{addr}"));
    let resource = args.resource.unwrap_or_else(|| format!("{origin}/"));
    let mut cfg = VerifierConfig::new(args.issuer, resource);
    cfg.jwks_uri = args.jwks_uri;
    cfg.require_dpop = args.require_dpop;
    cfg.algorithms = vec![match args.alg.as_str() {
        "RS256" => "RS256",
        "EdDSA" => "EdDSA",
        _ => "ES256",
    }];
    let guard = Arc::new(Guard {
        verifier: Verifier::new(cfg, Arc::new(SystemClock))?,
        public_origin: origin.clone(),
        resource_metadata: format!("{origin}{}", demo_rs::METADATA_PATH),
    });
    let app = demo_rs::router(guard, "lanyard example resource server");
    tracing::info!(%addr, "example resource server listening");
    println!("listening on http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
