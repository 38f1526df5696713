//! Docker apps: whether the engine answers (connecting the way the runner does, through
//! [`DockerRunner::connect`], which honours `DOCKER_HOST`), and whether the apps' containers can
//! see the session runtime directory (Wayland and PulseAudio sockets) at the path Hati uses.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{Check, Status};
use crate::config::Config;
use crate::runner::{DockerError, DockerRunner, RunnerConfig};

/// How long the engine gets to answer.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// The engine the runner uses when `DOCKER_HOST` is unset.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The variable naming the base directory of session runtime directories and the private
/// PulseAudio socket.
const RUNTIME_DIR_VAR: &str = crate::session::resources::SHARED_RUNTIME_DIR_ENV;

/// The titles of the apps with `[apps.runner] type = "docker"`.
pub fn configured_apps(config: &Config) -> Vec<String> {
    config
        .apps
        .iter()
        .filter(|app| matches!(app.runner, Some(RunnerConfig::Docker(_))))
        .map(|app| app.title.clone())
        .collect()
}

/// Pings the engine (at most [`PING_TIMEOUT`]).
pub fn engine_check(docker_apps: &[String]) -> Check {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_HOST.to_owned());
    let outcome = ping().map_err(|error| match socket_error(&host) {
        // bollard's message hides the OS error ("client error (Connect)"); a plain connect to
        // the socket names it ("Permission denied").
        Some(os) if error != PingError::Timeout => PingError::Failed(os),
        _ => error,
    });
    engine_verdict(&host, outcome, docker_apps)
}

/// Why a plain connect to the engine's Unix socket fails, if it is a Unix socket and it does.
fn socket_error(host: &str) -> Option<String> {
    let path = host.strip_prefix("unix://")?;
    let error = UnixStream::connect(path).err()?;
    Some(format!("{path}: {error}"))
}

/// Why the engine did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PingError {
    /// It did not answer within [`PING_TIMEOUT`].
    Timeout,
    /// Connecting or the request failed.
    Failed(String),
}

/// The engine's version, or why it did not answer.
fn ping() -> Result<Option<String>, PingError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PingError::Failed(format!("cannot start an async runtime: {e}")))?;
    runtime.block_on(async {
        let answer = tokio::time::timeout(PING_TIMEOUT, async {
            let runner = DockerRunner::connect().await.map_err(|e| match e {
                DockerError::Connect { reason } => reason,
                other => other.to_string(),
            })?;
            let version = runner.client().version().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(version.version)
        })
        .await;
        match answer {
            Ok(result) => result.map_err(PingError::Failed),
            Err(_) => Err(PingError::Timeout),
        }
    })
}

/// The verdict, given the engine address, the ping's outcome and the Docker apps.
fn engine_verdict(
    host: &str,
    outcome: Result<Option<String>, PingError>,
    docker_apps: &[String],
) -> Check {
    const ID: &str = "docker";
    let needed_by = if docker_apps.is_empty() {
        "no configured app uses Docker".to_owned()
    } else {
        format!("needed by {}", quoted_list(docker_apps))
    };
    let error = match outcome {
        Ok(version) => {
            let version = version.map(|v| format!(" {v}")).unwrap_or_default();
            return Check::ok(
                ID,
                format!("Docker engine{version} answers at {host} ({needed_by})"),
            );
        }
        Err(PingError::Timeout) => format!("no answer within {} s", PING_TIMEOUT.as_secs()),
        Err(PingError::Failed(reason)) => reason,
    };
    let status = if docker_apps.is_empty() {
        Status::Warn
    } else {
        Status::Fail
    };
    Check::new(
        ID,
        status,
        format!("cannot reach the Docker engine at {host}: {error} ({needed_by})"),
        Some(engine_fix(host, &error)),
    )
}

/// What to do about an unreachable engine, from the error's text.
fn engine_fix(host: &str, error: &str) -> String {
    let lower = error.to_lowercase();
    let set_host = if host != DEFAULT_HOST {
        format!("check DOCKER_HOST (now {host})")
    } else {
        "set DOCKER_HOST to a running engine's socket (Podman: \
         unix:///run/user/$UID/podman/podman.sock)"
            .to_owned()
    };
    if lower.contains("permission denied") {
        format!(
            "add the user to the docker group: sudo usermod -aG docker $USER, then log in again; \
             or {set_host}"
        )
    } else {
        format!(
            "start the engine (sudo systemctl start docker; install it with sudo apt install \
             docker.io), or {set_host}"
        )
    }
}

