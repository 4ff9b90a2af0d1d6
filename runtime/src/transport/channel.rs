//! The framed message channel: frames of one [`Tag`], vectors streamed in bounded chunks, and
//! traffic counted per protocol step.

use super::error::{io_err, AbortCode, Result, TransportError};
use super::timed::{Socket, Stream, Timed};
use crate::wire::Tag;
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Largest frame accepted by default (64 MiB).
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;
/// Elements per chunk when streaming u64 vectors (8 MiB frames).
pub const STREAM_CHUNK: usize = 1 << 20;
const HEADER: usize = 5;
/// Most bytes a frame's buffer grows by before the bytes have arrived: a peer that announces
/// a large frame and sends nothing costs this much, not the frame.
const GROW: usize = 1 << 20;

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
    pub fn send(&mut self, tag: Tag, payload: &[u8]) -> Result<()> {
        self.write_frame(tag, payload)?;
        self.flush()
    }

    fn write_frame(&mut self, tag: Tag, payload: &[u8]) -> Result<()> {
        if payload.len() > self.max_frame {
            return Err(TransportError::Oversize {
                len: payload.len(),
                max: self.max_frame,
            });
        }
        let mut h = [0u8; HEADER];
        h[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        h[4] = tag as u8;
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
        let _ = self.send(Tag::Abort, &code.code().to_le_bytes());
    }

    /// Flushes buffered frames.
    pub fn flush(&mut self) -> Result<()> {
        match self.s.flush() {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Receives one frame of any tag, as the raw byte (a peer may send any; see
    /// [`Tag::from_u8`]).
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
        if h[4] == Tag::Abort as u8 {
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
    pub fn recv(&mut self, tag: Tag) -> Result<Vec<u8>> {
        let (t, p) = self.recv_any()?;
        if t != tag as u8 {
            return Err(TransportError::Malformed(format!(
                "expected a message of tag {:#04x}, got {t:#04x}",
                tag as u8
            )));
        }
        Ok(p)
    }

    /// Sends a vector of u64 as a header frame (its length) then chunks of at most
    /// [`STREAM_CHUNK`] elements, so the receiver can consume it piece by piece.
    pub fn send_u64s(&mut self, tag: Tag, data: &[u64]) -> Result<()> {
        self.write_frame(tag, &(data.len() as u64).to_le_bytes())?;
        let mut buf = Vec::with_capacity(STREAM_CHUNK.min(data.len()) * 8);
        for chunk in data.chunks(STREAM_CHUNK) {
            buf.clear();
            for v in chunk {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            self.write_frame(Tag::Chunk, &buf)?;
        }
        self.flush()
    }

    /// Receives a vector sent by [`Channel::send_u64s`], handing each chunk to `sink` as it
    /// arrives. `expected` is the length the protocol calls for: any other is refused before
    /// anything is read.
    pub fn recv_u64s_with(
        &mut self,
        tag: Tag,
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
            let c = self.recv(Tag::Chunk)?;
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
    pub fn recv_u64s(&mut self, tag: Tag, expected: usize) -> Result<Vec<u64>> {
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
    use crate::transport::sanitize;
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
            a.send(Tag::Hello, b"hello").unwrap();
            a.send_u64s(Tag::Input, &d2).unwrap();
            a.set_step("online");
            a.send(Tag::Reveal, &[]).unwrap();
            let echo = a.recv(Tag::Accept).unwrap();
            assert_eq!(echo, b"bye");
            a
        });
        b.set_step("offline");
        assert_eq!(b.recv(Tag::Hello).unwrap(), b"hello");
        let mut chunks = 0;
        let mut sum = 0u64;
        b.recv_u64s_with(Tag::Input, data.len(), |c| {
            chunks += 1;
            assert!(c.len() <= STREAM_CHUNK);
            sum = c.iter().fold(sum, |s, v| s.wrapping_add(*v));
        })
        .unwrap();
        assert_eq!(chunks, 3);
        assert_eq!(sum, data.iter().fold(0u64, |s, v| s.wrapping_add(*v)));
        b.set_step("online");
        assert_eq!(b.recv(Tag::Reveal).unwrap(), Vec::<u8>::new());
        b.send(Tag::Accept, b"bye").unwrap();
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
            b.recv(Tag::Hello),
            Err(TransportError::Oversize {
                len: 0x7FFF_FFFF,
                max: 1000
            })
        ));
        let (mut a, mut b) = Channel::pair().unwrap();
        a.send(Tag::Refuse, b"x").unwrap();
        assert!(matches!(
            b.recv(Tag::Hello),
            Err(TransportError::Malformed(_))
        ));
        a.send_u64s(Tag::Input, &[1, 2, 3]).unwrap();
        let e = b.recv_u64s(Tag::Input, 4).unwrap_err().to_string();
        assert!(e.contains("expected 4 values"), "{e}");
        let mut big = Channel::pair().unwrap().0;
        big.set_max_frame(4);
        assert!(matches!(
            big.send(Tag::Hello, b"12345"),
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
            let _ = b.recv_u64s(Tag::Reveal, 10);
            let _ = b.recv_any();
        }
    }

    #[test]
    fn silence_times_out_and_hang_up_is_closed() {
        let (a, mut b) = Channel::pair().unwrap();
        b.set_timeout(Some(Duration::from_millis(100))).unwrap();
        let t0 = std::time::Instant::now();
        assert!(matches!(
            b.recv(Tag::Hello),
            Err(TransportError::Timeout(_))
        ));
        assert!(t0.elapsed() < Duration::from_secs(5));
        drop(a);
        assert!(matches!(b.recv(Tag::Hello), Err(TransportError::Closed)));
        // A peer that hangs up in the middle of a frame.
        let (mut a, mut b) = Channel::pair().unwrap();
        a.raw_writer().write_all(&[10, 0, 0, 0, 1, 1, 2]).unwrap();
        a.flush().unwrap();
        drop(a);
        assert!(matches!(b.recv(Tag::Hello), Err(TransportError::Closed)));
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
        a.send(Tag::Abort, b"/home/alice/secret.mp4: \x1b[2J")
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
            let v = c.recv_u64s(Tag::Input, 1000).unwrap();
            c.send(Tag::Reveal, &(v.iter().sum::<u64>()).to_le_bytes())
                .unwrap();
        });
        let mut c = Channel::connect(addr).unwrap();
        c.send_u64s(Tag::Input, &(0..1000).collect::<Vec<u64>>())
            .unwrap();
        assert_eq!(c.recv(Tag::Reveal).unwrap(), 499500u64.to_le_bytes());
        h.join().unwrap();
    }
}
