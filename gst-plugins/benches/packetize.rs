//! Packetize + FEC throughput of the Moonlight video payloader (`docs/PEERS.md` §9), against
//! a plain memcpy of the same bytes measured in the same run.
//!
//! Run with `cargo bench -p gst-plugin-hati` (optionally `-- --quick`). Each figure is the best
//! of 41 batches of ~20 ms (5 with `--quick`). MB/s counts
//! access-unit (or, for FEC-only rows, data-shard) bytes, 1 MB = 10^6 bytes. The run also counts
//! heap allocations during the steady-state loops and fails if a frame allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gsthati::fec::{Kernel, ReedSolomon};
use gsthati::videopay::packetizer::{Config, FrameMeta, FrameType, VideoPacketizer};

struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Best (minimum) time per iteration over `batches` batches of about `batch` each. The minimum
/// is the figure least disturbed by other processes on a shared machine.
fn measure(batch: Duration, batches: usize, mut f: impl FnMut()) -> Duration {
    // Calibrate the iteration count for one batch.
    let mut iters = 1u32;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        if t.elapsed() >= batch / 4 || iters >= 1 << 24 {
            break;
        }
        iters *= 2;
    }
    let iters = iters * 4;
    let mut best = Duration::MAX;
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        best = best.min(t.elapsed() / iters);
    }
    best
}

fn mbps(bytes: usize, per_iter: Duration) -> f64 {
    bytes as f64 / per_iter.as_secs_f64() / 1e6
}

fn frame(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (batch, batches) = if quick {
        (Duration::from_millis(20), 5)
    } else {
        (Duration::from_millis(20), 41)
    };
    let cfg = Config {
        payload_size: 1392,
        fec_percentage: 20,
        min_required_fec_packets: 2,
    };
    let meta = FrameMeta {
        frame_type: FrameType::Idr,
        rtp_timestamp: 0,
        host_processing_latency: 0,
    };
    let kernels: Vec<Kernel> = Kernel::ALL
        .into_iter()
        .filter(|k| k.is_available())
        .collect();
    println!(
        "best kernel: {:?}; available: {kernels:?}",
        Kernel::detect()
    );
    println!("P = 1392, F = 20 %, min parity 2; MB/s of access-unit bytes");
    println!();

    let mut failed = false;
    for (label, size) in [("1080p key frame", 250_000usize), ("P-frame", 40_000)] {
        let au = frame(size, size as u64);
        let mut dst = vec![0u8; size];
        let memcpy = measure(batch, batches, || {
            dst.copy_from_slice(black_box(&au));
            black_box(&mut dst);
        });
        let plan = VideoPacketizer::new(cfg, None).unwrap().plan(size).unwrap();
        let shapes: Vec<String> = plan
            .blocks()
            .iter()
            .map(|b| format!("({},{})", b.data_shards, b.parity_shards))
            .collect();
        println!(
            "{label}: {size} bytes -> {} packets, blocks {}",
            plan.total_packets(),
            shapes.join(" ")
        );
        println!(
            "  memcpy of the same bytes          {:>9.0} MB/s  {:>8.1} us/frame",
            mbps(size, memcpy),
            memcpy.as_secs_f64() * 1e6
        );
        let mut cases: Vec<(String, Option<[u8; 16]>, Kernel)> = kernels
            .iter()
            .map(|&k| (format!("packetize+FEC [{k:?}]"), None, k))
            .collect();
        cases.push((
            format!("packetize+FEC+AES-GCM [{:?}]", Kernel::detect()),
            Some([7; 16]),
            Kernel::detect(),
        ));
        for (name, key, kernel) in cases {
            let mut pz = VideoPacketizer::new(cfg, key).unwrap();
            pz.set_kernel(kernel);
            // Warm up: grows the output buffer and builds the encoder once.
            pz.packetize(&au, &meta).unwrap();
            let mut frames = 0u64;
            let mut allocs = 0u64;
            let t = measure(batch, batches, || {
                // Only the packetize call is counted, not the harness around it.
                let before = ALLOCATIONS.load(Ordering::Relaxed);
                let packets = pz.packetize(black_box(&au), &meta).unwrap();
                allocs += ALLOCATIONS.load(Ordering::Relaxed) - before;
                black_box(packets.as_bytes());
                frames += 1;
            });
            println!(
                "  {name:<33} {:>9.0} MB/s  {:>8.1} us/frame  ({:.1}x memcpy time; {allocs} allocations in {frames} frames)",
                mbps(size, t),
                t.as_secs_f64() * 1e6,
                t.as_secs_f64() / memcpy.as_secs_f64(),
            );
            if allocs != 0 {
                failed = true;
            }
        }
        println!();
    }

    println!("FEC encode only, 1408-byte shards (MB/s of data bytes), ours vs fec-rs 0.1.0:");
    for (d, p) in [(150usize, 30usize), (40, 8), (204, 51), (182, 37)] {
        let len = 1408;
        let mut buf = frame((d + p) * len, 99);
        let rs = ReedSolomon::new(d, p).unwrap();
        let mut row = format!("  ({d:>3},{p:>2})");
        for &k in &kernels {
            let t = measure(batch, batches, || {
                rs.encode_strided_with(k, black_box(&mut buf), len, 0, len)
                    .unwrap();
            });
            row += &format!(
                "  {k:?} {:>6.0} MB/s ({:>5.1} us)",
                mbps(d * len, t),
                t.as_secs_f64() * 1e6
            );
        }
        let theirs = fec_rs::ReedSolomon::new(d, p).unwrap();
        let mut shards: Vec<Vec<u8>> = (0..d + p).map(|k| frame(len, k as u64)).collect();
        let t = measure(batch, batches, || {
            theirs.encode(black_box(&mut shards)).unwrap();
        });
        row += &format!(
            "  fec-rs {:>6.0} MB/s ({:>5.1} us)",
            mbps(d * len, t),
            t.as_secs_f64() * 1e6
        );
        println!("{row}");
    }

    if failed {
        eprintln!("FAIL: steady-state packetization allocated");
        std::process::exit(1);
    }
}
