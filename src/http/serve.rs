//! Serving connections: one thread per CPU, each with its own single-threaded runtime.
//!
//! The accept loop runs on the main runtime and hands each new connection to the lane
//! serving the fewest; the lane serves that connection (TLS handshake, HTTP/1.1 or HTTP/2)
//! to its end on its own thread. A request is therefore handled start to finish on one
//! thread: no work-stealing scheduler moves it, and no second worker is woken to look for
//! work on every readiness event. On the 2-vCPU machines lanyard is measured on, those
//! cross-thread wake-ups (each an inter-processor interrupt on a VM) were about 0.1 ms of a
//! lone request's latency and a fifth of its CPU (BENCHMARKS.md). Background work (key and
//! policy reloads, purges) stays on the main runtime. The Redis store keeps a connection per
//! lane, driven by the lane's own runtime (`crate::lane`).
//!
//! The unit of balance is the connection: every request (and every HTTP/2 stream) of one
//! connection is served by its lane, so a client that multiplexes everything over one or two
//! connections uses one or two CPUs. Agents and SDKs open connections of their own; a proxy
//! in front should keep a pool of them.
//!
//! A lane is also where the embedded store may commit a lone request's write itself (see
//! `store::embedded`): it does so only while no other request is in flight, so blocking the
//! lane for that one flush holds up nobody.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt as _;

use crate::app::Broker;

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection on its way to a lane: the socket (already non-blocking) and the peer.
type Handoff = (std::net::TcpStream, SocketAddr);

/// One serving thread, as the accept loop sees it.
struct Lane {
    tx: mpsc::UnboundedSender<Handoff>,
    /// Connections it serves now (or has been handed and not yet finished).
    open: Arc<AtomicUsize>,
    /// Fires when the lane has stopped: its queue closed and its connections drained.
    done: oneshot::Receiver<()>,
}

/// Counts a connection as open on its lane until dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn start_lane(
    i: usize,
    broker: &Arc<Broker>,
    app: &axum::Router,
    all_drained: &Arc<tokio::sync::Barrier>,
) -> Result<Lane, String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Handoff>();
    let (done_tx, done) = oneshot::channel();
    let open = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start serving runtime {i}: {e}"))?;
    let (broker, app, count) = (broker.clone(), app.clone(), open.clone());
    let all_drained = all_drained.clone();
    std::thread::Builder::new()
        .name(format!("lanyard-http-{i}"))
        .spawn(move || {
            crate::lane::enter(i);
            rt.block_on(async move {
                let graceful = GracefulShutdown::new();
                while let Some((tcp, peer)) = rx.recv().await {
                    let open = Open(count.clone());
                    match tokio::net::TcpStream::from_std(tcp) {
                        Ok(tcp) => {
                            let conn = connection(
                                broker.clone(),
                                app.clone(),
                                tcp,
                                peer,
                                graceful.watcher(),
                            );
                            tokio::spawn(async move {
                                conn.await;
                                drop(open);
                            });
                        }
                        Err(e) => tracing::warn!(%peer, error = %e, "connection not registered"),
                    }
                }
                // The accept loop is gone: finish the open connections.
                graceful.shutdown().await;
                // A task of this runtime may still serve the other lanes (a Redis audit
                // batch appended for their requests): keep running it until every lane has
                // drained.
                all_drained.wait().await;
            });
            drop(rt);
            let _ = done_tx.send(());
        })
        .map_err(|e| format!("cannot start serving thread {i}: {e}"))?;
    Ok(Lane { tx, open, done })
}

/// Serve one connection to its end: the TLS handshake first when TLS is on (with the
/// configuration in force now, so that a reloaded certificate applies to new connections),
/// then HTTP/1.1 or HTTP/2.
async fn connection(
    broker: Arc<Broker>,
    app: axum::Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
) {
    // Responses are written whole; waiting to coalesce them only adds latency.
    let _ = tcp.set_nodelay(true);
    let svc = app.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req
    });
    let svc = TowerToHyperService::new(svc);
    let builder = Builder::new(TokioExecutor::new());
    let served = match broker.tls.as_ref() {
        None => {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
            watcher.watch(conn.into_owned()).await
        }
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            let stream =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            watcher.watch(conn.into_owned()).await
        }
    };
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Accept on `listener` until `shutdown` resolves, handing each connection to a lane; then
/// stop accepting and return once every lane has finished its open connections.
pub async fn serve(
    broker: Arc<Broker>,
    listener: tokio::net::TcpListener,
    extra: Option<super::Routes>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let app = super::router(broker.clone(), extra);
    let n = crate::lane::count();
    let all_drained = Arc::new(tokio::sync::Barrier::new(n));
    let lanes = (0..n)
        .map(|i| start_lane(i, &broker, &app, &all_drained))
        .collect::<Result<Vec<_>, _>>()?;
    tracing::debug!(lanes = lanes.len(), "serving threads started");
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let tcp = match tcp.into_std() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "connection not handed over");
                continue;
            }
        };
        // The lane serving the fewest connections (the first, of equals).
        let Some(lane) = lanes
            .iter()
            .filter(|l| !l.tx.is_closed())
            .min_by_key(|l| l.open.load(Ordering::Relaxed))
        else {
            return Err("every serving thread has stopped".into());
        };
        lane.open.fetch_add(1, Ordering::Relaxed);
        if lane.tx.send((tcp, peer)).is_err() {
            lane.open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(%peer, "serving thread stopped; connection dropped");
        }
    }
    drop(listener);
    let done: Vec<_> = lanes.into_iter().map(|l| l.done).collect();
    for d in done {
        let _ = d.await;
    }
    Ok(())
}
