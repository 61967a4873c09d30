//! Running a built [`Broker`]: bind, serve HTTP until SIGTERM/SIGINT and drain for
//! `shutdown_grace`; in the background, reload keys, policy and the TLS certificate (on
//! change and on SIGHUP) and purge expired state.
//!
//! It sits above [`crate::app`] (which only builds the broker) and [`crate::http`] (which
//! only answers requests), so that neither imports the other's caller: `cli` and `dev` start
//! a server through here.

use std::sync::Arc;
use std::time::Duration;

use crate::app::{Broker, StartError};
use crate::clock::SystemClock;
use crate::config::Settings;

/// Serve until SIGTERM/SIGINT, then drain for `shutdown_grace`.
pub async fn serve(settings: Settings) -> Result<(), StartError> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot bind {}: {e}", settings.listen))?;
    let broker = Arc::new(Broker::open(settings, Arc::new(SystemClock))?);
    // A shared store may be down at startup: serve anyway (not ready, nothing issued) and
    // pick it up when it answers, rather than crash-looping.
    if let Err(e) = broker.store.ping().await {
        tracing::warn!(error = %e, "store not reachable yet; /readyz stays false until it answers");
    }
    run(broker, listener, None).await
}

/// Serve `broker` on a bound listener (dev mode and tests bind first), with `extra` routes
/// beside lanyard's own (dev mode's dev IdP and demo resource server).
pub async fn run(
    broker: Arc<Broker>,
    listener: tokio::net::TcpListener,
    extra: Option<crate::http::Routes>,
) -> Result<(), StartError> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    for i in broker.issuers() {
        tracing::info!(role = i.settings.role.as_str(), issuer = %i.settings.issuer, "serving issuer");
    }
    let tls = match broker.settings.tls.as_ref() {
        None => "off",
        Some(t) if t.require_client_cert => "mtls-required",
        Some(t) if t.client_ca_file.is_some() => "mtls-optional",
        Some(_) => "on",
    };
    tracing::info!(%addr, tls, "lanyard listening");
    spawn_background(broker.clone());
    let grace = broker.settings.shutdown_grace;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let b2 = broker.clone();
    let on_signal = async move {
        shutdown_signal().await;
        b2.start_draining();
        tracing::info!(grace = ?grace, "shutting down: draining in-flight requests");
        let _ = stop_tx.send(());
    };
    let server = crate::http::serve::serve(broker, listener, extra, on_signal);
    // Stop waiting for stragglers once the grace period after the signal has passed.
    let drained = async {
        let _ = stop_rx.await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = server => r?,
        () = drained => tracing::warn!("grace period over; closing remaining connections"),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; SIGTERM will kill without draining");
            std::future::pending::<()>().await;
        }
    }
}

/// Reload keys and policy on change and on SIGHUP; purge expired state.
fn spawn_background(b: Arc<Broker>) {
    let tick = b
        .settings
        .keys
        .reload_interval
        .min(b.settings.policy_reload_interval);
    let rb = b.clone();
    tokio::spawn(async move {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let forced = match hup.as_mut() {
                Some(h) => tokio::select! {
                    _ = tokio::time::sleep(tick) => false,
                    _ = h.recv() => true,
                },
                None => {
                    tokio::time::sleep(tick).await;
                    false
                }
            };
            if forced {
                tracing::info!("SIGHUP: reloading keys, policy and TLS certificate");
            }
            let b = rb.clone();
            // File reads and key parsing are blocking work.
            let _ = tokio::task::spawn_blocking(move || {
                b.reload_keys(forced);
                b.reload_policy(forced);
                if let Some(t) = &b.tls {
                    t.reload(forced);
                }
            })
            .await;
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            match b.store.purge_expired(b.clock.now()).await {
                Ok(n) if n > 0 => tracing::debug!(purged = n, "expired state purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed"),
            }
        }
    });
}
