//! Frame benchmark: rendering one 1920x1080 frame with the pixman path into a pooled
//! `gst::Buffer` (with `hati-test-client` fullscreen on screen and the cursor drawn), against a
//! plain copy of the same frame's bytes into another buffer of the same pool, in the same run.
//!
//! `cargo bench -p hati-compositor --bench frame`

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use gst::prelude::*;
use hati_compositor::{Compositor, CompositorConfig, FrameOutcome, InputEvent};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const ITERATIONS: u32 = 300;

fn main() {
    gst::init().expect("GStreamer initialises");
    let dir = std::env::temp_dir().join(format!("hati-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench runtime dir");
    let handle = Compositor::start(CompositorConfig {
        width: WIDTH,
        height: HEIGHT,
        fps: 60,
        runtime_dir: dir.clone(),
        xwayland: false,
        on_thread_start: None,
    })
    .expect("compositor starts");
    let mut client = Command::new(env!("CARGO_BIN_EXE_hati-test-client"))
        .envs(handle.client_env())
        .env("HATI_TEST_CLIENT_LOG", "/dev/null")
        .stdout(Stdio::null())
        .spawn()
        .expect("test client starts");

    let caps = gst_video::VideoInfo::builder(gst_video::VideoFormat::Bgrx, WIDTH, HEIGHT)
        .fps(gst::Fraction::new(60, 1))
        .build()
        .expect("video info")
        .to_caps()
        .expect("caps");
    let size = (WIDTH * HEIGHT * 4) as usize;
    let pool = gst::BufferPool::new();
    let mut config = pool.config();
    config.set_params(Some(&caps), size as u32, 4, 0);
    pool.set_config(config).expect("pool config");
    pool.set_active(true).expect("pool active");

    // Wait for the client's frame.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let buffer = pool.acquire_buffer(None).expect("buffer");
        if let FrameOutcome::Rendered(buffer) = handle.render(buffer, true).expect("render") {
            let map = buffer.map_readable().expect("map");
            if map.as_slice()[..3] == [0, 0, 255] {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the client never drew");
        std::thread::sleep(Duration::from_millis(20));
    }
    handle
        .send_input(InputEvent::PointerMotionAbsolute {
            x: 100.0,
            y: 100.0,
            width: f64::from(WIDTH),
            height: f64::from(HEIGHT),
        })
        .expect("input");

    // Render (forced full redraw) into a pooled buffer.
    let mut render = Vec::new();
    let mut last = None;
    for _ in 0..ITERATIONS {
        let buffer = pool.acquire_buffer(None).expect("buffer");
        let start = Instant::now();
        let outcome = handle.render(buffer, true).expect("render");
        render.push(start.elapsed());
        if let FrameOutcome::Rendered(buffer) = outcome {
            last = Some(buffer);
        }
    }
    // Unchanged frames: the damage check only.
    let mut unchanged = Vec::new();
    for _ in 0..ITERATIONS {
        let buffer = pool.acquire_buffer(None).expect("buffer");
        let start = Instant::now();
        let _ = handle.render(buffer, false).expect("render");
        unchanged.push(start.elapsed());
    }
    // Plain copy of the same bytes into a pooled buffer.
    let source = last.expect("a rendered frame");
    let source = source.map_readable().expect("map");
    let mut copy = Vec::new();
    for _ in 0..ITERATIONS {
        let mut buffer = pool.acquire_buffer(None).expect("buffer");
        let start = Instant::now();
        {
            let buffer = buffer.get_mut().expect("writable");
            let mut map = buffer.map_writable().expect("map");
            map.as_mut_slice().copy_from_slice(source.as_slice());
        }
        copy.push(start.elapsed());
        std::hint::black_box(&buffer);
    }

    println!("1920x1080 BGRx, {ITERATIONS} iterations each, test client fullscreen, cursor on");
    report("render into gst::Buffer (full redraw)", &mut render);
    report("unchanged frame (damage check only)", &mut unchanged);
    report("plain copy of the frame's bytes", &mut copy);

    let _ = client.kill();
    let _ = client.wait();
    handle.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let pct = |p: usize| samples[(samples.len() - 1) * p / 100];
    println!(
        "{what:<42} mean {:>7.3} ms  median {:>7.3} ms  p95 {:>7.3} ms",
        mean.as_secs_f64() * 1e3,
        pct(50).as_secs_f64() * 1e3,
        pct(95).as_secs_f64() * 1e3,
    );
}
