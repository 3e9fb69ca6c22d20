//! The Praesidium simulator as a running server.
//!
//! Owns starting and stopping it (the event publisher's sending task with it), and saving the
//! state file periodically and at the end. The
//! accept loop itself (and the connection drop it allows) is the shared `sim_kit::server`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::net::TcpListener;

use super::Sim;
pub use crate::targets::sim_kit::server::ConnCtx;
use crate::targets::sim_kit::server::{self as kit, Serving};

/// A simulator serving on a socket; stop it with [`RunningSim::stop`].
pub struct RunningSim {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    serving: Serving,
}

impl RunningSim {
    /// `http://ADDR`, the base URL a client configuration names.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, stops sending events (those still queued are dropped) and
    /// saves the state file.
    pub async fn stop(self) {
        self.serving.stop().await;
    }
}

/// Binds `listen` and serves the simulator in a background task.
pub async fn start(sim: Arc<Sim>, listen: SocketAddr) -> Result<RunningSim> {
    let (listener, addr) = kit::bind(listen).await?;
    let served = sim.clone();
    let serving = Serving::spawn(addr, move |shutdown| serve(served, listener, shutdown));
    Ok(RunningSim { addr, sim, serving })
}

/// Serves (and sends events) until `shutdown` completes, then saves the state file.
pub async fn serve(sim: Arc<Sim>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let app = super::routes::router(sim.clone());
    let sending = super::publisher::spawn(sim.clone());
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
    kit::serve(app, listener, shutdown).await;
    if let Some(sending) = sending {
        sending.stop().await;
    }
    if let Some(saver) = saver {
        saver.abort();
    }
    if let Err(error) = sim.save_if_dirty() {
        tracing::warn!("{error:#}");
    }
}
