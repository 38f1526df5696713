//! Sending a frame's packets in batches: runs of equal-sized packets as one UDP GSO `sendmsg`,
//! else one `sendmmsg` per run, else one `sendto` per packet; and the probe for GSO support.

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use socket2::{MsgHdr, SockAddr, SockRef};

use super::bucket::TokenBucket;
use crate::stream::counters::StreamCounters;

/// Most segments one GSO send may carry (the kernel's UDP_MAX_SEGMENTS on older kernels).
pub const MAX_SEGMENTS: usize = 64;
/// Most bytes one GSO send may carry (an IP datagram's limit, less headers).
const MAX_GSO_BYTES: usize = 65_000;
/// How long a send waits for room in the socket buffer before the packet counts as dropped.
const SEND_WAIT: Duration = Duration::from_millis(10);
/// `SOL_UDP` and `UDP_SEGMENT` from the kernel's headers.
const SOL_UDP: i32 = 17;
const UDP_SEGMENT: i32 = 103;

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
pub(super) fn gso_control(segment: usize) -> [u8; GSO_CONTROL_LEN] {
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
