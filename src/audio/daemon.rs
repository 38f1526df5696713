//! A private PulseAudio daemon, started when no server answers.
//!
//! It runs `pulseaudio` in the foreground with no default script (`-n`), no idle exit, no
//! realtime scheduling, and one module: the native protocol on `<runtime_dir>/native` with
//! anonymous authentication (the socket sits in a directory only Hati's user can enter). Its
//! state and configuration go under the runtime directory, so the user's own PulseAudio setup
//! is never touched. Dropping the handle stops the daemon.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use super::AudioError;

/// How long the daemon may take to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long it may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The `pulseaudio` program; overridden by `HATI_PULSEAUDIO` (tests, unusual installs).
const PROGRAM: &str = "pulseaudio";

/// A running private `pulseaudio`.
#[derive(Debug)]
pub struct PrivateDaemon {
    child: Child,
    socket: PathBuf,
}

impl PrivateDaemon {
    /// Starts a daemon whose socket is `<runtime_dir>/native`; waits until the socket exists.
    pub fn spawn(runtime_dir: &Path) -> Result<Self, AudioError> {
        let spawn_error = |reason: String| AudioError::Spawn {
            runtime_dir: runtime_dir.to_owned(),
            reason,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(runtime_dir)
            .map_err(|e| spawn_error(format!("cannot create the runtime directory: {e}")))?;
        // An existing directory keeps its mode; the socket must not be reachable by others.
        std::fs::set_permissions(runtime_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| spawn_error(format!("cannot restrict the runtime directory: {e}")))?;
        let socket = runtime_dir.join("native");
        match std::fs::remove_file(&socket) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(spawn_error(format!("cannot remove the old socket: {e}"))),
        }

        let program = std::env::var_os("HATI_PULSEAUDIO").unwrap_or_else(|| PROGRAM.into());
        let mut child = Command::new(&program)
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--system=no",
                "--realtime=no",
                "--high-priority=no",
                "--log-target=stderr",
                "--load",
            ])
            .arg(format!(
                "module-native-protocol-unix socket={} auth-anonymous=1",
                socket.display()
            ))
            .env("PULSE_RUNTIME_PATH", runtime_dir)
            .env("PULSE_STATE_PATH", runtime_dir.join("state"))
            .env("XDG_CONFIG_HOME", runtime_dir.join("config"))
            .env_remove("PULSE_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error(format!("cannot run {}: {e}", program.to_string_lossy())))?;
        if let Some(stderr) = child.stderr.take() {
            let span = tracing::debug_span!("pulseaudio", pid = child.id());
            let _ = thread::Builder::new()
                .name("pulseaudio-log".into())
                .spawn(move || {
                    let _entered = span.enter();
                    crate::runner::process::for_each_line(stderr, |line| {
                        tracing::debug!(target: "hati::pulseaudio", "{line}");
                    });
                });
        }

        let mut daemon = Self { child, socket };
        let deadline = Instant::now() + START_TIMEOUT;
        while !daemon.socket.exists() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                return Err(spawn_error(format!(
                    "pulseaudio exited at start-up ({status}); run with RUST_LOG=hati::pulseaudio=debug to see why"
                )));
            }
            if Instant::now() >= deadline {
                return Err(spawn_error(
                    "pulseaudio did not create its socket in time".into(),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        tracing::info!(socket = %daemon.socket.display(), pid = daemon.child.id(), "started a private pulseaudio");
        Ok(daemon)
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The `PULSE_SERVER` value that reaches it.
    pub fn server(&self) -> String {
        format!("unix:{}", self.socket.display())
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) {
            let _ = kill_process(pid, Signal::TERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
