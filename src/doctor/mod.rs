//! `hati doctor`: what this machine can do for Hati and what is missing, one [`Check`] per
//! concern, each with a fix a user can act on. See `docs/doctor.md`.
//!
//! A check is `fail` only when something the configuration needs is missing (no H.264 encoder,
//! a port taken, no Docker engine while a Docker app is configured, no PulseAudio); optional
//! things (a GPU, `/dev/uinput`) are `warn`. The checks do blocking I/O: this is a command-line
//! tool, and only the Docker ping runs on a small current-thread tokio runtime.

mod clock;
mod devices;
mod docker;
mod media;
mod network;

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Config;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works, or a hint that needs nothing done.
    Ok,
    /// Something optional is missing; Hati runs without it.
    Warn,
    /// Something the configuration needs is missing; Hati (or an app) will not work.
    Fail,
}

impl Status {
    /// The word the human report starts the line with.
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable identifier (`encoder.h264`, `ports`, `docker`, …).
    pub id: String,
    /// How it came out.
    pub status: Status,
    /// One sentence saying what was found.
    pub summary: String,
    /// What to do about it (for an `ok` check: a hint, such as firewall commands).
    pub fix: Option<String>,
}

impl Check {
    /// A check that passed.
    pub fn ok(id: impl Into<String>, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Ok, summary, None)
    }

    /// A check with an optional thing missing.
    pub fn warn(id: impl Into<String>, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(id, Status::Warn, summary, Some(fix.into()))
    }

    /// A check with a needed thing missing.
    pub fn fail(id: impl Into<String>, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(id, Status::Fail, summary, Some(fix.into()))
    }

    /// Any check.
    pub fn new(
        id: impl Into<String>,
        status: Status,
        summary: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            id: id.into(),
            status,
            summary: summary.into(),
            fix,
        }
    }

    /// The same check with `fix` as a hint (kept on an `ok` check).
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Every finding, in the order the checks ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// True when no check failed.
    pub ok: bool,
    /// The findings.
    pub checks: Vec<Check>,
}

impl Report {
    /// A report of these findings.
    pub fn new(checks: Vec<Check>) -> Self {
        Self {
            ok: !checks.iter().any(|c| c.status == Status::Fail),
            checks,
        }
    }

    /// The process exit status: 0 without a failed check, 1 with one.
    pub fn exit_code(&self) -> u8 {
        if self.ok { 0 } else { 1 }
    }

    /// The report as one JSON object, `{"ok": bool, "checks": [...]}`.
    pub fn to_json(&self) -> String {
        // Serialising plain strings, enums and bools cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// The report for a terminal: one line per check, its fix indented below.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let _ = writeln!(
                out,
                "{} {:<18} {}",
                check.status.label(),
                check.id,
                check.summary
            );
            if let Some(fix) = &check.fix {
                let word = if check.status == Status::Ok {
                    "hint"
                } else {
                    "fix"
                };
                for (i, line) in fix.lines().enumerate() {
                    let lead = if i == 0 { word } else { "" };
                    let _ = writeln!(out, "       {lead:<5}{}", line);
                }
            }
        }
        let count = |s| self.checks.iter().filter(|c| c.status == s).count();
        let _ = writeln!(
            out,
            "\n{} ok, {} warning(s), {} failure(s): {}",
            count(Status::Ok),
            count(Status::Warn),
            count(Status::Fail),
            if self.ok {
                "Hati can run here"
            } else {
                "fix the failures above first"
            }
        );
        out
    }
}

/// What the checks need to know besides the machine.
#[derive(Debug, Clone)]
pub struct Options {
    /// The merged configuration.
    pub config: Config,
    /// Hati's state directory (to tell "Hati is already running" from another program).
    pub state_dir: PathBuf,
}

