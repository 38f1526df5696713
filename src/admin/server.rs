//! The two listeners of the admin API: the private unix socket, and `[admin] listen` over TCP
//! with the bearer token.

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::Request;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::sync::watch;

use super::auth::{has_bearer_token, unauthorized};
use super::routes::api;
use crate::host::Host;
use crate::state::StateDir;

/// The bound admin socket, removed when dropped.
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl AdminSocket {
    /// Binds `admin.sock` in the state dir, refusing if another host is running there.
    pub fn bind(state: &StateDir) -> anyhow::Result<Self> {
        let path = state.admin_socket();
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                anyhow::bail!(
                    "another hati is already running with the state directory {} (its admin socket answers)",
                    state.path().display()
                );
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove stale {}", path.display()))?;
        }
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("cannot create the admin socket {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", path.display()))?;
        Ok(Self { listener, path })
    }

    /// Serves requests until shutdown.
    pub async fn serve(self, host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let host = host.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                            let host = host.clone();
                            async move { Ok::<_, Infallible>(api(request, &host).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(false)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How long a TCP API client may take to send a request's headers.
const TCP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API on `[admin] listen` until shutdown: every request, from any address, must
/// carry `Authorization: Bearer <token>` (the state directory's `api-token`).
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    host: Arc<Host>,
    shutdown: watch::Receiver<bool>,
) {
    let budget = host.connections.clone();
    crate::net::accept_within_budget(
        listener,
        budget,
        shutdown,
        move |stream, peer, _, permit| {
            let host = host.clone();
            async move {
                let permit = Arc::new(permit);
                let service_permit = permit.clone();
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    service_permit.mark_busy();
                    let host = host.clone();
                    async move {
                        if !has_bearer_token(request.headers(), &host.api_token) {
                            tracing::debug!(%peer, "admin API request without the token refused");
                            return Ok::<_, Infallible>(unauthorized());
                        }
                        Ok(api(request, &host).await)
                    }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(TCP_HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                if permit.run(connection).await.is_none() {
                    tracing::debug!(%peer, "idle admin connection closed for a newer one");
                }
            }
        },
    )
    .await;
}
