//! The video sender allocates nothing per frame in steady state: handing a frame over, pacing,
//! GSO batching and sending (a counting global allocator over every thread; its own test binary
//! with one test, so nothing else allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hati::stream::media::StreamCounters;
use hati::stream::sender::{Pacing, VideoSender};

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

/// A frame as the payloader lays it out: one buffer, a sub-buffer per packet.
fn frame(packets: usize, size: usize) -> gst::BufferList {
    let whole = gst::Buffer::from_mut_slice(vec![0x5a_u8; packets * size]);
    let mut list = gst::BufferList::new_sized(packets);
    {
        let list = list.get_mut().expect("new list");
        for k in 0..packets {
            list.add(
                whole
                    .copy_region(gst::BufferCopyFlags::MEMORY, k * size..(k + 1) * size)
                    .expect("region"),
            );
        }
    }
    list
}

fn wait_for(counters: &StreamCounters, packets: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while counters.packets_sent.load(Ordering::Relaxed)
        + counters.packets_dropped.load(Ordering::Relaxed)
        < packets
    {
        assert!(Instant::now() < deadline, "the sender did not finish");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn sending_frames_allocates_nothing_in_steady_state() {
    gst::init().expect("gst");
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let destination = receiver.local_addr().expect("addr");
    receiver
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let draining = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let _ = receiver.recv(&mut buffer);
            }
        })
    };
    let counters = Arc::new(StreamCounters::default());
    let sender = VideoSender::start(
        "no-alloc-sender".into(),
        Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind")),
        counters.clone(),
        Pacing {
            multiple: 2.0,
            bitrate_kbps: Arc::new(AtomicU32::new(50_000)),
            frame_interval: Duration::from_micros(16_667),
        },
    )
    .expect("sender");
    // A P-frame and a key frame at 1080p60 50 Mbps (77 and 300 packets), in both forms the
    // payloader pushes: a list of packets, and one buffer (`single-buffer`, Hati's).
    let frames = [frame(77, 1408), frame(300, 1408)];
    let wholes = [
        gst::Buffer::from_mut_slice(vec![0x5a_u8; 77 * 1408]),
        gst::Buffer::from_mut_slice(vec![0xa5_u8; 300 * 1408]),
    ];
    let per_round = 2 * (77 + 300) as u64;
    let round = |number: u64| {
        for list in &frames {
            sender.submit(list.clone(), destination);
        }
        for whole in &wholes {
            sender.submit_whole(whole.clone(), 1408, destination);
        }
        wait_for(&counters, number * per_round);
    };
    for number in 1..=5 {
        round(number);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for number in 6..=45 {
        round(number);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    drop(sender);
    stop.store(true, Ordering::Relaxed);
    let _ = draining.join();
    assert_eq!(
        allocations,
        0,
        "allocations while sending 160 frames ({} packets sent, {} dropped)",
        counters.packets_sent.load(Ordering::Relaxed),
        counters.packets_dropped.load(Ordering::Relaxed)
    );
}
