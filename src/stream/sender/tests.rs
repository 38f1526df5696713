//! Tests of the sender: batches with and without GSO, the bucket, the thread.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::batch::gso_control;
use super::{Batcher, Pacing, TokenBucket, VideoSender};
use crate::stream::counters::StreamCounters;

/// A frame as the payloader makes it: one buffer, packets as sub-buffers of it.
fn frame(packets: usize, size: usize, last: usize) -> gst::BufferList {
    gst::init().unwrap();
    let total = (packets - 1) * size + last;
    let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let whole = gst::Buffer::from_mut_slice(data);
    let mut list = gst::BufferList::new_sized(packets);
    {
        let list = list.get_mut().unwrap();
        for index in 0..packets {
            let len = if index + 1 == packets { last } else { size };
            list.add(
                whole
                    .copy_region(
                        gst::BufferCopyFlags::MEMORY,
                        index * size..index * size + len,
                    )
                    .unwrap(),
            );
        }
    }
    list
}

fn receive_all(receiver: &UdpSocket, expected: usize) -> Vec<Vec<u8>> {
    // As much room as the kernel allows, so a reader starved by parallel tests loses nothing.
    let _ = SockRef::from(receiver).set_recv_buffer_size(4 << 20);
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut got = Vec::new();
    let mut buffer = [0u8; 2048];
    while got.len() < expected {
        let Ok(len) = receiver.recv(&mut buffer) else {
            break;
        };
        got.push(buffer[..len].to_vec());
    }
    got
}

#[test]
fn every_packet_arrives_whole_and_in_order_with_or_without_gso() {
    for (gso, mmsg) in [(true, true), (false, true), (false, false)] {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let destination = receiver.local_addr().unwrap();
        // Read while sending: 150 datagrams overflow a default receive buffer.
        let reader = std::thread::spawn(move || receive_all(&receiver, 150));
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let counters = StreamCounters::default();
        let mut batcher = Batcher::with_methods(gso, mmsg);
        // 150 packets: more than one GSO run, and a short last packet; paced at 4 MB/s.
        let packets = frame(150, 1_024, 300);
        let mut bucket = TokenBucket::new();
        bucket.configure(4e6, 16.0 * 1024.0);
        batcher.send_frame(&packets, destination, &socket, &counters, &mut bucket);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), 150, "gso {gso}");
        assert_eq!(batcher.uses_gso(), gso, "loopback takes GSO sends");
        for (index, datagram) in got.iter().enumerate() {
            let expected = packets.get(index).unwrap().map_readable().unwrap().to_vec();
            assert_eq!(datagram, &expected, "packet {index} (gso {gso})");
        }
        assert_eq!(counters.packets_sent.load(Ordering::Relaxed), 150);
        assert_eq!(
            counters.bytes_sent.load(Ordering::Relaxed),
            149 * 1_024 + 300
        );
    }
}

#[test]
fn a_whole_frame_buffer_is_cut_at_its_stride_with_or_without_gso() {
    for (gso, mmsg) in [(true, true), (false, true), (false, false)] {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let destination = receiver.local_addr().unwrap();
        let reader = std::thread::spawn(move || receive_all(&receiver, 130));
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let counters = StreamCounters::default();
        let mut batcher = Batcher::with_methods(gso, mmsg);
        gst::init().unwrap();
        let data: Vec<u8> = (0..130 * 1_000).map(|i| (i % 253) as u8).collect();
        let buffer = gst::Buffer::from_slice(data.clone());
        let mut bucket = TokenBucket::new();
        bucket.configure(4e6, 16.0 * 1024.0);
        batcher.send_whole(&buffer, 1_000, destination, &socket, &counters, &mut bucket);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), 130, "gso {gso}");
        for (index, datagram) in got.iter().enumerate() {
            assert_eq!(
                datagram.as_slice(),
                &data[index * 1_000..(index + 1) * 1_000]
            );
        }
        assert_eq!(counters.packets_sent.load(Ordering::Relaxed), 130);
        assert_eq!(batcher.uses_gso(), gso);
        assert_eq!(batcher.uses_mmsg(), mmsg, "loopback takes sendmmsg");
    }
}

#[test]
fn the_bucket_paces_a_large_frame_at_its_rate() {
    let mut bucket = TokenBucket::new();
    // 1 MB/s with a 10 kB bucket: 60 kB more than the bucket takes about 50 ms.
    bucket.configure(1e6, 10e3);
    bucket.take(10_000);
    let started = Instant::now();
    for _ in 0..6 {
        bucket.take(10_000);
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(45), "{took:?}");
    assert!(took < Duration::from_millis(200), "{took:?}");
}

#[test]
fn the_sender_thread_sends_what_it_is_given() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
    let counters = Arc::new(StreamCounters::default());
    let sender = VideoSender::start(
        "test-sender".into(),
        socket,
        counters.clone(),
        Pacing {
            multiple: 2.0,
            bitrate_kbps: Arc::new(AtomicU32::new(20_000)),
            frame_interval: Duration::from_micros(16_667),
        },
    )
    .unwrap();
    let destination = receiver.local_addr().unwrap();
    let reader = std::thread::spawn(move || receive_all(&receiver, 200));
    // One frame at a time, as an encoder makes them: ten at once would overflow the
    // 8-frame queue on a busy machine (that is what the queue is for).
    for sent in 1..=10u64 {
        sender.submit(frame(20, 1_000, 1_000), destination);
        let deadline = Instant::now() + Duration::from_secs(5);
        while counters.packets_sent.load(Ordering::Relaxed) < sent * 20 && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(reader.join().unwrap().len(), 200);
    drop(sender);
    assert_eq!(counters.packets_sent.load(Ordering::Relaxed), 200);
}

#[test]
fn gso_control_message_is_a_well_formed_cmsg() {
    let control = gso_control(1_392);
    let word = std::mem::size_of::<usize>();
    assert_eq!(control.len() % word, 0);
    let length = usize::from_ne_bytes(control[..word].try_into().unwrap());
    assert_eq!(length, word + 8 + 2);
    assert_eq!(
        u16::from_ne_bytes([control[word + 8], control[word + 9]]),
        1_392
    );
}
