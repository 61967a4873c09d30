//! `lanyard-bench`: how many complete ID-JAG flows lanyard serves on this machine, how fast,
//! at what CPU cost, and how close that is to what the signatures alone allow.
//!
//! It starts everything itself: a real OIDC issuer (discovery + JWKS on loopback, RS256 ID
//! tokens), a generated world (agents with their own secrets, humans in groups, channels,
//! resources and actions) written as a lanyard policy, lanyard's release build with the
//! embedded store and again with Redis (its own `redis-server` on a free loopback port), and a
//! load generator of keep-alive connections running both legs back to back. Then, in the same
//! run, the crypto-only limit through lanyard's own crypto module. See BENCHMARKS.md.

mod crypto;
mod issuer;
mod load;
mod server;
mod site;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use site::{AS_ISSUER, IDP_ISSUER, Size, World};

/// Benchmark lanyard's two-leg exchange (token exchange → ID-JAG, jwt-bearer → access token).
#[derive(Debug, Parser)]
#[command(name = "lanyard-bench")]
struct Args {
    /// Timed length of each phase (one per store and concurrency), e.g. 10s.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Untimed warm-up before each phase.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Connections (each one flow at a time), comma-separated: one phase each. 1 = lone
    /// requests, for latency.
    #[arg(long, default_value = "32,16,1", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Store backends to run, comma-separated: embedded, redis.
    #[arg(long, default_value = "embedded,redis", value_delimiter = ',')]
    store: Vec<String>,
    /// The lanyard binary (default: the release build of this workspace, built if needed).
    #[arg(long)]
    lanyard: Option<PathBuf>,
    /// The redis-server binary for Redis mode.
    #[arg(long, default_value = "redis-server")]
    redis_server: String,
    /// Redis appendfsync: always (as durable as the embedded store), everysec or no.
    #[arg(long, default_value = "always")]
    redis_appendfsync: String,
    /// lanyard's log level during the run (its log is read and discarded, as by a shipper).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Threads of the load generator.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Length of the crypto-only loop.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    crypto_duration: Duration,
    /// Distinct flows (each with its own pre-minted ID token).
    #[arg(long, default_value_t = 512)]
    flows: usize,
    /// Agents in the generated policy.
    #[arg(long, default_value_t = 16)]
    agents: usize,
    /// Humans at the IdP.
    #[arg(long, default_value_t = 400)]
    humans: usize,
    /// Channels.
    #[arg(long, default_value_t = 12)]
    channels: usize,
    /// Seed of the generated world.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where to put each run's directory (config, keys, policy, store); default: the system
    /// temporary directory. It must be on a real disk: the store's fsyncs are part of the cost.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Record a CPU profile of lanyard during each timed phase with `perf record -g` into
    /// FILE.<store>.c<concurrency>.
    #[arg(long)]
    perf_record: Option<PathBuf>,
}

/// One phase's figures.
struct Outcome {
    store: String,
    concurrency: usize,
    flows_per_s: f64,
    responses_per_s: f64,
    leg1: [f64; 4],
    leg2: [f64; 4],
    lanyard_us_per_response: f64,
    errors: u64,
}

#[allow(clippy::disallowed_methods)]
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn commit() -> String {
    std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".into(), |s| s.trim().to_owned())
}

