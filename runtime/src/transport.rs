//! Framed, length-checked messages over a byte stream (TCP or TLS between the parties; a Unix
//! socket pair in tests). Counts bytes each way per protocol step, enforces an idle time-out
//! per read and write and an overall deadline (per phase), refuses oversize or malformed
//! frames before allocating, and streams large vectors in bounded chunks so neither side holds
//! a whole layer's payload at once.
//!
//! Frame: payload length (u32, little endian) | tag (u8) | payload.
//!
//! The deadline lives in the socket layer ([`Timed`]), below TLS: every read or write system
//! call waits at most until the deadline, so a peer that trickles a byte at a time cannot hold
//! a session past it.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Largest frame accepted by default (64 MiB).
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;
/// Elements per chunk when streaming u64 vectors (8 MiB frames).
pub const STREAM_CHUNK: usize = 1 << 20;
/// Tag of the chunks that follow a stream header.
pub const TAG_CHUNK: u8 = 0xFE;
/// Tag of the last frame a party sends when it gives up: an [`AbortCode`].
pub const TAG_ABORT: u8 = 0xFD;
const HEADER: usize = 5;
/// Most bytes a frame's buffer grows by before the bytes have arrived: a peer that announces
/// a large frame and sends nothing costs this much, not the frame.
const GROW: usize = 1 << 20;

/// Why a party gave up, as it tells its peer: a code with a fixed message, never the local
/// error text (which can carry paths or peer-supplied text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortCode {
    /// The peer's message did not fit the protocol.
    Protocol,
    /// A time-out or deadline passed.
    Timeout,
    /// The plan cannot run on this side.
    Plan,
    /// This side's input (clip, weights, spool) failed.
    Input,
    /// Cryptographic material from the peer was refused.
    Crypto,
    /// An internal failure on this side.
    Internal,
    /// A code this build does not know.
    Unknown(u16),
}

impl AbortCode {
    /// The wire value.
    pub fn code(self) -> u16 {
        match self {
            AbortCode::Protocol => 1,
            AbortCode::Timeout => 2,
            AbortCode::Plan => 3,
            AbortCode::Input => 4,
            AbortCode::Crypto => 5,
            AbortCode::Internal => 6,
            AbortCode::Unknown(c) => c,
        }
    }

    /// From the wire value.
    pub fn from_code(c: u16) -> Self {
        match c {
            1 => AbortCode::Protocol,
            2 => AbortCode::Timeout,
            3 => AbortCode::Plan,
            4 => AbortCode::Input,
            5 => AbortCode::Crypto,
            6 => AbortCode::Internal,
            c => AbortCode::Unknown(c),
        }
    }
}

impl std::fmt::Display for AbortCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AbortCode::Protocol => write!(f, "it refused a message of ours (protocol error)"),
            AbortCode::Timeout => write!(f, "it timed out"),
            AbortCode::Plan => write!(f, "its plan cannot run"),
            AbortCode::Input => write!(f, "its input failed"),
            AbortCode::Crypto => write!(f, "it refused our cryptographic material"),
            AbortCode::Internal => write!(f, "an internal error"),
            AbortCode::Unknown(c) => write!(f, "unknown reason (code {c})"),
        }
    }
}

/// Peer-supplied text made safe for a log line or a terminal: at most `max` characters,
/// control characters (escape sequences, newlines) and non-ASCII written as escapes.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

/// What can go wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer closed the connection (possibly in the middle of a frame).
    #[error("the peer closed the connection")]
    Closed,
    /// No data within the time-out.
    #[error("no message from the peer within {0:?}")]
    Timeout(Duration),
    /// The deadline of the current phase passed.
    #[error("the {0} deadline passed")]
    Deadline(String),
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
    Aborted(AbortCode),
    /// A frame that does not fit the protocol.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The TLS layer failed (handshake, certificate, record).
    #[error("TLS: {0}")]
    Tls(String),
    /// Any other I/O failure.
    #[error("i/o error: {0}")]
    Io(io::Error),
}

/// Result alias for the transport.
pub type Result<T> = std::result::Result<T, TransportError>;

/// Streams the channel can run over.
pub trait Stream: Read + Write {
    /// Sets the idle time-out of each read and write, and the deadline after which every read
    /// and write fails with [`io::ErrorKind::TimedOut`].
    fn set_limits(&mut self, timeout: Option<Duration>, deadline: Option<Instant>);
}

/// Sockets whose read and write time-outs can be set.
pub trait Socket: Read + Write {
    /// Sets the read time-out (None: wait forever).
    fn set_read(&self, t: Option<Duration>) -> io::Result<()>;
    /// Sets the write time-out (None: wait forever).
    fn set_write(&self, t: Option<Duration>) -> io::Result<()>;
}

impl Socket for TcpStream {
    fn set_read(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }
    fn set_write(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_write_timeout(t)
    }
}

