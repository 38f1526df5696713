//! The process runner with real `sh -c` commands.

use std::path::Path;
use std::time::{Duration, Instant};

use hati::runner::{AppExit, LaunchContext, Launcher, ProcessConfig, RunnerConfig, RunningApp};

use crate::logs;

fn ctx(session_id: u32) -> LaunchContext {
    LaunchContext {
        session_id,
        env: vec![
            ("WAYLAND_DISPLAY".into(), "wayland-hati-test".into()),
            ("PULSE_SINK".into(), "hati-session".into()),
        ],
        runtime_dir: std::env::temp_dir(),
    }
}

fn config(cmd: &str, env: &[&str], grace: u64) -> RunnerConfig {
    RunnerConfig::Process(ProcessConfig {
        cmd: cmd.into(),
        env: env.iter().map(|e| e.to_string()).collect(),
        stop_grace_seconds: grace,
    })
}

async fn launch(session_id: u32, config: &RunnerConfig) -> RunningApp {
    logs::init();
    Launcher::new()
        .launch(config, &ctx(session_id))
        .await
        .unwrap()
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

async fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn env_is_visible_stdout_is_logged_and_exit_is_reported() {
    let app = launch(
        101,
        &config(
            r#"sh -c 'echo "proc-env-marker $WAYLAND_DISPLAY $PULSE_SINK $APP_VAR"; echo proc-stderr-marker >&2; exit 3'"#,
            &["APP_VAR=from-app", "PULSE_SINK=overridden"],
            5,
        ),
    )
    .await;
    assert_eq!(app.wait_exit().await, AppExit::Code(3));
    let line = logs::wait_for("proc-env-marker", Duration::from_secs(2))
        .await
        .expect("stdout line logged");
    assert!(
        line.contains("proc-env-marker wayland-hati-test overridden from-app"),
        "{line}"
    );
    assert!(
        line.contains("session=101"),
        "the session id is a span field: {line}"
    );
    assert!(line.contains("stream=\"stdout\""), "{line}");
    let line = logs::wait_for("proc-stderr-marker", Duration::from_secs(2))
        .await
        .expect("stderr line logged");
    assert!(line.contains("stream=\"stderr\""), "{line}");
    // Stopping an app that already exited returns its exit at once.
    let started = Instant::now();
    assert_eq!(app.stop().await.unwrap(), AppExit::Code(3));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn stop_kills_the_whole_group_including_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild");
    let cmd = format!(
        "sh -c 'sh -c \"sleep 300\" & echo $! > {}; sleep 300; wait'",
        pidfile.display()
    );
    let app = launch(102, &config(&cmd, &[], 5)).await;
    let grandchild = read_pid(&pidfile).await;
    assert!(alive(grandchild));
    let RunningApp::Process(handle) = &app else {
        panic!("not a process")
    };
    let pgid = handle.pgid();
    let started = Instant::now();
    let exit = app.stop().await.unwrap();
    assert_eq!(exit, AppExit::Signal(15), "sh dies of SIGTERM");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "SIGTERM was enough: {:?}",
        started.elapsed()
    );
    assert!(
        !alive(grandchild),
        "grandchild {grandchild} of group {pgid} survived"
    );
}

#[tokio::test]
async fn sigkill_follows_when_sigterm_is_ignored() {
    let cmd =
        r#"sh -c 'trap "" TERM; echo ignore-term-ready-marker; while :; do sleep 0.05; done'"#;
    let app = launch(103, &config(cmd, &[], 1)).await;
    logs::wait_for("ignore-term-ready-marker", Duration::from_secs(5))
        .await
        .expect("trap installed");
    let started = Instant::now();
    let exit = app.stop().await.unwrap();
    let took = started.elapsed();
    assert_eq!(exit, AppExit::Signal(9));
    assert!(
        took >= Duration::from_secs(1),
        "SIGKILL only after the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
    let warning = logs::lines_with("app ignored SIGTERM")
        .into_iter()
        .find(|l| l.contains("session=103"));
    assert!(warning.is_some(), "the escalation is logged");
}

#[tokio::test]
async fn exit_watch_and_dropping_the_handle() {
    let app = launch(104, &config("sleep 300", &[], 5)).await;
    let RunningApp::Process(handle) = &app else {
        panic!("not a process")
    };
    let pid = u32::try_from(handle.pgid()).unwrap();
    let exit = app.exit_watch();
    assert!(exit.borrow().is_none());
    assert!(alive(pid));
    drop(app);
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "dropping the handle must stop the app"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn missing_program_is_a_clear_error() {
    logs::init();
    let error = Launcher::new()
        .launch(
            &config("/nonexistent/hati-game --fullscreen", &[], 5),
            &ctx(105),
        )
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("/nonexistent/hati-game") && text.contains("No such file"),
        "{text}"
    );
}

/// Run in a child test process whose own environment has a host `DISPLAY` and `PULSE_SERVER`.
#[tokio::test]
async fn host_desktop_variables_are_not_inherited() {
    if std::env::var("HATI_TEST_CHILD").is_ok() {
        let app = launch(106, &config(r#"sh -c 'echo "inherit-marker display=[$DISPLAY] pulse=[$PULSE_SERVER] home=[$HOME_PROBE]"'"#, &[], 5)).await;
        app.wait_exit().await;
        let line = logs::wait_for("inherit-marker", Duration::from_secs(2))
            .await
            .unwrap();
        assert!(line.contains("display=[] pulse=[] home=[kept]"), "{line}");
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "process::host_desktop_variables_are_not_inherited",
            "--test-threads=1",
        ])
        .env("HATI_TEST_CHILD", "1")
        .env("DISPLAY", ":99")
        .env("PULSE_SERVER", "unix:/host/pulse/native")
        .env("HOME_PROBE", "kept")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