fn config_text(store: &str, port: u16, redis_port: Option<u16>, log_level: &str) -> String {
    let store_table = match redis_port {
        Some(p) => format!("backend = \"redis\"\nurl = \"redis://127.0.0.1:{p}\""),
        None => "backend = \"embedded\"\npath = \"data/lanyard.redb\"".to_owned(),
    };
    format!(
        r#"# lanyard-bench ({store} store), generated.
version = 1
[server]
listen = "127.0.0.1:{port}"
[log]
format = "json"
level = "{log_level}"
[store]
{store_table}
[keys]
dir = "keys"
algorithm = "ES256"
[idp]
issuer = "{IDP_ISSUER}"
[authorization_server]
issuer = "{AS_ISSUER}"
[policy]
file = "policy.toml"
[outbound]
# The bench's OIDC issuer listens on loopback.
allow_private_addresses = true
[limits]
# The benchmark measures capacity; request-rate limits are each deployment's policy.
per_client = "off"
per_address = "off"
"#
    )
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn fmt_n(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lanyard-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// State shared by the phases of a run.
struct Ctx<'a> {
    args: &'a Args,
    rt: &'a tokio::runtime::Runtime,
    lanyard: PathBuf,
    world: Arc<World>,
    id_tokens: Arc<Vec<String>>,
    issuer: Arc<issuer::Issuer>,
    ticks: f64,
}

/// What the first successful store run leaves for the crypto phase.
struct Sample {
    keys_dir: tempfile::TempDir,
    id_jag: String,
    access_token: String,
}

fn run(args: &Args) -> Result<(), String> {
    println!("lanyard-bench — machine: {}", server::machine());
    println!(
        "commit {} · load average {} (1/5/15 min) at start",
        commit(),
        server::load_average()
    );
    if cfg!(debug_assertions) {
        println!("note: the load generator is a debug build; use `cargo run --release`");
    }
    let lanyard = server::lanyard_binary(args.lanyard.clone())?;
    println!("lanyard binary: {}", lanyard.display());
    // One thread: everything runs on this one (no cross-thread wake-ups); more: a pool.
    let rt = if args.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads)
            .enable_all()
            .build()
    }
    .map_err(|e| e.to_string())?;
    let now = unix_now();
    let issuer = Arc::new(rt.block_on(issuer::Issuer::start(now))?);
    let world = Arc::new(World::generate(
        &Size {
            agents: args.agents,
            humans: args.humans,
            channels: args.channels,
            flows: args.flows,
        },
        args.seed,
    )?);
    let cpus = std::thread::available_parallelism().map_or(2, usize::from);
    let t = Instant::now();
    let id_tokens = Arc::new(issuer.mint_pool(&world, now, cpus)?);
    println!(
        "world: {} agents (client_secret_basic), {} humans, {} channels, {} resources; {} distinct flows",
        world.agents.len(),
        world.humans.len(),
        world.channels.len(),
        site::RESOURCES.len(),
        world.flows.len()
    );
    println!(
        "OIDC issuer {} (RS256): {} ID tokens pre-minted in {:.1} s, before any timed phase — the IdP's signing is not lanyard's cost",
        issuer.issuer,
        id_tokens.len(),
        t.elapsed().as_secs_f64()
    );
    let ctx = Ctx {
        args,
        rt: &rt,
        lanyard,
        world,
        id_tokens,
        issuer,
        ticks: server::clock_ticks(),
    };
    let mut outcomes = Vec::new();
    let mut sample: Option<Sample> = None;
    for store in &args.store {
        match store.as_str() {
            "embedded" | "redis" => {}
            other => return Err(format!("--store: unknown backend {other}")),
        }
        match run_store(&ctx, store, &mut outcomes, &mut sample) {
            Ok(()) => {}
            Err(e) if store == "redis" => println!("\nRedis mode skipped: {e}"),
            Err(e) => return Err(e),
        }
    }
    let Some(sample) = sample else {
        return Err("no store run succeeded".into());
    };
    println!(
        "\n== crypto-only limit: lanyard::crypto in a tight loop, {cpus} threads, {:.0} s (load average {}) ==",
        args.crypto_duration.as_secs_f64(),
        server::load_average()
    );
    let first_token = ctx.id_tokens.first().cloned().unwrap_or_default();
    let inputs = Arc::new(crypto::Inputs::load(
        &sample.keys_dir.path().join("keys"),
        &ctx.issuer.jwks(),
        &first_token,
        &sample.id_jag,
        &sample.access_token,
        unix_now(),
    )?);
    let ticks = ctx.ticks;
    let limit = crypto::measure(&inputs, cpus, args.crypto_duration, || {
        server::cpu_seconds("self", ticks)
    });
    println!(
        "per step (CPU time, one thread): RS256 verify {:.1} µs · ES256 sign {:.1} µs · ES256 verify {:.1} µs",
        limit.per_op_us[0], limit.per_op_us[1], limit.per_op_us[2]
    );
    println!(
        "one flow = RS256 verify + ES256 sign (leg 1) + ES256 verify + ES256 sign (leg 2): {:.1} µs CPU",
        limit.cpu_us_per_flow
    );
    println!(
        "limit: {} flows/s = {} token responses/s on {} threads",
        fmt_n(limit.flows_per_s),
        fmt_n(2.0 * limit.flows_per_s),
        limit.threads
    );
    println!(
        "\n== summary (commit {}, load average {} at end) ==",
        commit(),
        server::load_average()
    );
    println!(
        "{:<9} {:>5} {:>9} {:>12} {:>17} {:>17} {:>10} {:>8} {:>8} {:>7}",
        "store",
        "conns",
        "flows/s",
        "responses/s",
        "leg 1 p50/p99 ms",
        "leg 2 p50/p99 ms",
        "µs CPU/rsp",
        "% crypto",
        "% cpu-eff",
        "errors"
    );
    for o in &outcomes {
        let crypto_us_per_response = limit.cpu_us_per_flow / 2.0;
        println!(
            "{:<9} {:>5} {:>9} {:>12} {:>17} {:>17} {:>10.1} {:>7.1}% {:>7.1}% {:>7}",
            o.store,
            o.concurrency,
            fmt_n(o.flows_per_s),
            fmt_n(o.responses_per_s),
            format!("{:.2}/{:.2}", o.leg1[0], o.leg1[2]),
            format!("{:.2}/{:.2}", o.leg2[0], o.leg2[2]),
            o.lanyard_us_per_response,
            100.0 * o.flows_per_s / limit.flows_per_s,
            100.0 * crypto_us_per_response / o.lanyard_us_per_response,
            o.errors
        );
    }
    println!(
        "% crypto = flows/s ÷ crypto-only flows/s (the issue's ratio; meaningful at full load).\n% cpu-eff = crypto CPU per response ÷ lanyard CPU per response (the share of lanyard's CPU that is signature work)."
    );
    Ok(())
}

