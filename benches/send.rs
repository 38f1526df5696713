//! Per-frame cost of sending video: the per-packet path (one `sendto` per packet, a 200 µs
//! pause every 64 packets on the calling thread: what the appsink callback did before the
//! sender thread) against the sender's path (UDP GSO batches paced by the token bucket, on its
//! own thread), in one run, alternating, to a loopback receiver.
//!
//!     cargo bench --bench send
//!
//! Frames are real packetizer output (FEC 20%, 1392-byte payloads) of bitrate / fps bytes, laid
//! out as the payloader element lays them out (one buffer per frame, a sub-buffer per packet).
//! Prints per-frame CPU time of the sending thread and wall time, for the per-packet path, the
//! sender with a list of packet buffers, and the sender with one buffer per frame
//! (`single-buffer`, what Hati runs), plus what the streaming thread spends handing a frame over
//! (all times in µs).

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use gsthati::videopay::packetizer::{Config, FrameMeta, FrameType, VideoPacketizer};
use hati::stream::media::{StreamCounters, send_packets};
use hati::stream::sender::{Batcher, Pacing, TokenBucket, VideoSender, gso_supported};
use rustix::time::{ClockId, clock_gettime};

const FRAMES: usize = 240;
const ROUNDS: usize = 3;

fn thread_cpu() -> Duration {
    let now = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// One frame's packets as the element makes them: the list of sub-buffers, and the one buffer
/// (`single-buffer=true`, what Hati uses) with its packet size.
fn frame_list(
    packetizer: &mut VideoPacketizer,
    frame_bytes: usize,
) -> (gst::BufferList, gst::Buffer, usize) {
    let au: Vec<u8> = (0..frame_bytes).map(|i| (i * 7 % 251) as u8).collect();
    let meta = FrameMeta {
        frame_type: FrameType::PFrame,
        rtp_timestamp: 0,
        host_processing_latency: 0,
    };
    let packets = packetizer.packetize(&au, &meta).expect("packetize");
    let stride = packets.info.plan.packet_len;
    let count = packets.len();
    let whole = gst::Buffer::from_mut_slice(packets.as_bytes().to_vec());
    let mut list = gst::BufferList::new_sized(count);
    {
        let list = list.get_mut().expect("new list");
        for k in 0..count {
            list.add(
                whole
                    .copy_region(gst::BufferCopyFlags::MEMORY, k * stride..(k + 1) * stride)
                    .expect("region"),
            );
        }
    }
    (list, whole, stride)
}

struct Figures {
    cpu: Vec<Duration>,
    wall: Vec<Duration>,
}

impl Figures {
    fn median(values: &mut [Duration]) -> Duration {
        values.sort();
        values.get(values.len() / 2).copied().unwrap_or_default()
    }
}

fn main() {
    gst::init().expect("gst");
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let destination = receiver.local_addr().expect("addr");
    let _ = socket2::SockRef::from(&receiver).set_recv_buffer_size(8 << 20);
    receiver
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let draining = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                let _ = receiver.recv(&mut buffer);
            }
        })
    };
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind"));
    socket.set_nonblocking(true).expect("nonblocking");
    let _ = socket2::SockRef::from(socket.as_ref()).set_send_buffer_size(4 << 20);

    println!(
        "UDP GSO on loopback: {}",
        if gso_supported() { "yes" } else { "no" }
    );
    println!(
        "{:<18} {:>7} | {:>12} {:>12} | {:>12} {:>12} | {:>13} {:>13} | {:>12} | {:>9}",
        "case (µs/frame)",
        "pkts/fr",
        "per-pkt CPU",
        "per-pkt wall",
        "GSO list CPU",
        "GSO list wall",
        "GSO whole CPU",
        "GSO whole wall",
        "mmsg whole CPU",
        "submit"
    );
    for (name, fps, mbps) in [
        ("1080p60 20 Mbps", 60u32, 20u32),
        ("1080p60 50 Mbps", 60, 50),
        ("4K60 150 Mbps", 60, 150),
    ] {
        let frame_bytes = (mbps as usize * 1_000_000 / 8) / fps as usize;
        let mut packetizer = VideoPacketizer::new(
            Config {
                payload_size: 1392,
                fec_percentage: 20,
                min_required_fec_packets: 2,
            },
            None,
        )
        .expect("packetizer");
        let (list, whole, stride) = frame_list(&mut packetizer, frame_bytes);
        let packets = list.len();
        let interval = Duration::from_secs(1) / fps;
        let counters = StreamCounters::default();
        let mut old = Figures {
            cpu: Vec::new(),
            wall: Vec::new(),
        };
        let mut new = Figures {
            cpu: Vec::new(),
            wall: Vec::new(),
        };
        let mut mmsg = Figures {
            cpu: Vec::new(),
            wall: Vec::new(),
        };
        let mut mmsg_batcher = Batcher::with_methods(false, true);
        let mut single = Figures {
            cpu: Vec::new(),
            wall: Vec::new(),
        };
        let mut batcher = Batcher::new();
        let mut bucket = TokenBucket::new();
        // The sender's own pacing, as in production (2 × the bitrate).
        let pacing = Pacing {
            multiple: 2.0,
            bitrate_kbps: Arc::new(AtomicU32::new(mbps * 1000)),
            frame_interval: interval,
        };
        for _ in 0..ROUNDS {
            for path in [0, 1, 2, 3] {
                for _ in 0..FRAMES / ROUNDS {
                    let started = Instant::now();
                    let cpu = thread_cpu();
                    if path == 0 {
                        send_packets(&socket, Some(destination), list.iter(), &counters);
                    } else {
                        bucket.pace_frame(list_bytes(&list), &pacing);
                        match path {
                            1 => batcher.send_frame(
                                &list,
                                destination,
                                &socket,
                                &counters,
                                &mut bucket,
                            ),
                            2 => batcher.send_whole(
                                &whole,
                                stride,
                                destination,
                                &socket,
                                &counters,
                                &mut bucket,
                            ),
                            _ => mmsg_batcher.send_whole(
                                &whole,
                                stride,
                                destination,
                                &socket,
                                &counters,
                                &mut bucket,
                            ),
                        }
                    }
                    let figures = match path {
                        0 => &mut old,
                        1 => &mut new,
                        2 => &mut single,
                        _ => &mut mmsg,
                    };
                    figures.cpu.push(thread_cpu() - cpu);
                    let wall = started.elapsed();
                    figures.wall.push(wall);
                    std::thread::sleep(interval.saturating_sub(wall));
                }
            }
        }
        // What the streaming thread pays with the sender thread: one hand-over per frame.
        let sender = VideoSender::start(
            "bench-sender".into(),
            socket.clone(),
            Arc::new(StreamCounters::default()),
            pacing.clone(),
        )
        .expect("sender");
        let mut submit = Vec::new();
        for _ in 0..FRAMES / ROUNDS {
            let started = Instant::now();
            sender.submit_whole(whole.clone(), stride, destination);
            submit.push(started.elapsed());
            std::thread::sleep(interval);
        }
        drop(sender);
        println!(
            "{:<18} {:>7} | {:>12.1} {:>12.1} | {:>12.1} {:>12.1} | {:>13.1} {:>13.1} | {:>12.1} | {:>9.1}",
            name,
            packets,
            micros(Figures::median(&mut old.cpu)),
            micros(Figures::median(&mut old.wall)),
            micros(Figures::median(&mut new.cpu)),
            micros(Figures::median(&mut new.wall)),
            micros(Figures::median(&mut single.cpu)),
            micros(Figures::median(&mut single.wall)),
            micros(Figures::median(&mut mmsg.cpu)),
            micros(Figures::median(&mut submit)),
        );
    }
    println!(
        "(medians of {FRAMES} frames per path, alternating in {ROUNDS} rounds; GSO: {})",
        if Batcher::new().uses_gso() {
            "tried first, per-packet fallback if refused"
        } else {
            "off"
        }
    );
    stop.store(true, Ordering::Relaxed);
    let _ = draining.join();
}

fn list_bytes(list: &gst::BufferList) -> usize {
    list.iter().map(gst::BufferRef::size).sum()
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