impl Socket for UnixStream {
    fn set_read(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }
    fn set_write(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_write_timeout(t)
    }
}

/// How far past the deadline one call may wait: the socket is re-armed only when the time-out
/// it holds would overrun the deadline by more (one system call a second, not one a read).
const REARM_SLACK: Duration = Duration::from_secs(1);

/// A socket whose every read and write waits at most the idle time-out and never (beyond
/// [`REARM_SLACK`]) past the deadline.
pub struct Timed<T: Socket> {
    sock: T,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    /// The time-outs the socket holds now, read and write (None: not set yet).
    armed: [Option<Option<Duration>>; 2],
}

impl<T: Socket> Timed<T> {
    /// Wraps a socket (no time-out, no deadline).
    pub fn new(sock: T) -> Self {
        Timed {
            sock,
            timeout: None,
            deadline: None,
            armed: [None, None],
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &T {
        &self.sock
    }

    /// Arms the socket for one read (`dir` 0) or write (1): the shorter of the idle time-out
    /// and the time left, unless what it holds is already within [`REARM_SLACK`] of that.
    fn arm(&mut self, dir: usize) -> io::Result<()> {
        let left = match self.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
                }
                Some(left)
            }
            None => None,
        };
        // A zero duration means "forever" to the socket API: never pass one.
        let want = match (self.timeout, left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|t| t.max(Duration::from_millis(1)));
        let fine = match (self.armed[dir], want) {
            (Some(held), want) if held == want => true,
            (Some(Some(held)), Some(want)) => held >= want && held <= want + REARM_SLACK,
            _ => false,
        };
        if !fine {
            if dir == 0 {
                self.sock.set_read(want)?;
            } else {
                self.sock.set_write(want)?;
            }
            self.armed[dir] = Some(want);
        }
        Ok(())
    }
}

impl<T: Socket> Read for Timed<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(0)?;
        self.sock.read(buf)
    }
}

impl<T: Socket> Write for Timed<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(1)?;
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

impl<T: Socket> Stream for Timed<T> {
    fn set_limits(&mut self, timeout: Option<Duration>, deadline: Option<Instant>) {
        self.timeout = timeout;
        self.deadline = deadline;
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
    s: BufWriter<S>,
    max_frame: usize,
    timeout: Option<Duration>,
    deadline: Option<(Instant, String)>,
    step: String,
    stats: BTreeMap<String, StepStats>,
    sent_since_read: bool,
}

/// A channel over a Unix socket pair (tests, benches).
pub type Pipe = Channel<Timed<UnixStream>>;

impl Channel<Timed<UnixStream>> {
    /// A connected in-memory pair (a Unix socket pair), for tests and local runs.
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = UnixStream::pair().map_err(TransportError::Io)?;
        Ok((Channel::new(a)?, Channel::new(b)?))
    }
}

impl Channel<Timed<TcpStream>> {
    /// Connects to a listening peer.
    pub fn connect(addr: impl std::net::ToSocketAddrs) -> Result<Self> {
        let s = TcpStream::connect(addr).map_err(TransportError::Io)?;
        s.set_nodelay(true).map_err(TransportError::Io)?;
        Channel::new(s)
    }
}

fn io_err(
    e: io::Error,
    timeout: Option<Duration>,
    deadline: &Option<(Instant, String)>,
) -> TransportError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => match deadline {
            Some((d, phase)) if Instant::now() >= *d => TransportError::Deadline(phase.clone()),
            _ => TransportError::Timeout(timeout.unwrap_or_default()),
        },
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => TransportError::Closed,
        // rustls reports its failures (bad certificate, bad record) as InvalidData with the
        // rustls error inside.
        io::ErrorKind::InvalidData if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
            TransportError::Tls(e.to_string())
        }
        _ => TransportError::Io(e),
    }
}

impl<T: Socket> Channel<Timed<T>> {
    /// Wraps a connected socket (default limit 64 MiB, time-out 5 minutes).
    pub fn new(sock: T) -> Result<Self> {
        Ok(Channel::over(Timed::new(sock)))
    }
}

impl<S: Stream> Channel<S> {
    /// A channel over any stream (a TLS stream, say): default limit 64 MiB, time-out 5
    /// minutes, no deadline.
    pub fn over(stream: S) -> Self {
        let mut c = Channel {
            s: BufWriter::with_capacity(1 << 16, stream),
            max_frame: DEFAULT_MAX_FRAME,
            timeout: None,
            deadline: None,
            step: "default".into(),
            stats: BTreeMap::new(),
            sent_since_read: false,
        };
        c.set_timeout(Some(Duration::from_secs(300)))
            .expect("setting limits does not fail");
        c
    }

    /// The stream (its buffered writes not yet flushed).
    pub fn get_ref(&self) -> &S {
        self.s.get_ref()
    }