/// Whether session containers can share the runtime directory with Hati.
pub fn runtime_dir_check(docker_apps: &[String]) -> Check {
    let in_container =
        Path::new("/.dockerenv").exists() || Path::new("/run/.containerenv").exists();
    // Empty counts as unset, as the session code reads it.
    let runtime_dir = std::env::var(RUNTIME_DIR_VAR)
        .ok()
        .filter(|v| !v.is_empty());
    let mount = match (&runtime_dir, in_container) {
        (Some(dir), true) => std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .map(|info| host_path_of(&info, Path::new(dir))),
        _ => None,
    };
    let check = runtime_dir_verdict(
        in_container,
        runtime_dir.as_deref(),
        !docker_apps.is_empty(),
    );
    match (runtime_dir.as_deref(), mount) {
        (Some(dir), Some(mount)) => mount_verdict(check, dir, mount, !docker_apps.is_empty()),
        _ => check,
    }
}

/// Where a directory of this container comes from, as `/proc/self/mountinfo` tells.
#[derive(Debug, PartialEq)]
enum RuntimeMount {
    /// No mount covers it but the container's own root: it is not shared with the host.
    NotMounted,
    /// A mount covers it; the path inside the mounted file system (its `root` joined with the
    /// rest of the directory's path), which is the host path's tail for a bind mount.
    From(std::path::PathBuf),
}

/// The mount covering `dir` (the longest mount point above it other than `/`).
fn host_path_of(mountinfo: &str, dir: &Path) -> RuntimeMount {
    let best = mountinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let root = fields.nth(3)?;
            let mount_point = fields.next()?;
            Some((root, mount_point))
        })
        .filter(|(_, mount_point)| *mount_point != "/" && dir.starts_with(mount_point))
        .max_by_key(|(_, mount_point)| mount_point.len());
    match best {
        None => RuntimeMount::NotMounted,
        Some((root, mount_point)) => {
            let rest = dir.strip_prefix(mount_point).unwrap_or(Path::new(""));
            RuntimeMount::From(Path::new(root).join(rest))
        }
    }
}

/// Refines the container verdict with what the mount table shows: a runtime directory that
/// is not mounted from the host, or whose host path cannot be the same, fails (warns without
/// Docker apps). A bind mount's `root` is the host path relative to the host file system
/// holding it, so the same path inside ends with it.
fn mount_verdict(check: Check, dir: &str, mount: RuntimeMount, docker_apps: bool) -> Check {
    const ID: &str = "runtime-dir";
    let status = if docker_apps {
        Status::Fail
    } else {
        Status::Warn
    };
    let fix = format!("mount it at the same path inside and outside: -v {dir}:{dir}");
    match mount {
        RuntimeMount::NotMounted => Check::new(
            ID,
            status,
            format!(
                "{RUNTIME_DIR_VAR}={dir} is not mounted from the host: Docker apps' containers \
                 would get an empty directory instead of the session's sockets"
            ),
            Some(fix),
        ),
        RuntimeMount::From(source)
            if !Path::new(dir).ends_with(source.strip_prefix("/").unwrap_or(&source)) =>
        {
            Check::new(
                ID,
                status,
                format!(
                    "{RUNTIME_DIR_VAR}={dir} is mounted from {} on the host, not from the same path: \
                 Docker apps' containers would not find the session's sockets",
                    source.display()
                ),
                Some(fix),
            )
        }
        RuntimeMount::From(_) => check,
    }
}

/// The verdict, given whether Hati runs in a container, `HATI_RUNTIME_DIR`, and whether any
/// Docker app is configured.
fn runtime_dir_verdict(in_container: bool, runtime_dir: Option<&str>, docker_apps: bool) -> Check {
    const ID: &str = "runtime-dir";
    let fix = "mount one host directory at the same path inside and outside (e.g. -v \
               /run/hati:/run/hati) and set HATI_RUNTIME_DIR=/run/hati";
    match (in_container, runtime_dir) {
        (false, None) => Check::ok(
            ID,
            "Hati runs on the host: Docker apps see the session runtime directory at the same path",
        ),
        (false, Some(dir)) => Check::ok(
            ID,
            format!(
                "Hati runs on the host; session runtime directories are under {RUNTIME_DIR_VAR}={dir}"
            ),
        ),
        (true, None) => {
            let apps = if docker_apps {
                "Docker apps' containers cannot reach the session's Wayland and PulseAudio sockets"
            } else {
                "Docker apps (none configured) could not reach the session's sockets"
            };
            let status = if docker_apps {
                Status::Fail
            } else {
                Status::Warn
            };
            Check::new(
                ID,
                status,
                format!("Hati runs inside a container and {RUNTIME_DIR_VAR} is unset: {apps}"),
                Some(fix.to_owned()),
            )
        }
        (true, Some(dir)) => Check::ok(
            ID,
            format!(
                "Hati runs inside a container with {RUNTIME_DIR_VAR}={dir}: it must be the same \
                 path on the host"
            ),
        )
        .with_fix(format!(
            "mount it at the same path inside and outside: -v {dir}:{dir}"
        )),
    }
}

