//! Shared helpers: temporary runtime directories, starting compositors, spawning clients,
//! pulling frames and reading client logs.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Once,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use gst::prelude::*;
use hati_compositor::{Compositor, CompositorConfig, CompositorHandle};

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "hati-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        gst::init().unwrap();
        hati_compositor::waylanddisplaysrc::register_static().unwrap();
    });
}

/// Starts a compositor without XWayland.
pub fn start(dir: &TempDir, width: u32, height: u32, fps: u32) -> CompositorHandle {
    init();
    Compositor::start(CompositorConfig {
        width,
        height,
        fps,
        runtime_dir: dir.path().to_owned(),
        xwayland: false,
        on_thread_start: None,
    })
    .unwrap()
}

/// A client process killed on drop.
pub struct ClientProcess(pub Child);

impl Drop for ClientProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `program` with the compositor's client environment.
pub fn spawn(
    handle: &CompositorHandle,
    program: &str,
    args: &[&str],
    extra_env: &[(&str, &Path)],
) -> ClientProcess {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in handle.client_env() {
        cmd.env(key, value);
    }
    for (key, value) in extra_env {
        cmd.env(key, value);
    }
    ClientProcess(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {program}: {e}")),
    )
}

/// The test client binary: `HATI_TEST_CLIENT_BIN` if set (e.g. a static build), else the one
/// Cargo built for these tests.
pub fn test_client_bin() -> String {
    std::env::var("HATI_TEST_CLIENT_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_hati-test-client").to_owned())
}

/// Spawns `hati-test-client` logging into `log`.
pub fn spawn_test_client(handle: &CompositorHandle, log: &Path) -> ClientProcess {
    spawn(
        handle,
        &test_client_bin(),
        &[],
        &[("HATI_TEST_CLIENT_LOG", log)],
    )
}

/// Whether a missing Wayland tool must fail the test rather than skip it: under CI
/// (`CI=true`, where `make test` installs every tool) or when `HATI_REQUIRE_WAYLAND=1`.
pub fn wayland_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("HATI_REQUIRE_WAYLAND").is_ok_and(|v| v == "1")
}

/// Skips `test` for `reason` (a tool it needs is missing), or panics instead where the tool is
/// required ([`wayland_required`]). The reason goes straight to the process's stderr: libtest
/// captures `println!` and `eprintln!` alike and hides them for a passing test, but not a
/// write to `io::stderr()` itself.
#[track_caller]
pub fn skip(test: &str, reason: &str) {
    if wayland_required() {
        panic!("{test} cannot be skipped here (CI=true or HATI_REQUIRE_WAYLAND=1): {reason}");
    }
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {reason}");
}

/// Full path of a binary on `PATH`, if installed.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
#[track_caller]
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lines of a client log so far.
pub fn log_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until the log has a line equal to `line`, after position `from`; returns its index.
#[track_caller]
pub fn wait_for_line(log: &Path, from: usize, line: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = log_lines(log);
        if let Some(i) = lines.iter().skip(from).position(|l| l == line) {
            return i + from;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for log line {line:?} after line {from}; log:\n{}",
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `waylanddisplaysrc ! appsink` pipeline on `handle`.
pub struct Frames {
    pub pipeline: gst::Pipeline,
    pub sink: gst_app::AppSink,
}

impl Frames {
    pub fn new(handle: &CompositorHandle) -> Self {
        Self::with_properties(handle, "")
    }

    /// Like [`Frames::new`], with more `waylanddisplaysrc` properties (`"output-fps=30"`).
    pub fn with_properties(handle: &CompositorHandle, properties: &str) -> Self {
        init();
        let pipeline = gst::parse::launch(&format!(
            "waylanddisplaysrc name=src wayland-display={} {properties} ! appsink name=sink sync=false max-buffers=2 drop=true",
            handle.wayland_display()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        Self { pipeline, sink }
    }

    /// The framerate of the negotiated caps, once a frame was pulled.
    #[track_caller]
    pub fn framerate(&self) -> gst::Fraction {
        let caps = self
            .sink
            .static_pad("sink")
            .unwrap()
            .current_caps()
            .unwrap();
        caps.structure(0).unwrap().get("framerate").unwrap()
    }

    /// Pulls the next sample.
    #[track_caller]
    pub fn pull(&self) -> gst::Sample {
        self.sink
            .try_pull_sample(gst::ClockTime::from_seconds(5))
            .expect("a frame within 5 s")
    }

    /// Pulls frames until `cond` holds for one, returning it.
    #[track_caller]
    pub fn wait_frame(&self, what: &str, mut cond: impl FnMut(&Frame) -> bool) -> Frame {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let frame = Frame::from_sample(&self.pull());
            if cond(&frame) {
                return frame;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for a frame with {what}"
            );
        }
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A BGRx frame copied out of a sample.
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    pub data: Vec<u8>,
    pub pts: Option<gst::ClockTime>,
}

impl Frame {
    pub fn from_sample(sample: &gst::Sample) -> Self {
        let caps = sample.caps().unwrap();
        let info = gst_video::VideoInfo::from_caps(caps).unwrap();
        assert_eq!(info.format(), gst_video::VideoFormat::Bgrx);
        let buffer = sample.buffer().unwrap();
        let map = buffer.map_readable().unwrap();
        Self {
            width: info.width() as usize,
            height: info.height() as usize,
            stride: info.stride()[0] as usize,
            data: map.as_slice().to_vec(),
            pts: buffer.pts(),
        }
    }

    /// `0xRRGGBB` at (x, y).
    pub fn rgb(&self, x: usize, y: usize) -> u32 {
        let i = y * self.stride + x * 4;
        let px = &self.data[i..i + 4];
        (u32::from(px[2]) << 16) | (u32::from(px[1]) << 8) | u32::from(px[0])
    }
}
