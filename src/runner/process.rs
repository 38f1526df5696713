//! The process runner: an app's `cmd`, split like a shell would, run on the host in its own
//! process group with the session's environment plus the app's `env`.
//!
//! The app inherits Hati's environment except the variables that would point it at the host's
//! desktop or sound server (`DISPLAY`, `WAYLAND_DISPLAY`, `PULSE_SERVER`, …), then gets the
//! session's variables, then its own `env` entries.
//!
//! Its stdout and stderr lines go to `tracing` (target `hati::app`) inside an `app` span that
//! carries the session id. Stopping sends SIGTERM to the whole group (children and
//! grandchildren included), waits up to the grace period for every member to be gone, then
//! sends SIGKILL. The exit is reported when the group leader (the command itself) exits.
//!
//! Three small threads per app do the blocking work (wait, stdout, stderr), so the runner needs
//! no SIGCHLD handling of its own and works from any tokio runtime flavour.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use thiserror::Error;
use tokio::sync::watch;
use tracing::Span;

use super::config::{MAX_STOP_GRACE_SECONDS, ProcessConfig};
use super::{AppExit, LaunchContext, merged_env, parse_env};

/// Longest line of app output logged as one event; longer lines are split.
const MAX_LINE_BYTES: u64 = 4096;

/// How often `stop` looks whether the group is gone.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long `stop` waits after SIGKILL before giving up on stragglers.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Variables of Hati's own environment that point at the host's desktop or sound server; the
/// app does not inherit them (a session that has such a variable sets its own), so it can never
/// open on the host's screen or play on the host's speakers.
const HOST_SESSION_VARS: &[&str] = &[
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "WAYLAND_SOCKET",
    "PULSE_SERVER",
    "PULSE_SINK",
    "PULSE_SOURCE",
];

/// Why a process app could not be started or stopped.
#[derive(Debug, Error)]
pub enum ProcessError {
    /// `cmd` has unbalanced quotes or a trailing backslash.
    #[error("cannot split command line {cmd:?}: {source}")]
    Split {
        /// The configured command line.
        cmd: String,
        /// The splitter's complaint.
        source: shell_words::ParseError,
    },
    /// `cmd` is empty or only whitespace.
    #[error("the command line is empty")]
    EmptyCommand,
    /// An `env` entry is not `KEY=value`.
    #[error("env entry {0:?} is not KEY=value")]
    BadEnv(String),
    /// The program could not be started (not found, not executable, …).
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        /// The program (first word of `cmd`).
        program: String,
        /// The OS error.
        source: io::Error,
    },
    /// A helper thread could not be created.
    #[error("cannot create a thread for the app: {0}")]
    Thread(io::Error),
    /// The process group could not be signalled.
    #[error("cannot signal process group {pgid}: {source}")]
    Signal {
        /// The group.
        pgid: i32,
        /// The OS error.
        source: io::Error,
    },
    /// Members of the group survived SIGKILL (stuck in the kernel, e.g. on a dead NFS mount).
    #[error("process group {pgid} still has members after SIGKILL")]
    Unkillable {
        /// The group.
        pgid: i32,
    },
}

/// A running process app. Dropping it stops the group in the background.
#[derive(Debug)]
pub struct ProcessHandle {
    pgid: Pid,
    exit: watch::Receiver<Option<AppExit>>,
    grace: Duration,
    span: Span,
    stopped: bool,
}

