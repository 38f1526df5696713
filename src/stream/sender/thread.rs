//! The sender thread of a video stream and the bounded queue of frames the appsink callback
//! hands it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use super::batch::Batcher;
use super::bucket::{Pacing, TokenBucket};
use crate::stream::counters::StreamCounters;

/// Frames waiting for the sender before new ones are dropped (the client asks for a key frame).
const QUEUE_FRAMES: usize = 8;

/// A frame's packets as the payloader pushes them.
enum Packets {
    /// One buffer per packet.
    List(gst::BufferList),
    /// One buffer, packets of `stride` bytes back to back (the last may be shorter).
    Whole {
        /// The frame.
        buffer: gst::Buffer,
        /// Bytes per packet.
        stride: usize,
    },
}

struct Frame {
    packets: Packets,
    destination: SocketAddr,
}

/// A video stream's sender thread; dropping it stops the thread after the frames it holds.
pub struct VideoSender {
    queue: Option<SyncSender<Frame>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<StreamCounters>,
}

impl VideoSender {
    /// Starts the thread `name`, sending from `socket`.
    pub fn start(
        name: String,
        socket: Arc<UdpSocket>,
        counters: Arc<StreamCounters>,
        pacing: Pacing,
    ) -> std::io::Result<Self> {
        let (queue, frames) = std::sync::mpsc::sync_channel(QUEUE_FRAMES);
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(&frames, &socket, &thread_counters, &pacing))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            counters,
        })
    }

    /// Hands a frame's packets (one buffer each) to the thread without waiting. A full queue
    /// (the link or the sender cannot keep up) drops the frame and counts its packets as
    /// dropped.
    pub fn submit(&self, packets: gst::BufferList, destination: SocketAddr) {
        let count = packets.len() as u64;
        self.enqueue(Packets::List(packets), count, destination);
    }

    /// Hands a frame whose packets lie back to back in one buffer, `stride` bytes each.
    pub fn submit_whole(&self, buffer: gst::Buffer, stride: usize, destination: SocketAddr) {
        let count = buffer.size().div_ceil(stride.max(1)) as u64;
        self.enqueue(Packets::Whole { buffer, stride }, count, destination);
    }

    fn enqueue(&self, packets: Packets, count: u64, destination: SocketAddr) {
        let Some(queue) = self.queue.as_ref() else {
            return;
        };
        match queue.try_send(Frame {
            packets,
            destination,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counters
                    .frames_backlogged
                    .fetch_add(1, Ordering::Relaxed);
                self.counters
                    .packets_dropped
                    .fetch_add(count, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters
                    .packets_dropped
                    .fetch_add(count, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for VideoSender {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(frames: &Receiver<Frame>, socket: &UdpSocket, counters: &StreamCounters, pacing: &Pacing) {
    let mut bucket = TokenBucket::new();
    let mut batch = Batcher::new();
    while let Ok(frame) = frames.recv() {
        let bytes: usize = match &frame.packets {
            Packets::List(list) => list.iter().map(gst::BufferRef::size).sum(),
            Packets::Whole { buffer, .. } => buffer.size(),
        };
        bucket.pace_frame(bytes, pacing);
        match &frame.packets {
            Packets::List(list) => {
                batch.send_frame(list, frame.destination, socket, counters, &mut bucket);
            }
            Packets::Whole { buffer, stride } => {
                batch.send_whole(
                    buffer,
                    *stride,
                    frame.destination,
                    socket,
                    counters,
                    &mut bucket,
                );
            }
        }
    }
}
