//! A fuzz loop over every message the server and the client parse: a session of a micro model
//! is recorded frame by frame, then replayed to each party with one frame mutated (bit flips,
//! a changed tag or length, truncation, extension, random bytes), the rest verbatim. Seeds
//! are fixed, so the replayed party answers as in the recording up to the mutated frame; what
//! it does with that frame is the test: it must end with an error or a result, never a panic,
//! a hang past its time-outs, or an allocation beyond the frame limit. Bounded in count and
//! time.

use c3d_compiler::Compiled;
use c3d_ir::Tensor;
use c3d_models::onnx_builder::{to_bytes, Attr, OnnxBuilder};
use c3d_runtime::he::fhers::FheRs;
use c3d_runtime::session::{server, ServerModel, SessionError};
use c3d_runtime::transport::{Channel, Stream, Timed, DEFAULT_MAX_FRAME};
use c3d_tests::faults::{client_session, frame};
use c3d_tests::{compile_default, inputs, server_model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The system allocator, recording the largest single allocation.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LARGEST.fetch_max(n, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

const SERVER_SEED: u64 = 41;
const CLIENT_SEED: u64 = 42;

/// A 3x2x4x4 clip through conv, ReLU, max-pool and a linear layer: every message kind of a
/// session (hello, key, OT, HE in and out, garbled tables and labels, masked input, reveal)
/// in a few hundred milliseconds.
fn micro(dir: &std::path::Path) -> Compiled {
    let mut b = OnnxBuilder::new();
    let w: Vec<f32> = (0..2 * 3 * 27)
        .map(|i| ((i * 7) % 11) as f32 / 40.0 - 0.12)
        .collect();
    let x = b.conv3x3x3("conv", "input", &w, &[0.01, -0.02]);
    let x = b.node("Relu", "/relu/Relu", &[&x], vec![]);
    let x = b.node(
        "MaxPool",
        "/pool/MaxPool",
        &[&x],
        vec![
            ("kernel_shape", Attr::Ints(vec![1, 2, 2])),
            ("strides", Attr::Ints(vec![1, 2, 2])),
        ],
    );
    let shape = b.const_i64(&[2], &[-1, 16]);
    let x = b.node("Reshape", "/Reshape", &[&x, &shape], vec![]);
    let fw: Vec<f32> = (0..3 * 16)
        .map(|i| ((i * 5) % 9) as f32 / 20.0 - 0.2)
        .collect();
    let y = b.linear("fc", &x, &fw, &[0.0, 0.1, -0.1]);
    let m = b.finish("micro", ("input", &[1, 3, 2, 4, 4]), (&y, &[1, 3]));
    let path = dir.join("micro.onnx");
    std::fs::write(&path, to_bytes(&m)).unwrap();
    compile_default(&path)
}

/// A Unix socket that copies what it writes into a shared log.
struct Recording {
    inner: Timed<UnixStream>,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Read for Recording {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        self.inner.read(b)
    }
}

impl Write for Recording {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.log.lock().unwrap().extend_from_slice(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

c3d_tests::stream_through_inner!(Recording);

/// A frame as it went over the wire.
#[derive(Clone)]
struct Frame {
    tag: u8,
    payload: Vec<u8>,
}

fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push(Frame {
            tag: bytes[at + 4],
            payload: bytes[at + 5..at + 5 + len].to_vec(),
        });
        at += 5 + len;
    }
    assert_eq!(at, bytes.len(), "the recording parses into whole frames");
    out
}

fn wire(fs: &[Frame]) -> Vec<u8> {
    fs.iter().flat_map(|f| frame(f.tag, &f.payload)).collect()
}

fn pair() -> (Timed<UnixStream>, Timed<UnixStream>) {
    let (a, b) = UnixStream::pair().unwrap();
    (Timed::new(a), Timed::new(b))
}

/// One honest session over recording sockets: (client's frames, server's frames).
fn record(c: &Compiled, model: &ServerModel<FheRs>, x: &Tensor<f32>) -> (Vec<Frame>, Vec<Frame>) {
    let (a, b) = pair();
    let (slog, clog) = (
        Arc::<Mutex<Vec<u8>>>::default(),
        Arc::<Mutex<Vec<u8>>>::default(),
    );
    let mut sch = Channel::over(Recording {
        inner: a,
        log: slog.clone(),
    });
    let mut cch = Channel::over(Recording {
        inner: b,
        log: clog.clone(),
    });
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = ChaCha20Rng::seed_from_u64(SERVER_SEED);
            server::serve(model, &mut sch, &mut rng, &mut |_| {}).unwrap();
        });
        run_client(c, &mut cch, x).unwrap();
    });
    let out = (frames(&clog.lock().unwrap()), frames(&slog.lock().unwrap()));
    out
}

fn run_client<S: Stream>(
    c: &Compiled,
    ch: &mut Channel<S>,
    x: &Tensor<f32>,
) -> Result<(), SessionError> {
    let mut rng = ChaCha20Rng::seed_from_u64(CLIENT_SEED);
    client_session(&c.plan, ch, x, &mut rng).map(|_| ())
}

