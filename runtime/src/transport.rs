//! Framed, length-checked messages over a byte stream (TCP between the parties; a Unix socket
//! pair in tests). Counts bytes each way per protocol step, enforces time-outs, refuses
//! oversize or malformed frames before allocating, and streams large vectors in bounded chunks
//! so neither side holds a whole layer's payload at once.
//!
//! Frame: payload length (u32, little endian) | tag (u8) | payload.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Largest frame accepted by default (64 MiB).
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;
/// Elements per chunk when streaming u64 vectors (8 MiB frames).
pub const STREAM_CHUNK: usize = 1 << 20;
/// Tag of the chunks that follow a stream header.
pub const TAG_CHUNK: u8 = 0xFE;
/// Tag of the last frame a party sends when it gives up: the reason, in words.
pub const TAG_ABORT: u8 = 0xFD;
const HEADER: usize = 5;

/// What can go wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer closed the connection (possibly in the middle of a frame).
    #[error("the peer closed the connection")]
    Closed,
    /// No data within the time-out.
    #[error("no message from the peer within {0:?}")]
    Timeout(Duration),
    /// A frame announced more bytes than allowed.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    Oversize {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer gave up and said why.
    #[error("the peer stopped: {0}")]
    Aborted(String),
    /// A frame that does not fit the protocol.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Any other I/O failure.
    #[error("i/o error: {0}")]
    Io(io::Error),
}

/// Result alias for the transport.
pub type Result<T> = std::result::Result<T, TransportError>;

/// Streams the channel can run over.
pub trait Stream: Read + Write {
    /// Sets the read and write time-outs.
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }
}

impl Stream for UnixStream {
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }
}

/// Traffic of one protocol step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepStats {
    /// Bytes written, headers included.
    pub sent: u64,
    /// Bytes read, headers included.
    pub received: u64,
    /// Frames written.
    pub frames_sent: u64,
    /// Frames read.
    pub frames_received: u64,
    /// Round trips: reads that had to wait on the peer's answer to something just sent.
    pub rounds: u64,
}

/// A framed message channel.
pub struct Channel<S: Stream> {
    w: BufWriter<S>,
    r: S,
    max_frame: usize,
    timeout: Option<Duration>,
    step: String,
    stats: BTreeMap<String, StepStats>,
    sent_since_read: bool,
}

impl Channel<UnixStream> {
    /// A connected in-memory pair (a Unix socket pair), for tests and local runs.
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = UnixStream::pair().map_err(TransportError::Io)?;
        Ok((Channel::new(a)?, Channel::new(b)?))
    }
}

impl Channel<TcpStream> {
    /// Connects to a listening peer.
    pub fn connect(addr: impl std::net::ToSocketAddrs) -> Result<Self> {
        let s = TcpStream::connect(addr).map_err(TransportError::Io)?;
        s.set_nodelay(true).map_err(TransportError::Io)?;
        Channel::new(s)
    }
}

/// Streams that can be split into a reading and a writing handle.
pub trait TryClone: Sized {
    /// A second handle to the same stream.
    fn try_clone_stream(&self) -> io::Result<Self>;
}

impl TryClone for TcpStream {
    fn try_clone_stream(&self) -> io::Result<Self> {
        self.try_clone()
    }
}

impl TryClone for UnixStream {
    fn try_clone_stream(&self) -> io::Result<Self> {
        self.try_clone()
    }
}

fn io_err(e: io::Error, timeout: Option<Duration>) -> TransportError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            TransportError::Timeout(timeout.unwrap_or_default())
        }
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => TransportError::Closed,
        _ => TransportError::Io(e),
    }
}

impl<S: Stream + TryClone> Channel<S> {
    /// Wraps a connected stream (default limit 64 MiB, time-out 5 minutes).
    pub fn new(stream: S) -> Result<Self> {
        let r = stream.try_clone_stream().map_err(TransportError::Io)?;
        let mut c = Channel {
            w: BufWriter::with_capacity(1 << 16, stream),
            r,
            max_frame: DEFAULT_MAX_FRAME,
            timeout: None,
            step: "default".into(),
            stats: BTreeMap::new(),
            sent_since_read: false,
        };
        c.set_timeout(Some(Duration::from_secs(300)))?;
        Ok(c)
    }
}

