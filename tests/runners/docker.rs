//! The Docker runner against the local engine, with a tiny image built here: `testapp.c`
//! compiled with `gcc -static` and imported as a one-file image (no registry needed).
//!
//! The tests share the engine (and `cleanup_stale` removes every Hati container), so they run
//! one at a time under [`ENGINE`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::query_parameters::{CreateImageOptions, InspectContainerOptions};
use futures_util::StreamExt;
use hati::runner::docker::{MANAGED_LABEL, SESSION_LABEL};
use hati::runner::{
    AppExit, DockerConfig, DockerError, DockerRunner, LaunchContext, Launcher, RunnerConfig,
    RunnerError, RunningApp,
};
use tokio::sync::Mutex;

use crate::{logs, skip_or_fail};

static ENGINE: Mutex<()> = Mutex::const_new(());

const REQUIRE: &str = "HATI_REQUIRE_DOCKER";

/// Connects, builds the test image if needed, and returns both; `Err` says why the engine or
/// the build is unavailable.
async fn setup() -> Result<(DockerRunner, String), String> {
    logs::init();
    let runner = DockerRunner::connect().await.map_err(|e| e.to_string())?;
    let image = build_image(&runner).await?;
    Ok((runner, image))
}

async fn build_image(runner: &DockerRunner) -> Result<String, String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runners/testapp.c");
    let text = std::fs::read(&source).map_err(|e| format!("{}: {e}", source.display()))?;
    let tag = format!("{:016x}", fnv1a(&text));
    let image = format!("hati-test-runner:{tag}");
    if runner.client().inspect_image(&image).await.is_ok() {
        return Ok(image);
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let binary = dir.path().join("testapp");
    let gcc = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .map_err(|e| format!("cannot run gcc (needed to build the test image): {e}"))?;
    if !gcc.status.success() {
        return Err(format!(
            "gcc -static failed: {}",
            String::from_utf8_lossy(&gcc.stderr)
        ));
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .args(["-cf", "-", "testapp"])
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !tar.status.success() {
        return Err("tar failed".into());
    }
    let options = CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some("hati-test-runner".into()),
        tag: Some(tag),
        changes: vec![r#"CMD ["/testapp"]"#.into()],
        ..Default::default()
    };
    let mut progress = runner.client().create_image(
        Some(options),
        Some(bollard::body_full(tar.stdout.into())),
        None,
    );
    while let Some(item) = progress.next().await {
        item.map_err(|e| format!("docker import failed: {e}"))?;
    }
    Ok(image)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

struct Dirs {
    _root: tempfile::TempDir,
    runtime: PathBuf,
    out: PathBuf,
    ro: PathBuf,
    pulse_socket: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let runtime = root.path().join("runtime");
    let out = root.path().join("out");
    let ro = root.path().join("ro");
    let pulse = root.path().join("pulse");
    for dir in [&runtime, &out, &ro, &pulse] {
        std::fs::create_dir(dir).unwrap();
    }
    std::fs::write(runtime.join("marker"), "x").unwrap();
    // A stand-in for the PulseAudio socket: the runner must bind-mount whatever is there.
    let pulse_socket = pulse.join("native");
    std::fs::write(&pulse_socket, "").unwrap();
    Dirs {
        _root: root,
        runtime,
        out,
        ro,
        pulse_socket,
    }
}

fn ctx(session_id: u32, dirs: &Dirs) -> LaunchContext {
    LaunchContext {
        session_id,
        env: vec![
            ("WAYLAND_DISPLAY".into(), "wayland-docker-test".into()),
            ("XDG_RUNTIME_DIR".into(), dirs.runtime.display().to_string()),
            (
                "PULSE_SERVER".into(),
                format!("unix:{}", dirs.pulse_socket.display()),
            ),
            ("PULSE_SINK".into(), format!("hati-{session_id}")),
        ],
        runtime_dir: dirs.runtime.clone(),
    }
}

fn config(image: &str, dirs: &Dirs) -> DockerConfig {
    DockerConfig {
        image: image.into(),
        cmd: None,
        env: vec!["APP_VAR=from-app".into()],
        mounts: vec![
            format!("{}:/out", dirs.out.display()),
            format!("{}:/ro:ro", dirs.ro.display()),
        ],
        devices: vec!["/dev/null:/dev/hati-null".into()],
        create_options: Some(
            r#"{"Env": ["FROM_CREATE_OPTIONS=1"], "Labels": {"hati.test": "yes"}}"#.into(),
        ),
        stop_grace_seconds: 5,
    }
}

async fn wait_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn exists(runner: &DockerRunner, id: &str) -> bool {
    runner
        .client()
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .is_ok()
}

#[tokio::test]
async fn container_sees_session_env_mounts_and_labels_and_stop_removes_it() {
    let _engine = ENGINE.lock().await;
    let (runner, image) = match setup().await {
        Ok(ok) => ok,
        Err(reason) => skip_or_fail!(REQUIRE, "docker runner tests: {reason}"),
    };
    let dirs = dirs();
    let handle = runner
        .start(&config(&image, &dirs), &ctx(4_000_001, &dirs))
        .await
        .unwrap();
    let id = handle.id().to_owned();
    assert_eq!(handle.name(), "hati-session-4000001");

    let report = wait_file(&dirs.out.join("report.txt")).await;
    for expected in [
        "env:WAYLAND_DISPLAY=wayland-docker-test",
        "env:PULSE_SINK=hati-4000001",
        "env:APP_VAR=from-app",
        "env:FROM_CREATE_OPTIONS=1",
        "runtime-dir-visible=1",
        "pulse-socket-visible=1",
        "ro-write=EROFS",
    ] {
        assert!(
            report.lines().any(|l| l == expected),
            "missing {expected:?} in:\n{report}"
        );
    }

    let inspect = runner
        .client()
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let labels: HashMap<String, String> = inspect.config.unwrap().labels.unwrap();
    assert_eq!(labels[MANAGED_LABEL], "true");
    assert_eq!(labels[SESSION_LABEL], "4000001");
    assert_eq!(labels["hati.test"], "yes");
    let devices = inspect.host_config.unwrap().devices.unwrap();
    assert_eq!(
        devices[0].path_in_container.as_deref(),
        Some("/dev/hati-null")
    );
    assert!(runner.managed_containers().await.unwrap().contains(&id));

    let line = logs::wait_for("testapp ready", Duration::from_secs(5))
        .await
        .expect("container stdout forwarded");
    assert!(
        line.contains("session=4000001") && line.contains("stream=\"stdout\""),
        "{line}"
    );
    let line = logs::wait_for("testapp stderr line", Duration::from_secs(5))
        .await
        .expect("stderr forwarded");
    assert!(line.contains("stream=\"stderr\""), "{line}");

    assert_eq!(
        handle.stop().await.unwrap(),
        AppExit::Code(0),
        "testapp exits 0 on SIGTERM"
    );
    assert!(!exists(&runner, &id).await, "stop removes the container");
}

#[tokio::test]
async fn exit_is_reported_and_sigkill_follows_an_ignored_sigterm() {
    let _engine = ENGINE.lock().await;
    let (runner, image) = match setup().await {
        Ok(ok) => ok,
        Err(reason) => skip_or_fail!(REQUIRE, "docker runner tests: {reason}"),
    };
    let dirs = dirs();
    let exiting = DockerConfig {
        cmd: Some("/testapp exit 7".into()),
        create_options: None,
        ..config(&image, &dirs)
    };
    let launcher = Launcher::new();
    let app = launcher
        .launch(&RunnerConfig::Docker(exiting), &ctx(4_000_002, &dirs))
        .await
        .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), app.wait_exit())
        .await
        .unwrap();
    assert_eq!(exit, AppExit::Code(7));
    let RunningApp::Docker(handle) = &app else {
        panic!("not a container")
    };
    let id = handle.id().to_owned();
    app.stop().await.unwrap();
    assert!(!exists(&runner, &id).await);

    let stubborn = DockerConfig {
        cmd: Some("/testapp ignore-term".into()),
        stop_grace_seconds: 1,
        ..config(&image, &dirs)
    };
    let handle = runner
        .start(&stubborn, &ctx(4_000_003, &dirs))
        .await
        .unwrap();
    logs::wait_for("session=4000003", Duration::from_secs(5)).await;
    wait_file(&dirs.out.join("report.txt")).await;
    let started = Instant::now();
    assert_eq!(
        handle.stop().await.unwrap(),
        AppExit::Code(137),
        "SIGKILL after the grace period"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn missing_image_error_names_the_image() {
    let _engine = ENGINE.lock().await;
    let (runner, image) = match setup().await {
        Ok(ok) => ok,
        Err(reason) => skip_or_fail!(REQUIRE, "docker runner tests: {reason}"),
    };
    let dirs = dirs();
    let missing = DockerConfig {
        image: "hati-test-missing:nope".into(),
        ..config(&image, &dirs)
    };
    let error = runner
        .start(&missing, &ctx(4_000_004, &dirs))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DockerError::ImageMissing { image } if image == "hati-test-missing:nope"),
        "{error}"
    );
    assert!(
        error.to_string().contains("hati-test-missing:nope"),
        "{error}"
    );
    let error = Launcher::new()
        .launch(&RunnerConfig::Docker(missing), &ctx(4_000_004, &dirs))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        RunnerError::Docker(DockerError::ImageMissing { .. })
    ));
}

