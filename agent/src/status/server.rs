//! The daemon's side of `hostwarden status`: a Unix socket (mode 0660) that writes a
//! `StatusReport` of the latest `StatusSource` as one JSON document to each client, then
//! closes. A stale socket left by a
//! crashed daemon is replaced; anything else at the path (a file, a directory) is refused and
//! left alone, since a mistyped path must not cost the operator a file. The socket is removed
//! when the server is dropped.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::debug;

use super::StatusSource;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("another hostwarden daemon is already serving {0}")]
    InUse(PathBuf),
    #[error(
        "{path} is {what}, not a socket; refusing to replace it (remove it or choose another agent.status_socket)"
    )]
    NotASocket { path: PathBuf, what: &'static str },
    #[error("cannot remove the stale socket {path}: {source}")]
    RemoveStale { path: PathBuf, source: io::Error },
    #[error("cannot listen on {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
}

/// A client that does not read its report within this time is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct StatusServer {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl StatusServer {
    /// Binds `path` and serves reports of `sources` until dropped. Must run inside the tokio
    /// runtime.
    pub fn start(
        path: &Path,
        sources: watch::Receiver<Arc<StatusSource>>,
    ) -> Result<StatusServer, ServeError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // 0755 exactly: clients of the 0660 socket must be able to reach it.
            crate::sys::fs::create_dir_all_with(dir, 0o755).map_err(|e| ServeError::CreateDir {
                path: dir.to_owned(),
                source: e.source,
            })?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            let kind = meta.file_type();
            if !kind.is_socket() {
                let what = if kind.is_dir() {
                    "a directory"
                } else if kind.is_symlink() {
                    "a symbolic link"
                } else if kind.is_file() {
                    "a regular file"
                } else {
                    "not a socket"
                };
                return Err(ServeError::NotASocket {
                    path: path.to_owned(),
                    what,
                });
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::InUse(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(|source| ServeError::RemoveStale {
                path: path.to_owned(),
                source,
            })?;
        }
        let bind_err = |source| ServeError::Bind {
            path: path.to_owned(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
        let task = tokio::spawn(serve(listener, sources));
        Ok(StatusServer {
            path: path.to_owned(),
            task,
        })
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.task.abort();
        if let Err(e) = std::fs::remove_file(&self.path) {
            debug!(socket = %self.path.display(), error = %e, "Status socket not removed.");
        }
    }
}

async fn serve(listener: UnixListener, sources: watch::Receiver<Arc<StatusSource>>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let source = Arc::clone(&sources.borrow());
                tokio::spawn(answer(stream, source));
            }
            Err(e) => {
                debug!(error = %e, "Status accept failed.");
                // Out of file descriptors and the like: give the system a moment.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: UnixStream, source: Arc<StatusSource>) {
    let mut body = match serde_json::to_vec(&source.report()) {
        Ok(b) => b,
        Err(e) => {
            debug!(error = %e, "Status report not encodable.");
            return;
        }
    };
    body.push(b'\n');
    let write = async {
        stream.write_all(&body).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "Status client went away."),
        Err(_) => debug!("Status client did not read in time."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::client::{StatusError, fetch};

    #[tokio::test]
    async fn serves_the_latest_report_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/status.sock");
        let (tx, rx) = watch::channel(Arc::new(StatusSource::default()));
        let server = StatusServer::start(&path, rx).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        tx.send_replace(Arc::new(StatusSource {
            snapshot: Arc::new(crate::model::Snapshot {
                timestamp_ms: 99,
                ..crate::model::Snapshot::default()
            }),
            ..StatusSource::default()
        }));
        let p = path.clone();
        let got = tokio::task::spawn_blocking(move || fetch(&p))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.timestamp_ms, 99);
        // A second daemon on the same socket is refused.
        let (_tx2, rx2) = watch::channel(Arc::new(StatusSource::default()));
        assert!(matches!(
            StatusServer::start(&path, rx2),
            Err(ServeError::InUse(_))
        ));
        drop(server);
        assert!(!path.exists());
        let p = path.clone();
        let err = tokio::task::spawn_blocking(move || fetch(&p))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, StatusError::NotRunning(_)), "{err}");
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.sock");
        // A socket file nobody listens on, as a crashed daemon leaves it.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let p = path.clone();
        let err = tokio::task::spawn_blocking(move || fetch(&p))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, StatusError::NotRunning(_)), "{err}");
        let (_tx, rx) = watch::channel(Arc::new(StatusSource::default()));
        let _server = StatusServer::start(&path, rx).unwrap();
        let p = path.clone();
        assert!(
            tokio::task::spawn_blocking(move || fetch(&p))
                .await
                .unwrap()
                .is_ok()
        );
    }
}