impl<S: Stream> Channel<S> {
    /// Sets the time-out of every read and write.
    pub fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.timeout = t;
        self.r.set_timeouts(t).map_err(TransportError::Io)
    }

    /// Sets the largest frame accepted.
    pub fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max;
    }

    /// Names the protocol step that the following traffic is counted under.
    pub fn set_step(&mut self, step: &str) {
        self.step = step.to_string();
    }

    /// Traffic per step.
    pub fn stats(&self) -> &BTreeMap<String, StepStats> {
        &self.stats
    }

    /// Traffic over all steps.
    pub fn total(&self) -> StepStats {
        self.stats
            .values()
            .fold(StepStats::default(), |a, s| StepStats {
                sent: a.sent + s.sent,
                received: a.received + s.received,
                frames_sent: a.frames_sent + s.frames_sent,
                frames_received: a.frames_received + s.frames_received,
                rounds: a.rounds + s.rounds,
            })
    }

    fn entry(&mut self) -> &mut StepStats {
        self.stats.entry(self.step.clone()).or_default()
    }

    /// Sends one frame and flushes it.
    pub fn send(&mut self, tag: u8, payload: &[u8]) -> Result<()> {
        self.write_frame(tag, payload)?;
        self.flush()
    }

    fn write_frame(&mut self, tag: u8, payload: &[u8]) -> Result<()> {
        if payload.len() > self.max_frame {
            return Err(TransportError::Oversize {
                len: payload.len(),
                max: self.max_frame,
            });
        }
        let t = self.timeout;
        let mut h = [0u8; HEADER];
        h[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        h[4] = tag;
        self.w.write_all(&h).map_err(|e| io_err(e, t))?;
        self.w.write_all(payload).map_err(|e| io_err(e, t))?;
        self.sent_since_read = true;
        let e = self.entry();
        e.sent += (HEADER + payload.len()) as u64;
        e.frames_sent += 1;
        Ok(())
    }

    /// Tells the peer this side is giving up, and why (best effort: the peer may be gone).
    pub fn abort(&mut self, reason: &str) {
        let r = &reason.as_bytes()[..reason.len().min(4096)];
        let _ = self.send(TAG_ABORT, r);
    }

    /// Flushes buffered frames.
    pub fn flush(&mut self) -> Result<()> {
        let t = self.timeout;
        self.w.flush().map_err(|e| io_err(e, t))
    }

    /// Receives one frame of any tag.
    pub fn recv_any(&mut self) -> Result<(u8, Vec<u8>)> {
        self.flush()?;
        let t = self.timeout;
        let mut h = [0u8; HEADER];
        self.r.read_exact(&mut h).map_err(|e| io_err(e, t))?;
        let len = u32::from_le_bytes(h[..4].try_into().expect("4 bytes")) as usize;
        if len > self.max_frame {
            return Err(TransportError::Oversize {
                len,
                max: self.max_frame,
            });
        }
        let mut payload = vec![0u8; len];
        self.r.read_exact(&mut payload).map_err(|e| io_err(e, t))?;
        if h[4] == TAG_ABORT {
            let why = String::from_utf8_lossy(&payload[..payload.len().min(4096)]);
            return Err(TransportError::Aborted(why.into_owned()));
        }
        let turned = std::mem::take(&mut self.sent_since_read);
        let e = self.entry();
        e.received += (HEADER + len) as u64;
        e.frames_received += 1;
        e.rounds += turned as u64;
        Ok((h[4], payload))
    }

    /// Receives one frame that must carry `tag`.
    pub fn recv(&mut self, tag: u8) -> Result<Vec<u8>> {
        let (t, p) = self.recv_any()?;
        if t != tag {
            return Err(TransportError::Malformed(format!(
                "expected a message of tag {tag:#04x}, got {t:#04x}"
            )));
        }
        Ok(p)
    }

    /// Sends a vector of u64 as a header frame (its length) then chunks of at most
    /// [`STREAM_CHUNK`] elements, so the receiver can consume it piece by piece.
    pub fn send_u64s(&mut self, tag: u8, data: &[u64]) -> Result<()> {
        self.write_frame(tag, &(data.len() as u64).to_le_bytes())?;
        let mut buf = Vec::with_capacity(STREAM_CHUNK.min(data.len()) * 8);
        for chunk in data.chunks(STREAM_CHUNK) {
            buf.clear();
            for v in chunk {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            self.write_frame(TAG_CHUNK, &buf)?;
        }
        self.flush()
    }

    /// Receives a vector sent by [`Channel::send_u64s`], handing each chunk to `sink` as it
    /// arrives. `expected` is the length the protocol calls for: any other is refused before
    /// anything is read.
    pub fn recv_u64s_with(
        &mut self,
        tag: u8,
        expected: usize,
        mut sink: impl FnMut(&[u64]),
    ) -> Result<()> {
        let h = self.recv(tag)?;
        let n = <[u8; 8]>::try_from(h.as_slice())
            .map(u64::from_le_bytes)
            .map_err(|_| TransportError::Malformed("stream header is not 8 bytes".into()))?;
        if n != expected as u64 {
            return Err(TransportError::Malformed(format!(
                "expected {expected} values, the peer announced {n}"
            )));
        }
        let mut got = 0usize;
        let mut vals = Vec::new();
        while got < expected {
            let c = self.recv(TAG_CHUNK)?;
            let want = (expected - got).min(STREAM_CHUNK) * 8;
            if c.len() != want {
                return Err(TransportError::Malformed(format!(
                    "stream chunk of {} bytes, expected {want}",
                    c.len()
                )));
            }
            vals.clear();
            vals.extend(
                c.chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
            );
            sink(&vals);
            got += vals.len();
        }
        Ok(())
    }

    /// [`Channel::recv_u64s_with`] into one vector.
    pub fn recv_u64s(&mut self, tag: u8, expected: usize) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(expected.min(STREAM_CHUNK));
        self.recv_u64s_with(tag, expected, |c| out.extend_from_slice(c))?;
        Ok(out)
    }

    /// The raw stream, for tests that need to misbehave.
    pub fn raw_writer(&mut self) -> &mut BufWriter<S> {
        &mut self.w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn frames_and_streams_round_trip_with_matching_counters() {
        let (mut a, mut b) = Channel::pair().unwrap();
        let data: Vec<u64> = (0..(STREAM_CHUNK as u64 * 2 + 12345))
            .map(|i| i * 0x9E37_79B9)
            .collect();
        let d2 = data.clone();
        let h = thread::spawn(move || {
            a.set_step("offline");
            a.send(1, b"hello").unwrap();
            a.send_u64s(2, &d2).unwrap();
            a.set_step("online");
            a.send(3, &[]).unwrap();
            let echo = a.recv(4).unwrap();
            assert_eq!(echo, b"bye");
            a
        });
        b.set_step("offline");
        assert_eq!(b.recv(1).unwrap(), b"hello");
        let mut chunks = 0;
        let mut sum = 0u64;
        b.recv_u64s_with(2, data.len(), |c| {
            chunks += 1;
            assert!(c.len() <= STREAM_CHUNK);
            sum = c.iter().fold(sum, |s, v| s.wrapping_add(*v));
        })
        .unwrap();
        assert_eq!(chunks, 3);
        assert_eq!(sum, data.iter().fold(0u64, |s, v| s.wrapping_add(*v)));
        b.set_step("online");
        assert_eq!(b.recv(3).unwrap(), Vec::<u8>::new());
        b.send(4, b"bye").unwrap();
        let a = h.join().unwrap();
        for step in ["offline", "online"] {
            assert_eq!(a.stats()[step].sent, b.stats()[step].received, "{step}");
            assert_eq!(a.stats()[step].received, b.stats()[step].sent, "{step}");
        }
        let payload = 5 + 8 + data.len() as u64 * 8;
        assert_eq!(a.stats()["offline"].sent, payload + 5 * (2 + 3));
    }

    #[test]
    fn oversize_wrong_tag_and_wrong_length_are_refused() {
        let (mut a, mut b) = Channel::pair().unwrap();
        b.set_max_frame(1000);
        // An announced length past the limit is refused from the header alone.
        a.raw_writer()
            .write_all(&[0xFF, 0xFF, 0xFF, 0x7F, 1])
            .unwrap();
        a.flush().unwrap();
        assert!(matches!(
            b.recv(1),
            Err(TransportError::Oversize {
                len: 0x7FFF_FFFF,
                max: 1000
            })
        ));
        let (mut a, mut b) = Channel::pair().unwrap();
        a.send(9, b"x").unwrap();
        assert!(matches!(b.recv(1), Err(TransportError::Malformed(_))));
        a.send_u64s(2, &[1, 2, 3]).unwrap();
        let e = b.recv_u64s(2, 4).unwrap_err().to_string();
        assert!(e.contains("expected 4 values"), "{e}");
        let mut big = Channel::pair().unwrap().0;
        big.set_max_frame(4);
        assert!(matches!(
            big.send(1, b"12345"),
            Err(TransportError::Oversize { .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        for _ in 0..50 {
            let (mut a, mut b) = Channel::pair().unwrap();
            b.set_max_frame(1 << 16);
            b.set_timeout(Some(Duration::from_millis(50))).unwrap();
            let junk: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
            a.raw_writer().write_all(&junk).unwrap();
            a.flush().unwrap();
            drop(a);
            // Whatever the bytes say, the result is a message or an error.
            let _ = b.recv_u64s(3, 10);
            let _ = b.recv_any();
        }
    }

    #[test]
    fn silence_times_out_and_hang_up_is_closed() {
        let (a, mut b) = Channel::pair().unwrap();
        b.set_timeout(Some(Duration::from_millis(100))).unwrap();
        let t0 = std::time::Instant::now();
        assert!(matches!(b.recv(1), Err(TransportError::Timeout(_))));
        assert!(t0.elapsed() < Duration::from_secs(5));
        drop(a);
        assert!(matches!(b.recv(1), Err(TransportError::Closed)));
        // A peer that hangs up in the middle of a frame.
        let (mut a, mut b) = Channel::pair().unwrap();
        a.raw_writer().write_all(&[10, 0, 0, 0, 1, 1, 2]).unwrap();
        a.flush().unwrap();
        drop(a);
        assert!(matches!(b.recv(1), Err(TransportError::Closed)));
    }

    #[test]
    fn tcp_loopback() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut c = Channel::new(s).unwrap();
            let v = c.recv_u64s(7, 1000).unwrap();
            c.send(8, &(v.iter().sum::<u64>()).to_le_bytes()).unwrap();
        });
        let mut c = Channel::connect(addr).unwrap();
        c.send_u64s(7, &(0..1000).collect::<Vec<u64>>()).unwrap();
        assert_eq!(c.recv(8).unwrap(), 499500u64.to_le_bytes());
        h.join().unwrap();
    }
}