/// Starts the app `config` describes for the session `ctx` describes.
pub fn start(config: &ProcessConfig, ctx: &LaunchContext) -> Result<ProcessHandle, ProcessError> {
    let words = shell_words::split(&config.cmd).map_err(|source| ProcessError::Split {
        cmd: config.cmd.clone(),
        source,
    })?;
    let (program, args) = words.split_first().ok_or(ProcessError::EmptyCommand)?;
    let app_env = parse_env(&config.env).map_err(|bad| ProcessError::BadEnv(bad.0))?;
    let grace = Duration::from_secs(config.stop_grace_seconds.min(MAX_STOP_GRACE_SECONDS));

    let mut command = Command::new(program);
    for key in HOST_SESSION_VARS {
        command.env_remove(key);
    }
    command
        .args(args)
        .envs(merged_env(&ctx.env, &app_env))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;

    let pid = child.id();
    let span = tracing::info_span!("app", session = ctx.session_id, runner = "process", pid);
    // A child id is a positive pid_t by construction.
    let Some(pgid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        kill_and_reap(&mut child);
        return Err(ProcessError::Spawn {
            program: program.clone(),
            source: io::Error::other(format!("unexpected pid {pid}")),
        });
    };

    if let Err(error) = spawn_output_threads(&mut child, &span) {
        kill_and_reap(&mut child);
        return Err(ProcessError::Thread(error));
    }
    let (exit_tx, exit_rx) = watch::channel(None);
    let wait_span = span.clone();
    thread::Builder::new()
        .name(format!("app-wait-{pid}"))
        .spawn(move || {
            let _entered = wait_span.enter();
            let exit = match child.wait() {
                Ok(status) => exit_of(status),
                Err(error) => AppExit::Lost(format!("wait failed: {error}")),
            };
            tracing::info!(%exit, "app exited");
            exit_tx.send_replace(Some(exit));
        })
        .map_err(ProcessError::Thread)?;

    span.in_scope(|| tracing::info!(program = %program, "app started"));
    Ok(ProcessHandle {
        pgid,
        exit: exit_rx,
        grace,
        span,
        stopped: false,
    })
}

impl ProcessHandle {
    /// The process group id (equal to the command's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid.as_raw_nonzero().get()
    }

    /// A receiver that holds `Some(exit)` once the command has exited.
    pub fn exit_watch(&self) -> watch::Receiver<Option<AppExit>> {
        self.exit.clone()
    }

    /// Resolves when the command has exited.
    pub async fn wait_exit(&self) -> AppExit {
        super::wait_exit(self.exit_watch()).await
    }

    /// SIGTERM to the group, SIGKILL after the grace period if any member is left; returns how
    /// the command ended.
    pub async fn stop(mut self) -> Result<AppExit, ProcessError> {
        self.stopped = true;
        let pgid = self.pgid;
        let started = Instant::now();
        if self.finished() {
            return Ok(self.exit_now());
        }
        signal_group(pgid, Signal::TERM)?;
        if !self.wait_finished(self.grace).await {
            self.span.in_scope(|| {
                tracing::warn!(
                    grace_ms = self.grace.as_millis() as u64,
                    "app ignored SIGTERM; sending SIGKILL"
                )
            });
            signal_group(pgid, Signal::KILL)?;
            if !self.wait_finished(KILL_WAIT).await {
                return Err(ProcessError::Unkillable {
                    pgid: pgid.as_raw_nonzero().get(),
                });
            }
        }
        let exit = self.exit_now();
        self.span.in_scope(|| {
            tracing::info!(%exit, elapsed_ms = started.elapsed().as_millis() as u64, "app stopped")
        });
        Ok(exit)
    }

    /// Whether the command has exited and no member of its group is left.
    fn finished(&self) -> bool {
        self.exit.borrow().is_some() && !group_alive(self.pgid)
    }

    async fn wait_finished(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.finished() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn exit_now(&self) -> AppExit {
        self.exit
            .borrow()
            .clone()
            .unwrap_or_else(|| AppExit::Lost("no exit status".into()))
    }
}

impl Drop for ProcessHandle {
    fn drop(&mut self) {
        if self.stopped || self.finished() {
            return;
        }
        let (pgid, grace) = (self.pgid, self.grace);
        let _entered = self.span.enter();
        tracing::info!("app handle dropped; stopping its process group");
        if signal_group(pgid, Signal::TERM).is_err() {
            return;
        }
        let span = self.span.clone();
        let reaper = thread::Builder::new()
            .name("app-reaper".into())
            .spawn(move || {
                let deadline = Instant::now() + grace;
                while Instant::now() < deadline && group_alive(pgid) {
                    thread::sleep(POLL_INTERVAL);
                }
                if group_alive(pgid) {
                    let _entered = span.enter();
                    tracing::warn!("app ignored SIGTERM; sending SIGKILL");
                    let _ = signal_group(pgid, Signal::KILL);
                }
            });
        if let Err(error) = reaper {
            tracing::warn!(%error, "cannot start the reaper thread; sending SIGKILL now");
            let _ = signal_group(pgid, Signal::KILL);
        }
    }
}

