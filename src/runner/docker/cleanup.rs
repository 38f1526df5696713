//! Removing containers: stopping and removing a session's container, and sweeping those a
//! crashed earlier run left behind.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
};

use super::{
    DockerError, DockerRunner, HOST_LABEL, MANAGED_LABEL, REQUEST_TIMEOUT_SECONDS, status_of,
};

impl DockerRunner {
    /// Ids of every container (running or not) that carries Hati's label (and this host's,
    /// when it has an owner).
    pub async fn managed_containers(&self) -> Result<Vec<String>, DockerError> {
        let mut labels = vec![format!("{MANAGED_LABEL}=true")];
        if !self.owner.is_empty() {
            labels.push(format!("{HOST_LABEL}={}", self.owner));
        }
        let filters = HashMap::from([("label".to_owned(), labels)]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(DockerError::engine("list"))?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }

    /// Removes every container with Hati's label and this host's (left by a crashed earlier
    /// run); returns how many were removed. Call it at start-up, before any session exists.
    pub async fn cleanup_stale(&self) -> Result<usize, DockerError> {
        let ids = self.managed_containers().await?;
        let mut removed = 0;
        for id in &ids {
            match self.docker.remove_container(id, Some(force_remove())).await {
                Ok(()) => removed += 1,
                Err(error) if status_of(&error) == Some(404) => {}
                Err(source) => {
                    return Err(DockerError::Engine {
                        operation: "remove",
                        source,
                    });
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed stale hati containers");
        }
        Ok(removed)
    }
}

pub(super) async fn stop_and_remove(
    docker: &Docker,
    id: &str,
    grace_seconds: u64,
) -> Result<(), DockerError> {
    let options = StopContainerOptions {
        t: i32::try_from(grace_seconds).ok(),
        ..Default::default()
    };
    let patient = docker
        .clone()
        .with_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECONDS + grace_seconds));
    match patient.stop_container(id, Some(options)).await {
        Ok(()) => {}
        Err(error) if status_of(&error) == Some(404) => return Ok(()),
        Err(source) => {
            return Err(DockerError::Engine {
                operation: "stop",
                source,
            });
        }
    }
    match docker.remove_container(id, Some(force_remove())).await {
        Ok(()) => Ok(()),
        Err(error) if status_of(&error) == Some(404) => Ok(()),
        Err(source) => Err(DockerError::Engine {
            operation: "remove",
            source,
        }),
    }
}

pub(super) fn force_remove() -> RemoveContainerOptions {
    RemoveContainerOptions {
        force: true,
        ..Default::default()
    }
}
