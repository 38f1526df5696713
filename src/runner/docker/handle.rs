//! A running session container: its handle (exit status, stop, stop on drop) and the task
//! that waits for the container's exit.

use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::WaitContainerOptions;
use futures_util::StreamExt;
use tokio::sync::watch;
use tracing::{Instrument, Span};

use super::DockerError;
use super::cleanup::stop_and_remove;
use crate::runner::AppExit;

/// A running session container. Dropping it stops and removes the container in the
/// background (when a tokio runtime is there to do it; else the next start-up's
/// [`DockerRunner::cleanup_stale`](super::DockerRunner::cleanup_stale) does).
#[derive(Debug)]
pub struct ContainerHandle {
    pub(super) docker: Docker,
    pub(super) id: String,
    pub(super) name: String,
    pub(super) exit: watch::Receiver<Option<AppExit>>,
    pub(super) grace_seconds: u64,
    pub(super) span: Span,
    pub(super) stopped: bool,
}

impl ContainerHandle {
    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container name (`hati-session-<id>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A receiver that holds `Some(exit)` once the container has exited.
    pub fn exit_watch(&self) -> watch::Receiver<Option<AppExit>> {
        self.exit.clone()
    }

    /// Resolves when the container has exited.
    pub async fn wait_exit(&self) -> AppExit {
        crate::runner::wait_exit(self.exit_watch()).await
    }

    /// Stops the container (SIGTERM, SIGKILL after the grace period), removes it, and returns
    /// how it ended.
    pub async fn stop(mut self) -> Result<AppExit, DockerError> {
        self.stopped = true;
        let result = stop_and_remove(&self.docker, &self.id, self.grace_seconds)
            .instrument(self.span.clone())
            .await;
        let exit = match result {
            Ok(()) => {
                let exit = tokio::time::timeout(Duration::from_secs(5), self.wait_exit()).await;
                exit.unwrap_or_else(|_| AppExit::Lost("no exit status from the engine".into()))
            }
            Err(error) => return Err(error),
        };
        self.span
            .in_scope(|| tracing::info!(%exit, "container stopped and removed"));
        Ok(exit)
    }
}

impl Drop for ContainerHandle {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let _entered = self.span.enter();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("container handle dropped outside a runtime; left for stale cleanup");
            return;
        };
        tracing::info!("container handle dropped; stopping and removing it");
        let (docker, id, grace) = (self.docker.clone(), self.id.clone(), self.grace_seconds);
        runtime.spawn(
            async move {
                if let Err(error) = stop_and_remove(&docker, &id, grace).await {
                    tracing::warn!(%error, "cannot stop dropped container");
                }
            }
            .instrument(self.span.clone()),
        );
    }
}

pub(super) async fn watch_exit(
    docker: Docker,
    id: String,
    exit_tx: watch::Sender<Option<AppExit>>,
) {
    let options = WaitContainerOptions {
        condition: "not-running".into(),
    };
    let mut stream = docker.wait_container(&id, Some(options));
    let exit = match stream.next().await {
        Some(Ok(response)) => AppExit::Code(response.status_code),
        Some(Err(BollardError::DockerContainerWaitError { code, .. })) => AppExit::Code(code),
        Some(Err(error)) => AppExit::Lost(error.to_string()),
        None => AppExit::Lost("the engine closed the wait request".into()),
    };
    tracing::info!(%exit, "container exited");
    exit_tx.send_replace(Some(exit));
}