/// Mutation `kind` of a frame.
fn mutate(f: &Frame, kind: u32, rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut g = f.clone();
    let n = g.payload.len();
    match kind {
        0 if n > 0 => {
            let i = rng.random_range(0..n);
            g.payload[i] ^= 1 << rng.random_range(0..8);
        }
        1 => g.tag = g.tag.wrapping_add(rng.random_range(1..=255u8)),
        2 if n > 0 => g.payload.truncate(rng.random_range(0..n)),
        3 => g
            .payload
            .extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
        4 => g.payload.iter_mut().for_each(|b| *b = rng.random()),
        5 => g.payload.iter_mut().for_each(|b| *b = 0xFF),
        // A header whose length disagrees with the bytes that follow.
        _ => {
            let mut b = wire(&[g]);
            let len = u32::from_le_bytes(b[..4].try_into().unwrap());
            let bad = match rng.random_range(0..3) {
                0 => len.wrapping_add(rng.random_range(1..1000)),
                1 => len / 2,
                _ => u32::MAX - rng.random_range(0..1000),
            };
            b[..4].copy_from_slice(&bad.to_le_bytes());
            return b;
        }
    }
    wire(&[g])
}

/// Feeds `bytes` to the party on the other end of `peer`, draining what it answers, then
/// hangs up.
fn feed(peer: Timed<UnixStream>, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let sock = peer.get_ref().try_clone().unwrap();
        let mut reader = sock.try_clone().unwrap();
        let drain = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        });
        let mut w = sock;
        let _ = w.write_all(&bytes);
        let _ = w.shutdown(std::net::Shutdown::Write);
        let _ = drain.join();
    })
}

/// Runs one party against `bytes` as its peer's messages.
fn replay(
    c: &Compiled,
    model: &ServerModel<FheRs>,
    x: &Tensor<f32>,
    to_srv: bool,
    bytes: Vec<u8>,
) -> Result<(), SessionError> {
    let (mine, theirs) = pair();
    let mut ch = Channel::over(mine);
    ch.set_timeout(Some(Duration::from_secs(2))).unwrap();
    let feeder = feed(theirs, bytes);
    let r = if to_srv {
        let mut srng = ChaCha20Rng::seed_from_u64(SERVER_SEED);
        server::serve(model, &mut ch, &mut srng, &mut |_| {}).map(|_| ())
    } else {
        run_client(c, &mut ch, x)
    };
    drop(ch);
    feeder.join().unwrap();
    r
}

#[test]
fn mutated_messages_never_panic_hang_or_overallocate() {
    let dir = tempfile::tempdir().unwrap();
    let c = micro(dir.path());
    let model = server_model(&c);
    let x = inputs(&c.plan, 1, 5).remove(0);
    let (to_server, to_client) = record(&c, &model, &x);
    // The replay premise: with the same seed, a party fed the recorded messages of its peer
    // finishes the session (fhe.rs draws part of its encryption randomness from the OS, so the
    // bytes differ from run to run, but the keys, masks and labels come from the seeds).
    for to_srv in [true, false] {
        let script = if to_srv { &to_server } else { &to_client };
        assert!(
            replay(&c, &model, &x, to_srv, wire(script)).is_ok(),
            "unmutated replay"
        );
    }
    let tags: std::collections::BTreeSet<u8> = to_server.iter().map(|f| f.tag).collect();
    assert!(
        tags.len() >= 6,
        "the recording covers the message kinds: {tags:?}"
    );
    LARGEST.store(0, Ordering::Relaxed);

    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let t0 = Instant::now();
    let cases = 160;
    let (mut errors, mut finished) = (0, 0);
    for case in 0..cases {
        let to_srv = case % 2 == 0;
        let script = if to_srv { &to_server } else { &to_client };
        let i = rng.random_range(0..script.len());
        let kind = rng.random_range(0..7);
        let mut bytes = wire(&script[..i]);
        bytes.extend(mutate(&script[i], kind, &mut rng));
        bytes.extend(wire(&script[i + 1..]));
        let started = Instant::now();
        let r = replay(&c, &model, &x, to_srv, bytes);
        let who = if to_srv { "server" } else { "client" };
        match &r {
            Err(SessionError::Panic(m)) => panic!(
                "case {case}: the {who} panicked on frame {i} (tag {:#04x}) mutated by kind {kind}: {m}",
                script[i].tag
            ),
            Err(_) => errors += 1,
            Ok(()) => finished += 1,
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "case {case}: the {who} took {:?} on frame {i}",
            started.elapsed()
        );
        if t0.elapsed() > Duration::from_secs(240) {
            break;
        }
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= DEFAULT_MAX_FRAME,
        "an allocation of {largest} bytes, beyond the {DEFAULT_MAX_FRAME}-byte frame limit"
    );
    eprintln!("fuzz: {errors} mutated sessions refused, {finished} finished (harmless mutations)");
    assert!(
        errors > cases / 2,
        "most mutations are refused: {errors} of {cases}"
    );
}
