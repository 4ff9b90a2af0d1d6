//! The socket layer under the channel: every read or write waits at most the idle time-out
//! and never past the deadline, below TLS, so a peer that trickles a byte at a time cannot
//! hold a session past it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

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
