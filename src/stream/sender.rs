//! The video sender: one thread per video stream. The appsink callback hands it each frame's
//! packets (the payloader's buffer list, by reference: nothing is copied) and returns at once, so
//! the encoder's thread never sleeps for pacing. The thread paces with a token bucket at a
//! multiple of the encoder's bitrate (a frame that would take longer than one frame interval at
//! that rate is spread over exactly one) and sends runs of equal-sized packets as one UDP GSO
//! `sendmsg` (the kernel cuts them into datagrams), falling back to one `sendmmsg` per run, then
//! one `sendto` per packet, where the kernel or the device refuses. Steady state allocates
//! nothing.

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use socket2::{MsgHdr, SockAddr, SockRef};

use super::media::StreamCounters;

/// Most segments one GSO send may carry (the kernel's UDP_MAX_SEGMENTS on older kernels).
pub const MAX_SEGMENTS: usize = 64;
/// Most bytes one GSO send may carry (an IP datagram's limit, less headers).
const MAX_GSO_BYTES: usize = 65_000;
/// Frames waiting for the sender before new ones are dropped (the client asks for a key frame).
const QUEUE_FRAMES: usize = 8;
/// How long a send waits for room in the socket buffer before the packet counts as dropped.
const SEND_WAIT: Duration = Duration::from_millis(10);
/// `SOL_UDP` and `UDP_SEGMENT` from the kernel's headers.
const SOL_UDP: i32 = 17;
const UDP_SEGMENT: i32 = 103;

/// How the sender paces: `multiple` × the encoder's bitrate, read for every frame.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Multiple of the bitrate the bucket refills at.
    pub multiple: f64,
    /// The encoder's bitrate in kbit/s (adaptive bitrate updates it); 0: unknown.
    pub bitrate_kbps: Arc<AtomicU32>,
    /// One frame's duration.
    pub frame_interval: Duration,
}

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

/// Bytes allowed out now: refills at `rate` per second up to `capacity`.
#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    capacity: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket of 64 KiB that refills at 1 GB/s until configured.
    pub fn new() -> Self {
        Self {
            tokens: 64.0 * 1024.0,
            rate: 1e9,
            capacity: 64.0 * 1024.0,
            refilled: Instant::now(),
        }
    }

    /// Sets the refill rate (bytes/s) and capacity (bytes).
    pub fn configure(&mut self, rate: f64, capacity: f64) {
        self.refill();
        self.rate = rate.max(1.0);
        self.capacity = capacity.max(1.0);
        self.tokens = self.tokens.min(self.capacity);
    }

    /// Sets rate and capacity for a frame of `frame_bytes` under `pacing`: the bitrate times
    /// the multiple, but at least fast enough to send the frame within one frame interval;
    /// room for two average frames, so ordinary frames leave at once and big ones are paced.
    pub fn pace_frame(&mut self, frame_bytes: usize, pacing: &Pacing) {
        let bitrate_bytes = f64::from(pacing.bitrate_kbps.load(Ordering::Relaxed)) * 125.0;
        let interval = pacing.frame_interval.as_secs_f64().max(1e-3);
        if bitrate_bytes > 0.0 {
            let rate = (bitrate_bytes * pacing.multiple).max(frame_bytes as f64 / interval);
            let capacity = (bitrate_bytes * interval * 2.0).max(64.0 * 1024.0);
            self.configure(rate, capacity);
        } else {
            // Unknown bitrate: spread only what one frame interval allows at 1 GB/s.
            self.configure(1e9, 1e9 * interval);
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
    }

    /// Takes `bytes`, first sleeping until the bucket holds them (it may go below zero for a
    /// batch larger than the capacity; the next take waits for that).
    pub fn take(&mut self, bytes: usize) {
        self.refill();
        let bytes = bytes as f64;
        let wanted = bytes.min(self.capacity);
        if self.tokens < wanted {
            std::thread::sleep(Duration::from_secs_f64((wanted - self.tokens) / self.rate));
            self.refill();
        }
        self.tokens -= bytes;
    }
}

impl Default for TokenBucket {
    fn default() -> Self {
        Self::new()
    }
}

