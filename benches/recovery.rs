//! What a client's recovery request costs in bits: the frames x264 (the host's default H.264
//! settings, CBR) produces after a key-frame request, answered with a full IDR (what Hati does)
//! and with x264's periodic intra refresh (`intra-refresh=true`, a column of intra blocks that
//! sweeps the picture over `key-int-max` frames), in one run.
//!
//!     cargo bench --bench recovery
//!
//! The source is a moving zone plate: detailed enough that CBR fills each frame's share (the
//! Test pattern's flat picture would not).
//! Why Hati answers with an IDR anyway: moonlight-common-c, after loss, drops every frame until
//! a real IDR arrives unless the host offers reference-frame invalidation, and no GStreamer
//! encoder on Debian 12 implements that (docs/performance.md). Browsers likewise wait for a key
//! frame after a PLI. The figures say what intra refresh would save where a client accepts it.

use std::time::Duration;

use gst::prelude::*;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 60;
const KBPS: u32 = 10_000;
/// The request arrives once rate control has settled.
const REQUEST_AT: usize = 180;
/// Frames measured from the request on.
const AFTER: usize = 60;

fn frame_sizes(intra_refresh: bool) -> Vec<usize> {
    let description = format!(
        "videotestsrc pattern=zone-plate kx2=20 ky2=20 kt=1 is-live=false num-buffers={frames} \
         ! video/x-raw,width={WIDTH},height={HEIGHT},framerate={FPS}/1,format=I420 \
         ! x264enc name=encoder pass=cbr tune=zerolatency speed-preset=ultrafast bitrate={KBPS} \
           key-int-max={gop} bframes=0 b-adapt=false ref=1 sliced-threads=true byte-stream=true \
           aud=false intra-refresh={intra_refresh} \
         ! appsink name=out sync=false",
        frames = REQUEST_AT + AFTER,
        // With intra refresh, key-int-max is the sweep's length: one second, as Sunshine's.
        gop = if intra_refresh { FPS } else { 1024 },
    );
    let pipeline = gst::parse::launch(&description)
        .expect("the benchmark pipeline parses")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let sink = pipeline
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .expect("the appsink");
    pipeline
        .set_state(gst::State::Playing)
        .expect("the pipeline plays");
    let mut sizes = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        sizes.push(sample.buffer().map_or(0, |b| b.size()));
        if sizes.len() == REQUEST_AT {
            let request = gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            sink.static_pad("sink")
                .expect("appsink has a sink pad")
                .push_event(request);
        }
    }
    pipeline.set_state(gst::State::Null).ok();
    std::thread::sleep(Duration::from_millis(50));
    sizes
}

fn main() {
    gst::init().expect("GStreamer initialises");
    let budget = (KBPS as usize * 1000 / 8) / FPS as usize;
    println!(
        "x264 {WIDTH}x{HEIGHT}@{FPS}, CBR {KBPS} kbit/s (a frame's share: {budget} bytes); \
         a key-frame request at frame {REQUEST_AT}"
    );
    println!(
        "{:<15} {:>13} {:>16} {:>17} {:>16}",
        "answer", "before (mean)", "largest after", "largest / budget", "frames > 2×budget"
    );
    for round in 0..2 {
        for (name, intra_refresh) in [("IDR", false), ("intra refresh", true)] {
            let sizes = frame_sizes(intra_refresh);
            if sizes.len() < REQUEST_AT + 2 {
                println!("{name}: only {} frames came out", sizes.len());
                continue;
            }
            let before = &sizes[REQUEST_AT - 60..REQUEST_AT];
            let after = &sizes[REQUEST_AT..];
            let mean_before = before.iter().sum::<usize>() / before.len();
            let largest = after.iter().copied().max().unwrap_or(0);
            let big = after.iter().filter(|&&s| s > 2 * budget).count();
            println!(
                "{:<15} {:>13} {:>16} {:>17.1} {:>16}",
                format!("{name} ({})", round + 1),
                mean_before,
                largest,
                largest as f64 / budget as f64,
                big
            );
        }
    }
}