fn exit_of(status: ExitStatus) -> AppExit {
    match (status.code(), status.signal()) {
        (Some(code), _) => AppExit::Code(code.into()),
        (None, Some(signal)) => AppExit::Signal(signal),
        (None, None) => AppExit::Lost(format!("unknown wait status {status}")),
    }
}

fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends `signal` to the group; a group that no longer exists is not an error.
fn signal_group(pgid: Pid, signal: Signal) -> Result<(), ProcessError> {
    match kill_process_group(pgid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(errno) => Err(ProcessError::Signal {
            pgid: pgid.as_raw_nonzero().get(),
            source: errno.into(),
        }),
    }
}

/// Whether any live (not zombie) process is in group `pgid`. Zombies are skipped because an
/// orphan's zombie lingers until its new parent (init, or a container's PID 1) reaps it.
fn group_alive(pgid: Pid) -> bool {
    let wanted = pgid.as_raw_nonzero().get();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No /proc: ask the kernel, counting zombies as alive.
        return rustix::process::test_kill_process_group(pgid).is_ok();
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        matches!(parse_stat(&stat), Some((state, pgrp)) if pgrp == wanted && state != 'Z' && state != 'X')
    })
}

/// `(state, pgrp)` from `/proc/<pid>/stat`: `pid (comm) state ppid pgrp …`, where `comm` may
/// itself contain spaces and parentheses, so parsing starts after the last `)`.
fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

fn spawn_output_threads(child: &mut Child, span: &Span) -> io::Result<()> {
    if let Some(stdout) = child.stdout.take() {
        spawn_line_logger(stdout, "stdout", span.clone())?;
    }
    if let Some(stderr) = child.stderr.take() {
        spawn_line_logger(stderr, "stderr", span.clone())?;
    }
    Ok(())
}

fn spawn_line_logger(
    pipe: impl Read + Send + 'static,
    stream: &'static str,
    span: Span,
) -> io::Result<()> {
    thread::Builder::new()
        .name(format!("app-{stream}"))
        .spawn(move || {
            let _entered = span.enter();
            for_each_line(pipe, |line| {
                tracing::info!(target: "hati::app", stream, "{line}");
            });
        })
        .map(drop)
}

/// Calls `f` with every line of `pipe` (lossy UTF-8, without the line end), splitting lines
/// longer than [`MAX_LINE_BYTES`]; stops at end of file or on a read error.
pub(crate) fn for_each_line(pipe: impl Read, mut f: impl FnMut(&str)) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader
            .by_ref()
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                f(&String::from_utf8_lossy(&buf));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm() {
        let stat = "1234 (my (weird) app) S 1 1234 1234 0 -1 4194560";
        assert_eq!(parse_stat(stat), Some(('S', 1234)));
        assert_eq!(parse_stat("5 (z) Z 1 77 77"), Some(('Z', 77)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn lines_are_split_and_lossy() {
        let mut input = b"one\r\ntwo\n\xffthree".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES as usize + 10));
        let mut lines = Vec::new();
        for_each_line(&input[..], |line| lines.push(line.to_owned()));
        assert_eq!(lines[0], "one");
        assert_eq!(lines[1], "two");
        assert!(lines[2].starts_with("\u{fffd}three"));
        assert_eq!(
            lines[2].len() + lines[3].len(),
            "\u{fffd}three".len() + MAX_LINE_BYTES as usize + 10
        );
    }

    #[test]
    fn command_line_errors() {
        let ctx = LaunchContext {
            session_id: 1,
            env: vec![],
            runtime_dir: "/tmp".into(),
        };
        let config = |cmd: &str, env: &[&str]| ProcessConfig {
            cmd: cmd.into(),
            env: env.iter().map(|e| e.to_string()).collect(),
            stop_grace_seconds: 1,
        };
        assert!(matches!(
            start(&config("  ", &[]), &ctx),
            Err(ProcessError::EmptyCommand)
        ));
        assert!(matches!(
            start(&config("sh -c 'x", &[]), &ctx),
            Err(ProcessError::Split { .. })
        ));
        assert!(
            matches!(start(&config("true", &["NOPE"]), &ctx), Err(ProcessError::BadEnv(e)) if e == "NOPE")
        );
        let error = start(&config("/nonexistent/hati-app", &[]), &ctx).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/hati-app"),
            "{error}"
        );
    }
}
