//! `hatitestsrc`: the painting on its own, then the element live in a pipeline.

use std::sync::Once;
use std::time::Instant;

use gst::prelude::*;

use super::paint::{Yuv, paint_plane, square_at};

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        crate::register_static().unwrap();
    });
}

/// `description` (ending in `appsink name=out`) set playing, and its sink.
fn play(description: &str) -> (gst::Pipeline, gst_app::AppSink) {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    (pipeline, sink)
}

#[test]
fn colours_convert_as_bt601_limited_range() {
    assert_eq!(
        Yuv::from_argb(0xff00_0000),
        Yuv {
            y: 16,
            u: 128,
            v: 128
        }
    );
    assert_eq!(
        Yuv::from_argb(0xffff_ffff),
        Yuv {
            y: 235,
            u: 128,
            v: 128
        }
    );
    // The Test pattern's background, as videotestsrc converts it (±1).
    let blue = Yuv::from_argb(0xff20_60a0);
    assert!((blue.y as i32 - 89).abs() <= 1, "{blue:?}");
    assert!(blue.u > 128 && blue.v < 128, "{blue:?}");
}

#[test]
fn the_square_stays_inside_and_moves() {
    for (width, height) in [(1280, 720), (16, 16), (17, 33), (3840, 2160)] {
        let mut seen = std::collections::HashSet::new();
        for index in 0..600 {
            let (x, y, side) = square_at(index, width, height);
            assert!(
                x + side <= width && y + side <= height,
                "{width}x{height} frame {index}"
            );
            assert_eq!((x % 2, y % 2, side % 2), (0, 0, 0));
            seen.insert((x, y));
        }
        // It travels both ways: across a 16-pixel frame's few even positions, and across
        // hundreds in a big one.
        let columns: std::collections::HashSet<_> = seen.iter().map(|p| p.0).collect();
        let rows: std::collections::HashSet<_> = seen.iter().map(|p| p.1).collect();
        let wanted = if width >= 640 { 100 } else { 4 };
        assert!(
            columns.len() >= wanted.min(width / 4) && rows.len() >= 4 && seen.len() >= 16,
            "{width}x{height}: the square barely moves ({} positions)",
            seen.len()
        );
    }
}

#[test]
fn planes_hold_background_and_square_and_respect_stride() {
    let (width, height, stride) = (64usize, 48usize, 80usize);
    let background = Yuv::from_argb(0xff20_60a0);
    let foreground = Yuv::from_argb(0xffff_d040);
    let mut luma = vec![0xAAu8; stride * height];
    paint_plane(
        &mut luma, stride, 0, width, height, 5, background, foreground,
    );
    let (x, y, side) = square_at(5, width, height);
    for row in 0..height {
        for column in 0..stride {
            let value = luma[row * stride + column];
            let expected = if column >= width {
                0xAA // padding past the width is left alone
            } else if (x..x + side).contains(&column) && (y..y + side).contains(&row) {
                foreground.y
            } else {
                background.y
            };
            assert_eq!(value, expected, "row {row} column {column}");
        }
    }
    let mut chroma = vec![0u8; (stride / 2) * height.div_ceil(2)];
    paint_plane(
        &mut chroma,
        stride / 2,
        1,
        width,
        height,
        5,
        background,
        foreground,
    );
    assert_eq!(chroma[(y / 2) * (stride / 2) + x / 2], foreground.u);
    assert_eq!(
        chroma[0],
        if x == 0 && y == 0 {
            foreground.u
        } else {
            background.u
        }
    );
}

#[test]
fn element_streams_live_frames_at_the_negotiated_mode() {
    let (pipeline, sink) = play(
        "hatitestsrc ! video/x-raw,width=320,height=180,framerate=50/1 ! appsink name=out sync=false",
    );
    let started = Instant::now();
    let mut last_pts = None;
    for index in 0..25u64 {
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(5))
            .expect("a frame within 5 s");
        let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
        assert_eq!(caps.get::<i32>("width").unwrap(), 320);
        assert_eq!(caps.get::<String>("format").unwrap(), "I420");
        let buffer = sample.buffer().unwrap();
        let pts = buffer.pts().unwrap();
        if let Some(last) = last_pts {
            assert!(pts > last, "frame {index}: timestamps must increase");
        }
        last_pts = Some(pts);
        assert_eq!(buffer.duration(), Some(gst::ClockTime::from_mseconds(20)));
    }
    // Live: 25 frames at 50 fps take about half a second, not an instant.
    let elapsed = started.elapsed();
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        elapsed.as_millis() >= 350,
        "25 frames at 50 fps arrived in {elapsed:?}: the source is not paced by the clock"
    );
}

#[test]
fn unconstrained_it_picks_720p60() {
    let (pipeline, sink) = play("hatitestsrc ! appsink name=out sync=false");
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_seconds(5))
        .unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
    assert_eq!(caps.get::<i32>("width").unwrap(), 1280);
    assert_eq!(caps.get::<i32>("height").unwrap(), 720);
    assert_eq!(
        caps.get::<gst::Fraction>("framerate").unwrap(),
        gst::Fraction::new(60, 1)
    );
}