#[tokio::test]
async fn stale_containers_are_cleaned_up() {
    let _engine = ENGINE.lock().await;
    let (runner, image) = match setup().await {
        Ok(ok) => ok,
        Err(reason) => skip_or_fail!(REQUIRE, "docker runner tests: {reason}"),
    };
    let dirs = dirs();
    // A crashed run: handles leaked, containers left running.
    for session in [4_000_005, 4_000_006] {
        let handle = runner
            .start(&config(&image, &dirs), &ctx(session, &dirs))
            .await
            .unwrap();
        std::mem::forget(handle);
    }
    assert!(runner.managed_containers().await.unwrap().len() >= 2);
    let removed = Launcher::new().cleanup_stale().await.unwrap();
    assert!(removed >= 2, "removed {removed}");
    assert!(runner.managed_containers().await.unwrap().is_empty());
    assert_eq!(runner.cleanup_stale().await.unwrap(), 0);
}

#[tokio::test]
async fn twenty_start_stop_cycles_leave_no_container() {
    let _engine = ENGINE.lock().await;
    let (runner, image) = match setup().await {
        Ok(ok) => ok,
        Err(reason) => skip_or_fail!(REQUIRE, "docker runner tests: {reason}"),
    };
    let dirs = dirs();
    let config = DockerConfig {
        mounts: vec![],
        ..config(&image, &dirs)
    };
    let started = Instant::now();
    for cycle in 0..20 {
        let handle = runner
            .start(&config, &ctx(4_000_100 + cycle, &dirs))
            .await
            .unwrap();
        assert_eq!(
            handle.stop().await.unwrap(),
            AppExit::Code(0),
            "cycle {cycle}"
        );
    }
    // A dropped handle is stopped and removed in the background.
    let handle = runner.start(&config, &ctx(4_000_200, &dirs)).await.unwrap();
    drop(handle);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !runner.managed_containers().await.unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "containers left: {:?}",
            runner.managed_containers().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("20 docker cycles + drop took {:?}", started.elapsed());
}

#[tokio::test]
async fn unreachable_engine_is_a_connect_error() {
    // Not the shared engine: a socket path that does not exist.
    let client = bollard::Docker::connect_with_unix(
        "/nonexistent/docker.sock",
        5,
        bollard::API_DEFAULT_VERSION,
    );
    match client {
        Err(_) => {}
        Ok(client) => {
            let error = DockerRunner::from_client(client).await.unwrap_err();
            assert!(matches!(error, DockerError::Connect { .. }), "{error}");
        }
    }
}