/// Groups a frame's packets into GSO sends; remembers what the kernel refused. Without GSO it
/// sends each run with one `sendmmsg`, and without that (very old kernels) one `sendto` per
/// packet.
#[derive(Debug)]
pub struct Batcher {
    gso: bool,
    mmsg: bool,
    /// `sendmmsg`'s headers, allocated once when first needed.
    mmsg_headers: Option<MultiHeaders<SockaddrStorage>>,
}

impl Batcher {
    /// A batcher that tries GSO first.
    pub fn new() -> Self {
        Self::with_methods(true, true)
    }

    /// A batcher restricted to some methods (tests and benchmarks of the fallbacks).
    pub fn with_methods(gso: bool, mmsg: bool) -> Self {
        Self {
            gso,
            mmsg,
            mmsg_headers: None,
        }
    }

    /// Whether GSO is still in use (false after the kernel refused it).
    pub fn uses_gso(&self) -> bool {
        self.gso
    }

    /// Whether `sendmmsg` is still in use where GSO is not.
    pub fn uses_mmsg(&self) -> bool {
        self.mmsg
    }

    /// Sends every packet of `packets` to `destination`, paced by `bucket`.
    pub fn send_frame(
        &mut self,
        packets: &gst::BufferListRef,
        destination: SocketAddr,
        socket: &UdpSocket,
        counters: &StreamCounters,
        bucket: &mut TokenBucket,
    ) {
        let address = SockAddr::from(destination);
        let total = packets.len();
        let mut start = 0;
        while start < total {
            // One run: up to MAX_SEGMENTS packets the size of the first (the last may be
            // shorter), within MAX_GSO_BYTES.
            let mut maps: [Option<gst::BufferMap<'_, gst::buffer::Readable>>; MAX_SEGMENTS] =
                [const { None }; MAX_SEGMENTS];
            let mut count = 0;
            let mut bytes = 0;
            let mut segment = 0;
            while start + count < total && count < MAX_SEGMENTS {
                let Some(packet) = packets.get(start + count) else {
                    break;
                };
                let Ok(map) = packet.map_readable() else {
                    break;
                };
                let len = map.len();
                if count == 0 {
                    segment = len;
                } else if len > segment || bytes + len > MAX_GSO_BYTES {
                    break;
                }
                let last = len < segment;
                bytes += len;
                if let Some(slot) = maps.get_mut(count) {
                    *slot = Some(map);
                }
                count += 1;
                if last {
                    break;
                }
            }
            if count == 0 {
                // An unmappable packet: skip it.
                counters.packets_dropped.fetch_add(1, Ordering::Relaxed);
                start += 1;
                continue;
            }
            bucket.take(bytes);
            let sent = self.send_run(&maps[..count], segment, &address, socket);
            counters
                .packets_sent
                .fetch_add(sent as u64, Ordering::Relaxed);
            let sent_bytes: usize = maps[..sent].iter().flatten().map(|map| map.len()).sum();
            counters
                .bytes_sent
                .fetch_add(sent_bytes as u64, Ordering::Relaxed);
            counters
                .packets_dropped
                .fetch_add((count - sent) as u64, Ordering::Relaxed);
            start += count;
        }
    }

    /// Sends a frame whose packets lie back to back in `buffer`, `stride` bytes each: each GSO
    /// run is one contiguous slice of the one mapping.
    pub fn send_whole(
        &mut self,
        buffer: &gst::BufferRef,
        stride: usize,
        destination: SocketAddr,
        socket: &UdpSocket,
        counters: &StreamCounters,
        bucket: &mut TokenBucket,
    ) {
        let Ok(map) = buffer.map_readable() else {
            counters.packets_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let stride = stride.max(1);
        let address = SockAddr::from(destination);
        let per_run = MAX_SEGMENTS.min(MAX_GSO_BYTES / stride).max(1) * stride;
        for run in map.as_slice().chunks(per_run) {
            let packets = run.len().div_ceil(stride);
            bucket.take(run.len());
            let sent = self.send_contiguous(run, stride, &address, socket);
            counters
                .packets_sent
                .fetch_add(sent as u64, Ordering::Relaxed);
            let sent_bytes = if sent == packets {
                run.len()
            } else {
                sent * stride
            };
            counters
                .bytes_sent
                .fetch_add(sent_bytes as u64, Ordering::Relaxed);
            counters
                .packets_dropped
                .fetch_add((packets - sent) as u64, Ordering::Relaxed);
        }
    }

    /// Sends `run` (packets of `stride` bytes back to back); returns how many went out.
    fn send_contiguous(
        &mut self,
        run: &[u8],
        stride: usize,
        address: &SockAddr,
        socket: &UdpSocket,
    ) -> usize {
        let mut packets: [&[u8]; MAX_SEGMENTS] = [&[]; MAX_SEGMENTS];
        let mut count = 0;
        for (slot, packet) in packets.iter_mut().zip(run.chunks(stride)) {
            *slot = packet;
            count += 1;
        }
        self.send_batch(
            &[IoSlice::new(run)],
            &packets[..count],
            stride,
            address,
            socket,
        )
    }

    /// Sends `packets` (`segment` bytes each, the last may be shorter), gathered from `slices`,
    /// as one GSO send; where the kernel refuses GSO, each packet as its own datagram. Returns
    /// how many went out.
    fn send_batch(
        &mut self,
        slices: &[IoSlice<'_>],
        packets: &[&[u8]],
        segment: usize,
        address: &SockAddr,
        socket: &UdpSocket,
    ) -> usize {
        if self.gso && packets.len() > 1 {
            let control = gso_control(segment);
            let message = MsgHdr::new()
                .with_addr(address)
                .with_buffers(slices)
                .with_control(&control);
            match with_room(|| SockRef::from(socket).sendmsg(&message, 0)) {
                Ok(_) => return packets.len(),
                Err(error) if gso_refused(&error) => {
                    tracing::info!(%error, "the kernel refuses UDP GSO here; sending packet by packet");
                    self.gso = false;
                }
                Err(error) => {
                    tracing::trace!(%error, "GSO send failed");
                    return 0;
                }
            }
        }
        let Some(destination) = address.as_socket() else {
            return 0;
        };
        self.send_each(packets, destination, socket)
    }

    /// Sends `packets` as separate datagrams: one `sendmmsg`, else one `sendto` each; returns
    /// how many went out.
    fn send_each(
        &mut self,
        packets: &[&[u8]],
        destination: SocketAddr,
        socket: &UdpSocket,
    ) -> usize {
        if self.mmsg {
            match self.send_mmsg(packets, destination, socket) {
                Ok(sent) => return sent,
                Err(error) => {
                    tracing::info!(%error, "the kernel refuses sendmmsg here; sending with sendto");
                    self.mmsg = false;
                }
            }
        }
        packets
            .iter()
            .filter(|packet| with_room(|| socket.send_to(packet, destination)).is_ok())
            .count()
    }

    /// One `sendmmsg` per call, repeated while the socket buffer takes only part of the run.
    /// `Err` only when the call itself is unsupported.
    fn send_mmsg(
        &mut self,
        packets: &[&[u8]],
        destination: SocketAddr,
        socket: &UdpSocket,
    ) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let headers = self
            .mmsg_headers
            .get_or_insert_with(|| MultiHeaders::preallocate(MAX_SEGMENTS, None));
        let mut iovs = [[IoSlice::new(&[])]; MAX_SEGMENTS];
        for (iov, packet) in iovs.iter_mut().zip(packets) {
            *iov = [IoSlice::new(packet)];
        }
        let address = Some(SockaddrStorage::from(destination));
        let addresses = [address; MAX_SEGMENTS];
        let count = packets.len().min(MAX_SEGMENTS);
        let no_control: [ControlMessage<'_>; 0] = [];
        let deadline = Instant::now() + SEND_WAIT;
        let mut sent = 0;
        while sent < count {
            let result = sendmmsg(
                socket.as_raw_fd(),
                headers,
                &iovs[sent..count],
                &addresses[sent..count],
                no_control,
                MsgFlags::empty(),
            )
            .map(Iterator::count);
            match result {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(Errno::ENOSYS) => return Err(std::io::Error::from(Errno::ENOSYS)),
                Err(_) => break,
            }
        }
        Ok(sent)
    }

    /// Sends one run of mapped packets; returns how many went out.
    fn send_run(
        &mut self,
        maps: &[Option<gst::BufferMap<'_, gst::buffer::Readable>>],
        segment: usize,
        address: &SockAddr,
        socket: &UdpSocket,
    ) -> usize {
        let mut packets: [&[u8]; MAX_SEGMENTS] = [&[]; MAX_SEGMENTS];
        let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS];
        let mut count = 0;
        for ((packet, slice), map) in packets
            .iter_mut()
            .zip(&mut slices)
            .zip(maps.iter().flatten())
        {
            *packet = map.as_slice();
            *slice = IoSlice::new(map.as_slice());
            count += 1;
        }
        self.send_batch(
            &slices[..count],
            &packets[..count],
            segment,
            address,
            socket,
        )
    }
}

impl Default for Batcher {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `send`, waiting (briefly, in small sleeps) while the non-blocking socket's buffer is full.
fn with_room(mut send: impl FnMut() -> std::io::Result<usize>) -> std::io::Result<usize> {
    let deadline = Instant::now() + SEND_WAIT;
    loop {
        match send() {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(error);
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            other => return other,
        }
    }
}

/// Errors that mean "no GSO here" (old kernel, a device without checksum offload).
fn gso_refused(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            5 /* EIO */ | 22 /* EINVAL */ | 92 /* ENOPROTOOPT */ | 95 /* EOPNOTSUPP */
        )
    )
}

/// The control message `UDP_SEGMENT = segment`: a `cmsghdr` (length, level, type; native
/// endian, the length as wide as a pointer) then a u16, padded to pointer alignment.
fn gso_control(segment: usize) -> [u8; GSO_CONTROL_LEN] {
    const WORD: usize = std::mem::size_of::<usize>();
    let mut control = [0u8; GSO_CONTROL_LEN];
    let header = WORD + 8;
    let length = header + 2;
    control[..WORD].copy_from_slice(&length.to_ne_bytes());
    control[WORD..WORD + 4].copy_from_slice(&SOL_UDP.to_ne_bytes());
    control[WORD + 4..WORD + 8].copy_from_slice(&UDP_SEGMENT.to_ne_bytes());
    let segment = u16::try_from(segment).unwrap_or(u16::MAX);
    control[header..header + 2].copy_from_slice(&segment.to_ne_bytes());
    control
}

/// `CMSG_SPACE(sizeof(u16))`: the header, two bytes, rounded up to pointer alignment.
const GSO_CONTROL_LEN: usize = {
    let word = std::mem::size_of::<usize>();
    (word + 8 + 2).div_ceil(word) * word
};

/// Marks the socket's packets for QoS as Sunshine does: DSCP 40 (CS5) for video, 56 (CS7) for
/// audio, and `SO_PRIORITY` 5 and 6 for the host's own queues. Best effort: a failure is logged.
pub fn mark_for_qos(socket: &UdpSocket, audio: bool) {
    use nix::sys::socket::{setsockopt, sockopt};
    let dscp: i32 = if audio { 56 } else { 40 };
    let priority: i32 = if audio { 6 } else { 5 };
    let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
    // A dual-stack socket sends IPv4 (to mapped addresses) with IP_TOS and IPv6 with the
    // traffic class: set both there.
    let mut result = setsockopt(socket, sockopt::IpTos, &(dscp << 2));
    if v6 {
        result = setsockopt(socket, sockopt::Ipv6TClass, &(dscp << 2)).and(result);
    }
    if let Err(error) = result.and(setsockopt(socket, sockopt::Priority, &priority)) {
        tracing::debug!(%error, audio, "cannot mark the media socket for QoS");
    }
}

/// Whether this kernel takes a GSO send on a loopback UDP socket (for the benchmark's report).
pub fn gso_supported() -> bool {
    let Ok(receiver) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let Ok(sender) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let Ok(destination) = receiver.local_addr() else {
        return false;
    };
    let payload = [0u8; 200];
    let slices = [IoSlice::new(&payload)];
    let control = gso_control(100);
    let address = SockAddr::from(destination);
    let message = MsgHdr::new()
        .with_addr(&address)
        .with_buffers(&slices)
        .with_control(&control);
    SockRef::from(&sender).sendmsg(&message, 0).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            while counters.packets_sent.load(Ordering::Relaxed) < sent * 20
                && Instant::now() < deadline
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
}