    /// Sets the time-out of every read and write.
    pub fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.timeout = t;
        let d = self.deadline.as_ref().map(|(d, _)| *d);
        self.s.get_mut().set_limits(t, d);
        Ok(())
    }

    /// Sets the deadline of everything that follows (None: no deadline); `phase` names it in
    /// the error when it passes.
    pub fn set_deadline(&mut self, deadline: Option<Instant>, phase: &str) {
        self.deadline = deadline.map(|d| (d, phase.to_string()));
        self.s.get_mut().set_limits(self.timeout, deadline);
    }

    /// The deadline in force, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.as_ref().map(|(d, _)| *d)
    }

    fn fail(&self, e: io::Error) -> TransportError {
        io_err(e, self.timeout, &self.deadline)
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
        let mut h = [0u8; HEADER];
        h[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        h[4] = tag;
        if let Err(e) = self.s.write_all(&h) {
            return Err(self.fail(e));
        }
        if let Err(e) = self.s.write_all(payload) {
            return Err(self.fail(e));
        }
        self.sent_since_read = true;
        let e = self.entry();
        e.sent += (HEADER + payload.len()) as u64;
        e.frames_sent += 1;
        Ok(())
    }

    /// Tells the peer this side is giving up, and why (best effort: the peer may be gone).
    /// Only the code crosses the wire.
    pub fn abort(&mut self, code: AbortCode) {
        let _ = self.send(TAG_ABORT, &code.code().to_le_bytes());
    }

    /// Flushes buffered frames.
    pub fn flush(&mut self) -> Result<()> {
        match self.s.flush() {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Receives one frame of any tag.
    pub fn recv_any(&mut self) -> Result<(u8, Vec<u8>)> {
        self.flush()?;
        let mut h = [0u8; HEADER];
        if let Err(e) = self.s.get_mut().read_exact(&mut h) {
            return Err(self.fail(e));
        }
        let len = u32::from_le_bytes(h[..4].try_into().expect("4 bytes")) as usize;
        if len > self.max_frame {
            return Err(TransportError::Oversize {
                len,
                max: self.max_frame,
            });
        }
        // The buffer grows with the bytes that arrive, not with the announced length: the
        // first GROW bytes, then (once they are here) the rest at once.
        let mut payload = vec![0u8; len.min(GROW)];
        if let Err(e) = self.s.get_mut().read_exact(&mut payload) {
            return Err(self.fail(e));
        }
        if len > GROW {
            payload.resize(len, 0);
            if let Err(e) = self.s.get_mut().read_exact(&mut payload[GROW..]) {
                return Err(self.fail(e));
            }
        }
        if h[4] == TAG_ABORT {
            let code = <[u8; 2]>::try_from(payload.as_slice())
                .map(u16::from_le_bytes)
                .unwrap_or(0);
            return Err(TransportError::Aborted(AbortCode::from_code(code)));
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
        &mut self.s
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
    fn a_trickling_peer_is_cut_at_the_deadline() {
        // One byte every 50 ms never trips a 200 ms idle time-out; the deadline cuts it.
        let (mut a, mut b) = Channel::pair().unwrap();
        b.set_timeout(Some(Duration::from_millis(200))).unwrap();
        b.set_deadline(
            Some(Instant::now() + Duration::from_millis(600)),
            "handshake",
        );
        let h = thread::spawn(move || {
            for _ in 0..100 {
                if a.raw_writer().write_all(&[1]).is_err() || a.flush().is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        let t0 = Instant::now();
        let e = b.recv_any().unwrap_err();
        assert!(
            matches!(&e, TransportError::Deadline(p) if p == "handshake"),
            "{e}"
        );
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        drop(b);
        h.join().unwrap();
    }

    #[test]
    fn aborts_carry_a_code_only_and_peer_text_is_escaped() {
        let (mut a, mut b) = Channel::pair().unwrap();
        a.abort(AbortCode::Input);
        assert!(matches!(
            b.recv_any(),
            Err(TransportError::Aborted(AbortCode::Input))
        ));
        // An abort frame with text (an old or hostile peer) yields a code, not the text.
        a.send(TAG_ABORT, b"/home/alice/secret.mp4: \x1b[2J")
            .unwrap();
        let e = b.recv_any().unwrap_err().to_string();
        assert!(!e.contains("alice") && !e.contains('\x1b'), "{e}");
        let evil = "ok\x1b[2J\x1b]0;pwned\x07\nnext line \u{202e}";
        let clean = sanitize(evil, 100);
        assert!(
            clean.chars().all(|c| c.is_ascii_graphic() || c == ' '),
            "{clean}"
        );
        assert!(
            clean.contains("\\u{1b}") && clean.contains("\\n"),
            "{clean}"
        );
        assert_eq!(
            sanitize(&"x".repeat(500), 10),
            format!("{}...", "x".repeat(10))
        );
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
