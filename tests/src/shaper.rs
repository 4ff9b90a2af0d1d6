//! A user-space network emulator for the benchmark: a TCP relay between the client and the
//! server that gives each direction a bottleneck of a set bandwidth and a one-way delay of
//! half the round-trip time (`c3d-bench --net lan|wan`). The kernel's `tc netem` would do the
//! same between network namespaces, but it is not available everywhere (this project's
//! machines lack the `sch_netem` module), so the relay is the one used: bytes leave at the
//! link's rate, in order, and arrive RTT / 2 later.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An emulated link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    /// Bandwidth each way, Mbit/s.
    pub mbit: f64,
    /// Round-trip time, ms.
    pub rtt_ms: f64,
}

impl Link {
    /// The LAN: 1 Gbit/s, 0.5 ms RTT.
    pub const LAN: Link = Link {
        mbit: 1000.0,
        rtt_ms: 0.5,
    };
    /// The WAN: 200 Mbit/s, 40 ms RTT.
    pub const WAN: Link = Link {
        mbit: 200.0,
        rtt_ms: 40.0,
    };

    /// The link named `lan` or `wan`.
    pub fn named(name: &str) -> Option<Link> {
        match name {
            "lan" => Some(Link::LAN),
            "wan" => Some(Link::WAN),
            _ => None,
        }
    }
}

/// One direction: reads from `from`, hands each chunk to a writer that sends it once the
/// link has carried it (rate) and it has travelled (delay).
fn pipe(mut from: TcpStream, mut to: TcpStream, link: Link) -> JoinHandle<()> {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (at, chunk) in rx {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
    std::thread::spawn(move || {
        let delay = Duration::from_secs_f64(link.rtt_ms / 2000.0);
        let per_byte = 8.0 / (link.mbit * 1e6);
        let mut free = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let now = Instant::now();
            free = free.max(now) + Duration::from_secs_f64(n as f64 * per_byte);
            if tx.send((free + delay, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        drop(tx);
        let _ = writer.join();
    })
}

/// Relays one connection accepted on `listener` to `upstream` through `link` each way;
/// returns when both directions have closed.
pub fn relay_once(listener: TcpListener, upstream: String, link: Link) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let server = loop {
            match TcpStream::connect(&upstream) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => return,
        };
        let up = pipe(client, server, link);
        let down = pipe(s2, c2, link);
        let _ = up.join();
        let _ = down.join();
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_delays_and_paces_the_bytes() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_addr = echo.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = echo.accept().unwrap();
            let mut buf = vec![0u8; 1 << 20];
            let mut got = 0;
            while got < buf.len() {
                got += s.read(&mut buf[got..]).unwrap();
            }
            s.write_all(b"ok").unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").unwrap();
        let front_addr = front.local_addr().unwrap();
        // 80 Mbit/s and 100 ms: 1 MiB takes about 105 ms on the wire, plus 50 ms there and
        // 50 ms back for the answer.
        let link = Link {
            mbit: 80.0,
            rtt_ms: 100.0,
        };
        relay_once(front, echo_addr, link);
        let t = Instant::now();
        let mut c = TcpStream::connect(front_addr).unwrap();
        c.write_all(&vec![7u8; 1 << 20]).unwrap();
        let mut ans = [0u8; 2];
        c.read_exact(&mut ans).unwrap();
        let s = t.elapsed().as_secs_f64();
        assert_eq!(&ans, b"ok");
        // At least the link's time (the upper bound only catches a relay that hangs).
        assert!((0.2..10.0).contains(&s), "{s} s");
    }
}
