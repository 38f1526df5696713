//! A private PulseAudio daemon, started when no server answers.
//!
//! It runs `pulseaudio` in the foreground with no default script (`-n`), no idle exit, no
//! realtime scheduling, and one module: the native protocol on `<runtime_dir>/native` with
//! anonymous authentication (the socket sits in a directory only Hati's user can enter). Its
//! state and configuration go under the runtime directory, so the user's own PulseAudio setup
//! is never touched.
//!
//! The daemon ends with Hati however Hati ends: [`PrivateDaemon::stop`] (the host's shutdown,
//! and `Drop`) stops it; if Hati is killed, the kernel sends it SIGTERM (`PR_SET_PDEATHSIG`).
//! That signal follows the *thread* that forked the daemon, so a keeper thread of its own forks
//! it and lives exactly as long as it does, reaping it at the end.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
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
    pid: Pid,
    socket: PathBuf,
    exit: Arc<Exit>,
}

/// The daemon's exit status once its keeper thread has reaped it.
///
/// Invariant: the keeper reaps the process only while holding `status`, and sets it in the same
/// critical section, so whoever holds `status` and finds it `None` may signal `pid`: it is still
/// this daemon (alive, or a zombie whose pid cannot be reused yet).
#[derive(Debug, Default)]
struct Exit {
    status: Mutex<Option<ExitStatus>>,
    reaped: Condvar,
}

impl Exit {
    fn status(&self) -> Option<ExitStatus> {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
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
        let mut command = Command::new(&program);
        command
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
            .stderr(Stdio::piped());
        let parent = rustix::process::getpid();
        // SAFETY: between fork and exec only two raw system calls (prctl, getppid) and no
        // allocation.
        unsafe {
            command.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(Signal::TERM))?;
                // Hati died before the signal was armed: nobody would send it. (ESRCH, not a
                // message: no allocation between fork and exec.)
                if rustix::process::getppid() != Some(parent) {
                    return Err(rustix::io::Errno::SRCH.into());
                }
                Ok(())
            });
        }
        let exit = Arc::new(Exit::default());
        let pid = keep(command, exit.clone())
            .map_err(|e| spawn_error(format!("cannot run {}: {e}", program.to_string_lossy())))?;

        let daemon = Self { pid, socket, exit };
        let deadline = Instant::now() + START_TIMEOUT;
        while !daemon.socket.exists() {
            if let Some(status) = daemon.exit.status() {
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
        tracing::info!(socket = %daemon.socket.display(), pid = daemon.pid(), "started a private pulseaudio");
        Ok(daemon)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.pid.as_raw_nonzero().get().unsigned_abs()
    }

    /// Stops the daemon: SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; returns once it has been
    /// reaped. Blocks for up to that long: call it off the async runtime. Idempotent.
    pub fn stop(&self) {
        let mut status = self
            .exit
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if status.is_some() {
            return;
        }
        let _ = kill_process(self.pid, Signal::TERM);
        let (next, timeout) = self
            .exit
            .reaped
            .wait_timeout_while(status, STOP_TIMEOUT, |status| status.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        status = next;
        if timeout.timed_out() && status.is_none() {
            tracing::warn!(pid = self.pid(), "pulseaudio ignored SIGTERM; killing it");
            let _ = kill_process(self.pid, Signal::KILL);
            drop(
                self.exit
                    .reaped
                    .wait_while(status, |status| status.is_none())
                    .unwrap_or_else(PoisonError::into_inner),
            );
        }
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
        self.stop();
    }
}

/// Forks `command` on a keeper thread that then waits for it and records its exit in `exit`
/// (see [`Exit`]); its stderr goes to the debug log. Returns the child's pid.
fn keep(mut command: Command, exit: Arc<Exit>) -> std::io::Result<Pid> {
    let (started_tx, started) = std::sync::mpsc::sync_channel(1);
    thread::Builder::new()
        .name("pulseaudio".into())
        .spawn(move || {
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(error) => {
                    let _ = started_tx.send(Err(error));
                    return;
                }
            };
            let pid = Pid::from_child(&child);
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
            let _ = started_tx.send(Ok(pid));
            wait_for_exit_unreaped(pid);
            let mut status = exit.status.lock().unwrap_or_else(PoisonError::into_inner);
            *status = child.wait().ok().or(Some(ExitStatus::default()));
            exit.reaped.notify_all();
        })?;
    started
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the keeper thread ended")))
}

/// Blocks until process `pid` (a child of this process) has exited, leaving it unreaped, so
/// its pid stays reserved until [`Exit`]'s lock is held.
fn wait_for_exit_unreaped(pid: Pid) {
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    while let Err(rustix::io::Errno::INTR) = waitid(
        WaitId::Pid(pid),
        WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
    ) {}
}
