//! The per-frame video path and the per-packet audio path do not allocate in steady state
//! (a counting global allocator; its own test binary so no other test interferes).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use gsthati::audiopay::packetizer::{AudioConfig, AudioPacketizer};
use gsthati::videopay::packetizer::{Config, FrameMeta, FrameType, VideoPacketizer};

struct CountingAlloc;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the thread-local may already be gone while a thread shuts down.
    let _ = COUNT.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards to the system allocator unchanged; only counts calls per thread.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = COUNT.with(Cell::get);
    f();
    COUNT.with(Cell::get) - before
}

#[test]
fn video_frames_do_not_allocate() {
    let key_frame = vec![0x5a; 250_000];
    let p_frame = vec![0xa5; 40_000];
    let meta = FrameMeta {
        frame_type: FrameType::Idr,
        rtp_timestamp: 0,
        host_processing_latency: 0,
    };
    for key in [None, Some([1; 16])] {
        let mut pz = VideoPacketizer::new(Config::default(), key).unwrap();
        // Warm-up: the largest frame sizes the buffer; each block shape builds its encoder.
        pz.packetize(&key_frame, &meta).unwrap();
        pz.packetize(&p_frame, &meta).unwrap();
        let n = allocations_in(|| {
            for _ in 0..20 {
                assert!(pz.packetize(&key_frame, &meta).unwrap().len() > 200);
                assert!(pz.packetize(&p_frame, &meta).unwrap().len() > 30);
            }
        });
        assert_eq!(
            n,
            0,
            "allocations in 40 frames (encrypted: {})",
            key.is_some()
        );
    }
}

#[test]
fn audio_packets_do_not_allocate() {
    for key in [None, Some([2; 16])] {
        let mut pz = AudioPacketizer::new(AudioConfig {
            key,
            ..AudioConfig::default()
        });
        let opus = [0x33u8; 240];
        // Steady state: two whole FEC blocks (4 packets each), so parity was computed before.
        for _ in 0..8 {
            pz.packetize(&opus).unwrap();
        }
        let n = allocations_in(|| {
            for _ in 0..400 {
                pz.packetize(&opus).unwrap();
            }
        });
        assert_eq!(
            n,
            0,
            "allocations in 400 packets (encrypted: {})",
            key.is_some()
        );
    }
}

/// The element with `single-buffer=true`, as Hati runs it: frame buffers come from its pool and
/// go out whole, so a frame costs no allocation once the pool holds enough buffers. Driven
/// through real pads on this thread (a downstream pad that drops what it gets).
#[test]
fn element_frames_do_not_allocate_in_single_buffer_mode() {
    use gst::prelude::*;
    gst::init().unwrap();
    gsthati::register_static().unwrap();
    let element = gst::ElementFactory::make("moonlightvideopay")
        .property("single-buffer", true)
        .build()
        .unwrap();
    let upstream = gst::Pad::builder(gst::PadDirection::Src).name("up").build();
    let downstream = gst::Pad::builder(gst::PadDirection::Sink)
        .name("down")
        .chain_function(|_, _, buffer| {
            drop(buffer);
            Ok(gst::FlowSuccess::Ok)
        })
        .event_function(|_, _, _| true)
        .build();
    upstream.link(&element.static_pad("sink").unwrap()).unwrap();
    element
        .static_pad("src")
        .unwrap()
        .link(&downstream)
        .unwrap();
    upstream.set_active(true).unwrap();
    downstream.set_active(true).unwrap();
    element.set_state(gst::State::Playing).unwrap();
    assert!(upstream.push_event(gst::event::StreamStart::new("no-alloc")));
    assert!(
        upstream.push_event(gst::event::Caps::new(
            &gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build()
        ))
    );
    assert!(
        upstream.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()))
    );
    let frame = |size: usize, delta: bool| {
        let mut buffer = gst::Buffer::from_mut_slice(vec![0x5a_u8; size]);
        {
            let buffer = buffer.get_mut().unwrap();
            buffer.set_pts(gst::ClockTime::from_mseconds(1));
            if delta {
                buffer.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        buffer
    };
    let key_frame = frame(250_000, false);
    let p_frame = frame(40_000, true);
    // Warm-up: the pool grows to the key frame's size; every block shape builds its encoder.
    for _ in 0..3 {
        upstream.push(key_frame.clone()).unwrap();
        upstream.push(p_frame.clone()).unwrap();
    }
    let n = allocations_in(|| {
        for _ in 0..20 {
            upstream.push(key_frame.clone()).unwrap();
            upstream.push(p_frame.clone()).unwrap();
        }
    });
    element.set_state(gst::State::Null).unwrap();
    assert_eq!(n, 0, "allocations in 40 frames through the element");
}