fn run_store(
    ctx: &Ctx<'_>,
    store: &str,
    outcomes: &mut Vec<Outcome>,
    sample: &mut Option<Sample>,
) -> Result<(), String> {
    let args = ctx.args;
    let mut builder = tempfile::Builder::new();
    builder.prefix("lanyard-bench-");
    let dir = match &args.data_dir {
        Some(d) => builder.tempdir_in(d),
        None => builder.tempdir(),
    }
    .map_err(|e| format!("temporary directory: {e}"))?;
    let redis = if store == "redis" {
        let (proc, port) =
            server::start_redis(&args.redis_server, dir.path(), &args.redis_appendfsync)
                .map_err(|e| format!("Redis mode unavailable: {e}"))?;
        Some((proc, port))
    } else {
        None
    };
    let config = dir.path().join("lanyard.toml");
    let port = server::free_port()?;
    write(
        &config,
        &config_text(store, port, redis.as_ref().map(|r| r.1), &args.log_level),
    )?;
    server::generate_keys(&ctx.lanyard, &config)?;
    // The resource-AS role trusts the IdP role as a separate trust domain, by its JWKS.
    let now = unix_now();
    let idp_ring = lanyard::crypto::Keyring::load(&dir.path().join("keys/idp"), 3600)
        .map_err(|e| e.to_string())?;
    write(
        &dir.path().join("idp-role.jwks.json"),
        &idp_ring.jwks(now).to_string(),
    )?;
    write(
        &dir.path().join("policy.toml"),
        &ctx.world.policy(&ctx.issuer.issuer, "idp-role.jwks.json"),
    )?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let lan = match server::start_lanyard(&ctx.lanyard, &config, addr) {
        Ok(l) => l,
        Err(server::StartFailure::Refused(text)) if store == "redis" => {
            println!(
                "\nRedis mode is unavailable in this build (lanyard refused `[store] backend = \"redis\"`):\n{}",
                text.lines().take(3).collect::<Vec<_>>().join("\n")
            );
            return Ok(());
        }
        Err(server::StartFailure::Refused(text)) => {
            return Err(format!("lanyard refused to start:\n{text}"));
        }
        Err(server::StartFailure::Other(e)) => return Err(e),
    };
    ctx.rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if load::get_status(addr, "/readyz").await == Ok(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("lanyard never became ready".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })?;
    let target = Arc::new(load::Target::new(addr, &ctx.world, &ctx.id_tokens)?);
    let (b1, b2) = ctx
        .rt
        .block_on(load::one_flow(&target, 0))
        .map_err(|e| format!("a checked flow failed ({store} store): {e}"))?;
    let id_jag = load::json_str(&b1, "access_token")
        .unwrap_or_default()
        .to_owned();
    let access_token = load::json_str(&b2, "access_token")
        .unwrap_or_default()
        .to_owned();
    println!(
        "\n== {store} store: lanyard pid {} on {addr}, data in {}{} ==",
        lan.proc.pid(),
        dir.path().display(),
        redis.as_ref().map_or(String::new(), |(p, port)| format!(
            ", redis-server pid {} on 127.0.0.1:{port} (appendonly yes, appendfsync {})",
            p.pid(),
            args.redis_appendfsync
        ))
    );
    if sample.is_none()
        && let Ok(v) = lanyard::crypto::verify::parse(&access_token)
            .map_err(|e| e.to_string())
            .and_then(|j| {
                serde_json::from_slice::<serde_json::Value>(&j.payload).map_err(|e| e.to_string())
            })
    {
        println!("a sample access token's claims: {v}");
    }
    for &c in &args.concurrency {
        outcomes.push(run_phase(
            ctx,
            store,
            &target,
            c,
            lan.proc.pid(),
            redis.as_ref().map(|r| r.0.pid()),
        )?);
    }
    drop(lan);
    if sample.is_none() {
        // Keep the keys directory for the crypto phase (the server is gone).
        *sample = Some(Sample {
            keys_dir: dir,
            id_jag,
            access_token,
        });
    }
    Ok(())
}

