//! A simulator's accept loop.
//!
//! Owns connections. It serves each with hyper directly (not `axum::serve`) so that a handler
//! can ask for its connection to be closed after it has processed a request and before any
//! byte of the answer is written ([`ConnCtx::drop_unanswered`]): the "processed, then the
//! connection dropped" fault that a client cannot tell from a failure. Knows nothing of any
//! API: it serves the router it is given.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tower::Layer;

/// Per-connection context handed to handlers.
#[derive(Clone)]
pub struct ConnCtx {
    pub peer: SocketAddr,
    /// The address this connection arrived on: a `Host` naming it is this machine.
    pub local: SocketAddr,
    /// Notified by a handler that wants this connection closed without an answer.
    pub kill: Arc<Notify>,
}

impl ConnCtx {
    /// Closes this connection without writing a byte of the answer; never returns (the
    /// server loop drops the handler with the connection).
    pub async fn drop_unanswered(&self) {
        self.kill.notify_one();
        std::future::pending::<()>().await;
    }
}

/// Completes when the server is to stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server running in a background task; stop it with [`Serving::stop`].
pub struct Serving {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Binds `listen`; returns the listener and the address it got (port 0 picks one).
pub async fn bind(listen: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    Ok((listener, addr))
}

impl Serving {
    /// Runs `run` (a server loop such as [`serve`], with whatever the simulator does around
    /// it) in a background task, handing it the future that completes on [`Serving::stop`].
    pub fn spawn<Fut>(addr: SocketAddr, run: impl FnOnce(Shutdown) -> Fut) -> Serving
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async move {
            let _ = stopped.await;
        })));
        Serving {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Stops accepting connections and waits for the loop (and what runs after it) to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Serves `app` on `listener` until `shutdown` completes. Each connection's handlers find a
/// [`ConnCtx`] in their extensions.
pub async fn serve(app: Router, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let bound = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
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
}
