//! Load and fault test of the server's accept loop (`c3d_runtime::service`), in process over
//! loopback TCP: honest clients at twice `max_clients`, together with hostile ones at every
//! protocol step (garbage, an oversize header, a wrong tag, a bad public key, idle and
//! trickling connections before the handshake, a stall after it, disconnects at byte counts
//! spread over both phases). Every honest result must equal the plaintext simulation bit for
//! bit, every hostile connection must end in an error of its own, and the server must go on
//! serving; a final honest client after all of them proves it still does.

use c3d_ir::{simulate, Plan, Tensor};
use c3d_runtime::he::fhers::FheRs;
use c3d_runtime::service::{self, Outcome, ServeOptions};
use c3d_runtime::session::{client, ClientOptions, Deadlines};
use c3d_runtime::transport::{Channel, Stream, Timed};
use c3d_tests::{compile_default, export, inputs, server_model};
use rand::SeedableRng;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A client stream that breaks after `left` bytes have crossed it either way, as a peer that
/// vanishes mid-phase does.
struct Cut {
    inner: Timed<TcpStream>,
    left: usize,
}

impl Cut {
    fn spend(&mut self, n: usize) -> io::Result<usize> {
        if self.left == 0 {
            let _ = self.inner.get_ref().shutdown(Shutdown::Both);
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = n.min(self.left);
        self.left -= n;
        Ok(n)
    }
}

impl Read for Cut {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.spend(buf.len())?;
        self.inner.read(&mut buf[..n])
    }
}

impl Write for Cut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.spend(buf.len())?;
        self.inner.write(&buf[..n])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Stream for Cut {
    fn set_limits(&mut self, t: Option<Duration>, d: Option<Instant>) {
        self.inner.set_limits(t, d)
    }
    fn past_deadline(&self) -> bool {
        self.inner.past_deadline()
    }
}

/// An honest client's whole session over `ch`; returns the revealed integers.
fn honest<S: Stream>(
    plan: &Plan,
    ch: &mut Channel<S>,
    x: &Tensor<f32>,
) -> Result<Vec<i64>, String> {
    let be = FheRs::new(plan.fixed.p).unwrap();
    let hash = plan.hash().unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let prep = client::offline(
        plan,
        &hash,
        &be,
        ch,
        &ClientOptions::default(),
        &mut rng,
        &mut |_| {},
    )
    .map_err(|e| e.to_string())?;
    let (out, _) = prep.online(ch, x, &mut |_| {}).map_err(|e| e.to_string())?;
    Ok(out.revealed.data)
}

/// A valid hello for `plan`, as the handshake writes it.
fn hello(plan: &Plan) -> Vec<u8> {
    let mut b = b"C3DRUN\0\0".to_vec();
    b.extend_from_slice(&c3d_runtime::session::handshake::PROTOCOL_VERSION.to_le_bytes());
    b.extend_from_slice(&plan.hash().unwrap());
    b.extend_from_slice(b"fhe.rs");
    b
}

fn frame(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_le_bytes().to_vec();
    f.push(tag);
    f.extend_from_slice(payload);
    f
}

/// Writes `bytes`, then reads until the server hangs up (or 200 s pass: the connection may
/// wait for a slot behind the honest sessions).
fn send_and_drain(addr: &str, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(200))).unwrap();
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
}

