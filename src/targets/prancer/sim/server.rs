//! The prancer simulator as a running server: starting and stopping it, and the URLs it
//! answers at. The accept loop itself is the shared `sim_kit::server`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;

use super::Sim;
use crate::targets::sim_kit::server::{self as kit, Serving};

/// A simulator serving on a socket; stop it with [`RunningSim::stop`].
pub struct RunningSim {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    serving: Serving,
}

impl RunningSim {
    /// `http://ADDR/CUSTOMER`, the base URL a client configuration names (the API's paths
    /// follow it).
    pub fn base_url(&self) -> String {
        format!("{}/{}", self.root_url(), self.sim.customer())
    }

    /// `http://ADDR`, where the admin endpoints are (`/admin/...`).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections.
    pub async fn stop(self) {
        self.serving.stop().await;
    }
}

/// Binds `listen` (port 0 picks a free port) and serves the simulator in a background task.
pub async fn start(sim: Arc<Sim>, listen: SocketAddr) -> Result<RunningSim> {
    let (listener, addr) = kit::bind(listen).await?;
    let app = super::routes::router(sim.clone());
    let serving = Serving::spawn(addr, move |shutdown| kit::serve(app, listener, shutdown));
    Ok(RunningSim { addr, sim, serving })
}
