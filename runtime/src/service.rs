//! The server's accept loop: one session per connection, at most `max_clients` at once, each
//! in its own thread. A session that fails, panics, stalls past its deadlines or loses its
//! peer ends alone; its slot is released by a guard on every path, so the server keeps
//! serving others.

use crate::he::Backend;
use crate::session::{self, server, Event, Report, ServerModel, SessionError};
use crate::tls::NetStream;
use crate::transport::{Channel, Meter, Metered};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How the server takes connections.
#[derive(Clone)]
pub struct ServeOptions {
    /// Sessions served at once; further connections wait for a free slot.
    pub max_clients: usize,
    /// Stop after this many connections (None: serve until stopped).
    pub sessions: Option<usize>,
    /// Longest wait for any one read or write.
    pub idle_timeout: Duration,
    /// TLS 1.3 on every connection (None: plain TCP).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_clients: 4,
            sessions: None,
            idle_timeout: Duration::from_secs(300),
            tls: None,
        }
    }
}

/// Sees every session's progress events, with the session's number and the bytes its
/// connection has moved.
pub type ProgressSink = Arc<dyn Fn(usize, &Event, &Meter) + Send + Sync>;
/// Called once per connection with how it ended.
pub type OutcomeSink = Arc<dyn Fn(Outcome) + Send + Sync>;

/// How one connection ended.
pub struct Outcome {
    /// Its number, from 1 in the order of acceptance.
    pub id: usize,
    /// The peer's address.
    pub peer: String,
    /// The server's report, or why the session ended.
    pub result: Result<Report, SessionError>,
}

/// A counting semaphore whose permits are returned when the guard drops, whatever the path
/// (normal return, error, panic).
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Slot(Arc<Slots>);

impl Slots {
    fn take(self: &Arc<Self>) -> Slot {
        let mut n = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *n == 0 {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n -= 1;
        Slot(self.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// Serves sessions of `model` on `listener` until `opts.sessions` connections were taken (or
/// for ever). `progress` sees every session's events with its number; `done` is called once
/// per connection with its outcome, from the session's thread. Returns when every session
/// started has ended.
pub fn serve<B: Backend + 'static>(
    model: Arc<ServerModel<B>>,
    listener: TcpListener,
    opts: &ServeOptions,
    progress: ProgressSink,
    done: OutcomeSink,
) {
    let slots = Arc::new(Slots {
        free: Mutex::new(opts.max_clients.max(1)),
        freed: Condvar::new(),
    });
    let mut handles = Vec::new();
    let mut accepted = 0usize;
    for conn in listener.incoming() {
        let tcp = match conn {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, say: back off instead of spinning.
                eprintln!("c3d-run server: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        accepted += 1;
        let slot = slots.take();
        let (model, opts2, progress, done) =
            (model.clone(), opts.clone(), progress.clone(), done.clone());
        let id = accepted;
        handles.push(std::thread::spawn(move || {
            let _slot = slot;
            let peer = tcp.peer_addr().map_or("?".into(), |a| a.to_string());
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let meter = Meter::default();
                let mut tick = |e: &Event| progress(id, e, &meter);
                serve_connection(&model, tcp, &opts2, meter.clone(), &mut tick)
            }))
            .unwrap_or_else(|p| Err(SessionError::Panic(session::panic_text(&*p))));
            done(Outcome { id, peer, result });
        }));
        handles.retain(|h| !h.is_finished());
        if opts.sessions.is_some_and(|n| accepted >= n) {
            break;
        }
    }
    for h in handles {
        let _ = h.join();
    }
}

/// One connection: TLS (if configured) and the session, under the model's handshake deadline
/// ([`session::deadline::HANDSHAKE`] if it has none), counted from the slot's start.
fn serve_connection<B: Backend>(
    model: &ServerModel<B>,
    tcp: std::net::TcpStream,
    opts: &ServeOptions,
    meter: Meter,
    progress: &mut dyn FnMut(&Event),
) -> Result<Report, SessionError> {
    tcp.set_nodelay(true)
        .map_err(|e| SessionError::Transport(crate::transport::TransportError::Io(e)))?;
    let handshake = model
        .deadlines()
        .handshake
        .unwrap_or(session::deadline::HANDSHAKE);
    let deadline = Instant::now() + handshake;
    let stream = match &opts.tls {
        Some(cfg) => NetStream::accept(cfg.clone(), tcp, deadline)?,
        None => NetStream::plain(tcp),
    };
    let mut ch = Channel::over(Metered::new(stream, meter));
    ch.set_timeout(Some(opts.idle_timeout))?;
    ch.set_deadline(Some(deadline), "handshake");
    let mut rng = ChaCha20Rng::from_os_rng();
    server::serve(model, &mut ch, &mut rng, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_released_on_panics_and_errors() {
        // Before the guard, a session that panicked kept its slot for ever: with one slot,
        // the second take below would wait for ever.
        let slots = Arc::new(Slots {
            free: Mutex::new(1),
            freed: Condvar::new(),
        });
        let s = slots.take();
        let t = std::thread::spawn(move || {
            let _slot = s;
            panic!("a session bug");
        });
        assert!(t.join().is_err());
        let again = slots.take();
        drop(again);
        let fails = || -> Result<(), ()> {
            let _slot = slots.take();
            Err(())
        };
        assert!(fails().is_err());
        assert_eq!(*slots.free.lock().unwrap(), 1);
    }
}