#[test]
fn server_survives_hostile_clients_among_honest_ones() {
    let dir = tempfile::tempdir().unwrap();
    let c = compile_default(&export(dir.path(), "c3d-tiny", None, 11));
    let plan = c.plan.clone();
    let xs = inputs(&plan, 5, 99);
    let want: Vec<Vec<i64>> = xs
        .iter()
        .map(|x| simulate(&plan, &c.weights, x).unwrap().revealed.data)
        .collect();
    // Short limits so stalled peers are dropped in seconds; phases keep their sized deadline.
    let model = Arc::new(server_model(&c).with_deadlines(Deadlines {
        handshake: Some(Duration::from_secs(2)),
        phase: None,
    }));
    let max_clients = 2;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();

    // Hostile connections, by kind; each one is a connection the server must end with an error.
    let cuts = [600usize, 20_000, 400_000, 3_000_000];
    let hostile_kinds = [
        "idle before the handshake",
        "idle before the handshake",
        "trickles one byte at a time",
        "garbage bytes",
        "oversize header",
        "wrong tag after the hello",
        "garbage public key",
        "stalls after the handshake",
    ];
    let honest_n = 2 * max_clients;
    let total = hostile_kinds.len() + cuts.len() + honest_n + 1;
    let opts = ServeOptions {
        max_clients,
        sessions: Some(total),
        idle_timeout: Duration::from_secs(3),
        handshake_timeout: Duration::from_secs(2),
        tls: None,
    };
    let outcomes: Arc<Mutex<Vec<(usize, bool, String)>>> = Arc::default();
    let sink = outcomes.clone();
    let server = {
        let model = model.clone();
        std::thread::spawn(move || {
            service::serve(
                model,
                listener,
                &opts,
                Arc::new(|_, _| {}),
                Arc::new(move |o: Outcome| {
                    let msg = o
                        .result
                        .as_ref()
                        .err()
                        .map_or(String::new(), |e| e.to_string());
                    sink.lock().unwrap().push((o.id, o.result.is_ok(), msg));
                }),
            )
        })
    };

    let t0 = Instant::now();
    std::thread::scope(|s| {
        let (plan, addr) = (&plan, addr.as_str());
        // Idle and trickling connections first: they take the slots the honest clients want.
        for kind in &hostile_kinds[..3] {
            let trickle = kind.starts_with("trickles");
            s.spawn(move || {
                let mut t = TcpStream::connect(addr).unwrap();
                t.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let h = frame(0x01, &hello(plan));
                for k in 0..300 {
                    if trickle && t.write_all(&h[k % h.len()..][..1]).is_err() {
                        return;
                    }
                    let mut b = [0u8; 64];
                    match t.read(&mut b) {
                        Ok(0) => return,
                        Err(e) if e.kind() != io::ErrorKind::WouldBlock => return,
                        _ => {}
                    }
                }
                panic!("the server kept a stalled connection for a minute");
            });
        }
        std::thread::sleep(Duration::from_millis(200));
        let honest_handles: Vec<_> = (0..honest_n)
            .map(|k| {
                let x = &xs[k];
                s.spawn(move || {
                    let mut ch = Channel::connect(addr).unwrap();
                    honest(plan, &mut ch, x)
                })
            })
            .collect();
        s.spawn(move || send_and_drain(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        s.spawn(move || send_and_drain(addr, &[0xFF, 0xFF, 0xFF, 0xFF, 0x01]));
        s.spawn(move || {
            let mut b = frame(0x01, &hello(plan));
            b.extend(frame(0x61, b"not the public key"));
            send_and_drain(addr, &b)
        });
        s.spawn(move || {
            let mut b = frame(0x01, &hello(plan));
            b.extend(frame(0x05, &[0x5Au8; 4096]));
            send_and_drain(addr, &b)
        });
        s.spawn(move || {
            // A valid hello, then silence: dropped at the idle time-out.
            send_and_drain(addr, &frame(0x01, &hello(plan)))
        });
        for &n in &cuts {
            let x = &xs[0];
            s.spawn(move || {
                let tcp = TcpStream::connect(addr).unwrap();
                let mut ch = Channel::over(Cut {
                    inner: Timed::new(tcp),
                    left: n,
                });
                assert!(
                    honest(plan, &mut ch, x).is_err(),
                    "a cut client cannot finish"
                );
            });
        }
        for (k, h) in honest_handles.into_iter().enumerate() {
            let got = h
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("honest client {k}: {e}"));
            assert_eq!(
                got, want[k],
                "honest client {k} differs from the simulation"
            );
        }
    });
    // After all of that, one more honest client is served.
    let mut ch = Channel::connect(addr.as_str()).unwrap();
    assert_eq!(honest(&plan, &mut ch, &xs[4]).unwrap(), want[4]);
    server.join().unwrap();
    let outcomes = outcomes.lock().unwrap();
    let ok = outcomes.iter().filter(|o| o.1).count();
    let failed: Vec<&String> = outcomes.iter().filter(|o| !o.1).map(|o| &o.2).collect();
    assert_eq!(
        outcomes.len(),
        total,
        "every connection ended and was reported"
    );
    assert_eq!(
        ok,
        honest_n + 1,
        "only the honest sessions succeed: {failed:?}"
    );
    assert_eq!(failed.len(), hostile_kinds.len() + cuts.len());
    let timeouts = failed
        .iter()
        .filter(|m| m.contains("deadline") || m.contains("within"))
        .count();
    assert!(
        timeouts >= 4,
        "idle, trickling and stalled peers time out: {failed:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(240),
        "took {:?}",
        t0.elapsed()
    );
}
