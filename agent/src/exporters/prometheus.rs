//! The Prometheus scrape endpoint (`[export.prometheus]`): `/metrics` serves the last snapshot
//! in the Prometheus text format, or OpenMetrics when the Accept header asks for it, with the
//! names and labels the OpenTelemetry Collector's Prometheus exporter gives the same points.
//! A scrape never collects: it costs at most one encoding per tick and format.
//!
//! # Layout
//! - `config`: `[export.prometheus]`.
//! - `auth`: basic authentication against SHA-256 password hashes.
//! - `names`: OTel names to Prometheus names.
//! - `encode`: a snapshot to text through prometheus-client, cached per snapshot.
//! - `server`: the bounded HTTP/1 server.

mod auth;
pub mod config;
mod encode;
mod names;
mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::PasswordHash;
pub use encode::{Format, Identity};

use crate::model::Snapshot;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ListenError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// The running endpoint; dropping it stops serving.
pub struct Endpoint {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Endpoint {
    /// Binds `listen` and serves `snapshots` until dropped. Must run inside the tokio runtime.
    pub fn start(
        listen: SocketAddr,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        identity: Identity,
        users: BTreeMap<String, PasswordHash>,
    ) -> Result<Endpoint, ListenError> {
        let err = |source| ListenError {
            addr: listen,
            source,
        };
        let std_listener = std::net::TcpListener::bind(listen).map_err(err)?;
        std_listener.set_nonblocking(true).map_err(err)?;
        let addr = std_listener.local_addr().map_err(err)?;
        let listener = tokio::net::TcpListener::from_std(std_listener).map_err(err)?;
        let scrape = Arc::new(server::Scrape {
            snapshots,
            identity: Arc::new(identity),
            cache: encode::Cache::default(),
            users,
        });
        let task = tokio::spawn(server::run(listener, scrape));
        Ok(Endpoint { addr, task })
    }

    /// Where it listens (the port the kernel chose for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}