/// `"A", "B"`.
fn quoted_list(titles: &[String]) -> String {
    let quoted: Vec<String> = titles.iter().map(|t| format!("\"{t}\"")).collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_apps_are_found() {
        let config = Config::from_toml(
            "[[apps]]\ntitle = \"Steam\"\n[apps.runner]\ntype = \"docker\"\nimage = \"s:1\"\n\
             [[apps]]\ntitle = \"Shell\"\n[apps.runner]\ntype = \"process\"\ncmd = \"sh\"\n",
            "u",
            None,
        )
        .unwrap();
        assert_eq!(configured_apps(&config), ["Steam"]);
        assert!(configured_apps(&Config::default_config().unwrap()).is_empty());
    }

    #[test]
    fn unreachable_engine_fails_only_with_docker_apps() {
        let apps = vec!["Steam".to_owned()];
        let down = || Err(PingError::Failed("connection refused".into()));
        let with = engine_verdict(DEFAULT_HOST, down(), &apps);
        assert_eq!(with.status, Status::Fail);
        assert!(with.summary.contains("\"Steam\""), "{}", with.summary);
        assert!(with.fix.unwrap().contains("systemctl start docker"));

        let without = engine_verdict(DEFAULT_HOST, down(), &[]);
        assert_eq!(without.status, Status::Warn);

        let slow = engine_verdict(DEFAULT_HOST, Err(PingError::Timeout), &apps);
        assert!(slow.summary.contains("no answer within 3 s"));

        let up = engine_verdict(DEFAULT_HOST, Ok(Some("28.2.2".into())), &apps);
        assert_eq!(up.status, Status::Ok);
        assert!(up.summary.contains("28.2.2"));
    }

    #[test]
    fn a_missing_socket_is_named() {
        let error = socket_error("unix:///nonexistent/hati-doctor/docker.sock").unwrap();
        assert!(
            error.starts_with("/nonexistent/hati-doctor/docker.sock: "),
            "{error}"
        );
        assert_eq!(socket_error("tcp://127.0.0.1:2375"), None);
    }

    #[test]
    fn permission_denied_suggests_the_docker_group() {
        let fix = engine_fix(DEFAULT_HOST, "Permission denied (os error 13)");
        assert!(fix.contains("usermod -aG docker"), "{fix}");
        let fix = engine_fix("unix:///x/docker.sock", "No such file or directory");
        assert!(
            fix.contains("check DOCKER_HOST (now unix:///x/docker.sock)"),
            "{fix}"
        );
    }

    #[test]
    fn runtime_dir_mounts_are_read_from_mountinfo() {
        let info = "1 0 0:1 / / rw - overlay overlay rw\n\
                    2 1 8:1 /tmp/hati-run /tmp/hati-run rw - ext4 /dev/vda1 rw\n\
                    3 1 0:5 /hati /run/hati rw - tmpfs tmpfs rw\n\
                    4 1 8:1 /var/lib/docker/volumes/x/_data /run/elsewhere rw - ext4 /dev/vda1 rw\n";
        let same = host_path_of(info, Path::new("/tmp/hati-run"));
        assert_eq!(same, RuntimeMount::From("/tmp/hati-run".into()));
        let tmpfs = host_path_of(info, Path::new("/run/hati/sub"));
        assert_eq!(tmpfs, RuntimeMount::From("/hati/sub".into()));
        assert_eq!(
            host_path_of(info, Path::new("/srv/run")),
            RuntimeMount::NotMounted
        );

        let ok = || Check::ok("runtime-dir", "fine");
        assert_eq!(
            mount_verdict(ok(), "/tmp/hati-run", same, true).status,
            Status::Ok
        );
        assert_eq!(
            mount_verdict(ok(), "/run/hati/sub", tmpfs, true).status,
            Status::Ok
        );
        let volume = host_path_of(info, Path::new("/run/elsewhere"));
        let moved = mount_verdict(ok(), "/run/elsewhere", volume, true);
        assert_eq!(moved.status, Status::Fail);
        assert!(
            moved.summary.contains("/var/lib/docker/volumes/x/_data"),
            "{}",
            moved.summary
        );
        let absent = mount_verdict(ok(), "/srv/run", RuntimeMount::NotMounted, false);
        assert_eq!(absent.status, Status::Warn);
        assert!(absent.summary.contains("not mounted from the host"));
    }

    #[test]
    fn runtime_dir_in_a_container() {
        assert_eq!(runtime_dir_verdict(false, None, true).status, Status::Ok);
        let unset_with_apps = runtime_dir_verdict(true, None, true);
        assert_eq!(unset_with_apps.status, Status::Fail);
        assert!(
            unset_with_apps
                .fix
                .unwrap()
                .contains("HATI_RUNTIME_DIR=/run/hati")
        );
        assert_eq!(runtime_dir_verdict(true, None, false).status, Status::Warn);
        let set = runtime_dir_verdict(true, Some("/run/hati"), true);
        assert_eq!(set.status, Status::Ok);
        assert!(set.summary.contains("same path on the host"));
    }
}