fn perf_start(file: &Path, pid: u32) -> Option<server::Proc> {
    std::process::Command::new("perf")
        .args([
            "record",
            "-F",
            "299",
            "--call-graph",
            "dwarf,16384",
            "-q",
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()
        .map(|child| server::Proc { child })
}

fn perf_stop(p: server::Proc) {
    // perf writes its file on SIGINT.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &p.pid().to_string()])
        .status();
    let mut p = p;
    let _ = p.child.wait();
}

fn run_phase(
    ctx: &Ctx<'_>,
    store: &str,
    target: &Arc<load::Target>,
    concurrency: usize,
    pid: u32,
    redis_pid: Option<u32>,
) -> Result<Outcome, String> {
    let args = ctx.args;
    let ticks = ctx.ticks;
    ctx.rt
        .block_on(load::phase(target, concurrency, args.warmup));
    let pid_s = pid.to_string();
    let redis_s = redis_pid.map(|p| p.to_string());
    let read = || {
        (
            server::cpu_seconds(&pid_s, ticks),
            server::cpu_seconds("self", ticks),
            redis_s
                .as_deref()
                .and_then(|p| server::cpu_seconds(p, ticks)),
            server::machine_seconds(ticks),
        )
    };
    let perf = args.perf_record.as_ref().and_then(|f| {
        let mut name = f.as_os_str().to_owned();
        name.push(format!(".{store}.c{concurrency}"));
        perf_start(Path::new(&name), pid)
    });
    let before = read();
    let load_before = server::load_average();
    let (mut stats, wall) = ctx
        .rt
        .block_on(load::phase(target, concurrency, args.duration));
    let after = read();
    if let Some(p) = perf {
        perf_stop(p);
    }
    let secs = wall.as_secs_f64();
    let responses = stats.responses();
    let diff = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let lan_cpu = diff(before.0, after.0).unwrap_or(f64::NAN);
    let gen_cpu = diff(before.1, after.1).unwrap_or(f64::NAN);
    let redis_cpu = diff(before.2, after.2);
    let per = |cpu: f64| cpu * 1e6 / responses.max(1) as f64;
    stats.leg1_us.sort_unstable();
    stats.leg2_us.sort_unstable();
    let q = |v: &[u32]| {
        [
            load::quantile_ms(v, 0.5),
            load::quantile_ms(v, 0.9),
            load::quantile_ms(v, 0.99),
            load::quantile_ms(v, 1.0),
        ]
    };
    let o = Outcome {
        store: store.to_owned(),
        concurrency,
        flows_per_s: stats.flows as f64 / secs,
        responses_per_s: responses as f64 / secs,
        leg1: q(&stats.leg1_us),
        leg2: q(&stats.leg2_us),
        lanyard_us_per_response: per(lan_cpu),
        errors: stats.errors1 + stats.errors2,
    };
    println!(
        "\n-- {store} store, {concurrency} connection{}, {secs:.1} s timed after {:.0} s warm-up (load average {load_before} before) --",
        if concurrency == 1 {
            " (lone requests)"
        } else {
            "s"
        },
        args.warmup.as_secs_f64()
    );
    println!(
        "flows/s            {:>9}   ({} flows, both legs 200; errors: leg 1 {}, leg 2 {})",
        fmt_n(o.flows_per_s),
        stats.flows,
        stats.errors1,
        stats.errors2
    );
    println!("token responses/s  {:>9}", fmt_n(o.responses_per_s));
    if let Some(e) = &stats.first_error {
        println!("first error: {}", e.chars().take(300).collect::<String>());
    }
    println!("latency, ms            p50      p90      p99      max");
    for (name, v) in [
        ("leg 1 token exchange", o.leg1),
        ("leg 2 jwt-bearer    ", o.leg2),
    ] {
        println!(
            "  {name} {:>6.3}   {:>6.3}   {:>6.3}   {:>6.1}",
            v[0], v[1], v[2], v[3]
        );
    }
    println!(
        "CPU per token response: lanyard {:.1} µs ({:.2} CPUs busy) · load generator {:.1} µs{}",
        o.lanyard_us_per_response,
        lan_cpu / secs,
        per(gen_cpu),
        redis_cpu.map_or(String::new(), |r| format!(
            " · redis-server {:.1} µs",
            per(r)
        ))
    );
    if let (Some((b0, t0)), Some((b1, t1))) = (before.3, after.3) {
        let busy = b1 - b0;
        let total = (t1 - t0).max(1e-9);
        let ours = lan_cpu + gen_cpu + redis_cpu.unwrap_or(0.0);
        println!(
            "machine: {:.0}% busy; other processes (not lanyard, bench, redis) used {:.2} CPUs",
            100.0 * busy / total,
            ((busy - ours) / secs).max(0.0)
        );
    }
    Ok(o)
}
