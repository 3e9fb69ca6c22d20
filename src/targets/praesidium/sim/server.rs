//! The simulator's accept loop.
//!
//! Owns connections. It serves each with hyper directly (not `axum::serve`) so that a handler
//! can ask for its connection to be closed after it has processed a request and before any
//! byte of the answer is written: the "processed, then the connection dropped" fault that a
//! client cannot tell from a failure. Also saves the state file periodically.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Extension;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tower::Layer;

use super::Sim;

/// Per-connection context handed to handlers.
#[derive(Clone)]
pub struct ConnCtx {
    pub peer: SocketAddr,
    /// The address this connection arrived on: a `Host` naming it is this machine.
    pub local: SocketAddr,
    /// Notified by a handler that wants this connection closed without an answer.
    pub kill: Arc<Notify>,
}

/// A simulator serving on a socket; stop it with [`RunningSim::stop`].
pub struct RunningSim {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningSim {
    /// `http://ADDR`, the base URL a client configuration names.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and saves the state file.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Binds `listen` and serves the simulator in a background task.
pub async fn start(sim: Arc<Sim>, listen: SocketAddr) -> Result<RunningSim> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(sim.clone(), listener, async move {
        let _ = stopped.await;
    }));
    Ok(RunningSim {
        addr,
        sim,
        stop: Some(stop),
        task,
    })
}

/// Serves until `shutdown` completes.
pub async fn serve(sim: Arc<Sim>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let app = super::routes::router(sim.clone());
    let bound = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let saver = sim.state_file.is_some().then(|| {
        let sim = sim.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                if let Err(error) = sim.save_if_dirty() {
                    tracing::warn!("{error:#}");
                }
            }
        })
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Bound to a wildcard address, the listener's own address names no interface; the
        // stream's does (the one the client dialled).
        let local = stream.local_addr().unwrap_or(bound);
        let kill = Arc::new(Notify::new());
        let service = Extension(ConnCtx {
            peer,
            local,
            kill: kill.clone(),
        })
        .layer(app.clone());
        tokio::spawn(async move {
            let connection = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .http1_only()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .into_owned();
            tokio::select! {
                _ = connection => {}
                // Dropping the connection future closes the socket mid-request.
                _ = kill.notified() => {}
            }
        });
    }
    if let Some(saver) = saver {
        saver.abort();
    }
    if let Err(error) = sim.save_if_dirty() {
        tracing::warn!("{error:#}");
    }
}