/// Runs every check, in the order the report shows them.
pub fn run(options: &Options) -> Report {
    let config = &options.config;
    let docker_apps = docker::configured_apps(config);
    let render_nodes = devices::render_nodes();

    let mut checks = Vec::new();
    checks.extend(media::encoder_checks(config, &render_nodes));
    checks.extend(devices::render_node_checks(&render_nodes));
    checks.push(devices::input_device_check(devices::InputDevice::Uinput));
    checks.push(devices::input_device_check(devices::InputDevice::Uhid));
    checks.push(docker::engine_check(&docker_apps));
    checks.push(docker::runtime_dir_check(&docker_apps));
    checks.push(media::pulseaudio_check());
    checks.push(network::ports_check(config, &options.state_dir));
    checks.push(network::interfaces_check(config));
    checks.push(network::mdns_check(config));
    checks.push(clock::year_check());
    checks.push(clock::sync_check());
    checks.push(network::firewall_check(config));
    checks.extend(network::gateway_dnat_check(config));
    Report::new(checks)
}

/// The full path of `program` on `PATH`, if it is there and executable.
fn which(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Runs `program` with `args`, killing it after `timeout`; `None` when it cannot start or did
/// not finish in time.
fn run_with_timeout(program: &Path, args: &[&str], timeout: Duration) -> Option<Output> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().ok(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Opens `path` read-write the way Hati would, and closes it again.
fn open_read_write(path: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map(drop)
}

/// The name of the group that owns `path`, from `/etc/group`, if it can be found.
fn group_of(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(path).ok()?.gid();
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    group_name(&groups, gid)
}

/// The name of group `gid` in an `/etc/group` text.
fn group_name(etc_group: &str, gid: u32) -> Option<String> {
    etc_group.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == gid && !name.is_empty()).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_fail_makes_the_report_fail_and_warn_does_not() {
        let warned = Report::new(vec![
            Check::ok("a", "fine"),
            Check::warn("b", "no GPU", "add one"),
        ]);
        assert!(warned.ok);
        assert_eq!(warned.exit_code(), 0);

        let failed = Report::new(vec![
            Check::ok("a", "fine"),
            Check::fail("c", "port taken", "free it"),
        ]);
        assert!(!failed.ok);
        assert_eq!(failed.exit_code(), 1);

        assert!(Report::new(vec![]).ok);
    }

    #[test]
    fn json_has_the_documented_shape() {
        let report = Report::new(vec![
            Check::warn("gpu", "no GPU", "add one"),
            Check::ok("ports", "free"),
        ]);
        let value: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(value["ok"], true);
        assert_eq!(value["checks"][0]["id"], "gpu");
        assert_eq!(value["checks"][0]["status"], "warn");
        assert_eq!(value["checks"][0]["fix"], "add one");
        assert_eq!(value["checks"][1]["status"], "ok");
        assert!(value["checks"][1]["fix"].is_null());
    }

    #[test]
    fn text_puts_each_fix_line_under_its_check() {
        let report = Report::new(vec![
            Check::fail("ports", "port 1/tcp taken", "stop it\nor move it"),
            Check::ok("firewall", "nft found").with_fix("nft add rule …"),
        ]);
        let text = report.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("FAIL ports"), "{text}");
        assert_eq!(lines[1].trim(), "fix  stop it");
        assert_eq!(lines[2].trim(), "or move it");
        assert!(lines[3].starts_with("ok   firewall"), "{text}");
        assert_eq!(lines[4].trim(), "hint nft add rule …");
        assert!(text.contains("1 failure(s)"), "{text}");
    }

    #[test]
    fn group_name_reads_etc_group() {
        let groups = "root:x:0:\nvideo:x:44:\nrender:x:105:alice\nbroken\n";
        assert_eq!(group_name(groups, 105).as_deref(), Some("render"));
        assert_eq!(group_name(groups, 44).as_deref(), Some("video"));
        assert_eq!(group_name(groups, 7), None);
    }

    #[test]
    fn a_command_that_hangs_is_killed() {
        let Some(sleep) = which("sleep") else { return };
        let started = Instant::now();
        assert!(run_with_timeout(&sleep, &["5"], Duration::from_millis(100)).is_none());
        assert!(started.elapsed() < Duration::from_secs(3));
        let Some(echo) = which("echo") else { return };
        let out = run_with_timeout(&echo, &["hi"], Duration::from_secs(5)).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi");
    }
}
