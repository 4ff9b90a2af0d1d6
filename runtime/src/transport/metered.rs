//! A stream wrapper that counts bytes each way in shared atomics, so another thread (a
//! progress display) can read the rates while the session runs.

use super::timed::Stream;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes moved so far, shared between the stream and its observers.
#[derive(Clone, Debug, Default)]
pub struct Meter {
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

impl Meter {
    /// Bytes written so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Bytes read so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// `S`, with every byte read or written counted in a [`Meter`].
pub struct Metered<S> {
    inner: S,
    meter: Meter,
}

impl<S> Metered<S> {
    /// Wraps `inner`; the returned stream counts into `meter`.
    pub fn new(inner: S, meter: Meter) -> Self {
        Metered { inner, meter }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Read> Read for Metered<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.received.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<S: Write> Write for Metered<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.meter.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<S: Stream> Stream for Metered<S> {
    fn set_limits(&mut self, timeout: Option<Duration>, deadline: Option<Instant>) {
        self.inner.set_limits(timeout, deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Channel, Timed};
    use crate::wire::Tag;
    use std::os::unix::net::UnixStream;

    #[test]
    fn the_meter_counts_what_the_channel_counts() {
        let (a, b) = UnixStream::pair().unwrap();
        let (a, b) = (Timed::new(a), Timed::new(b));
        let (ma, mb) = (Meter::default(), Meter::default());
        let mut ca = Channel::over(Metered::new(a, ma.clone()));
        let mut cb = Channel::over(Metered::new(b, mb.clone()));
        let t = std::thread::spawn(move || {
            let v = cb.recv_u64s(Tag::PublicKey, 1000).unwrap();
            cb.send_u64s(Tag::PublicKey, &v[..10]).unwrap();
            cb.flush().unwrap();
            cb.total()
        });
        ca.send_u64s(Tag::PublicKey, &[7u64; 1000]).unwrap();
        ca.flush().unwrap();
        let back = ca.recv_u64s(Tag::PublicKey, 10).unwrap();
        assert_eq!(back, vec![7u64; 10]);
        let tb = t.join().unwrap();
        let ta = ca.total();
        assert_eq!(ma.sent(), ta.sent);
        assert_eq!(ma.received(), ta.received);
        assert_eq!(mb.sent(), tb.sent);
        assert_eq!(mb.received(), tb.received);
        assert!(ma.sent() >= 8000);
    }
}
