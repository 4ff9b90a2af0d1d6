//! Hostile peers for the load and fault tests (`tests/faults.rs`) and the soak run
//! (`c3d-soak`): each fault is one connection that misbehaves at one protocol step; honest
//! clients run the whole session for comparison with the simulation.

use c3d_ir::{Plan, Tensor};
use c3d_runtime::he::fhers::FheRs;
use c3d_runtime::session::{client_offline, client_online, ClientOptions, SessionError};
use c3d_runtime::transport::{Channel, Stream, Timed};
use c3d_runtime::wire::Tag;
use rand::SeedableRng;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// `Stream` for a test wrapper whose socket is its `inner` field: the limits go to it.
#[macro_export]
macro_rules! stream_through_inner {
    ($t:ty) => {
        impl c3d_runtime::transport::Stream for $t {
            fn set_limits(
                &mut self,
                t: Option<std::time::Duration>,
                d: Option<std::time::Instant>,
            ) {
                c3d_runtime::transport::Stream::set_limits(&mut self.inner, t, d)
            }
        }
    };
}

/// One kind of hostile connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Connects and sends nothing.
    IdleBeforeHello,
    /// Sends its hello one byte at a time, slowly.
    Trickle,
    /// Bytes that are not the protocol.
    Garbage,
    /// A header announcing a 4 GiB frame.
    Oversize,
    /// A valid hello, then a message of the wrong tag.
    WrongTag,
    /// A valid hello, then bytes that are not a public key.
    BadKey,
    /// A valid hello, then silence.
    StallAfterHello,
    /// A valid hello, then a public key whose first polynomial is in power-basis form (it
    /// used to panic the server at its first flood).
    PowerBasisKey,
    /// An honest client whose first offline ciphertext is rewritten with a polynomial in
    /// power-basis form (it used to panic the server's plaintext products).
    PowerBasisCiphertext,
    /// An honest client whose connection breaks after this many bytes either way.
    Cut(usize),
}

impl Fault {
    /// Every kind, with cuts spread over the setup, offline and online phases of c3d-tiny.
    pub fn all() -> Vec<Fault> {
        let mut v = vec![
            Fault::IdleBeforeHello,
            Fault::Trickle,
            Fault::Garbage,
            Fault::Oversize,
            Fault::WrongTag,
            Fault::BadKey,
            Fault::StallAfterHello,
            Fault::PowerBasisKey,
            Fault::PowerBasisCiphertext,
        ];
        v.extend([600, 20_000, 400_000, 3_000_000].map(Fault::Cut));
        v
    }

    /// Whether the server should end it by a time-out or deadline.
    pub fn times_out(self) -> bool {
        matches!(
            self,
            Fault::IdleBeforeHello | Fault::Trickle | Fault::StallAfterHello
        )
    }

    /// A short name for tables.
    pub fn name(self) -> String {
        match self {
            Fault::IdleBeforeHello => "idle before the hello".into(),
            Fault::Trickle => "trickles a byte at a time".into(),
            Fault::Garbage => "garbage bytes".into(),
            Fault::Oversize => "oversize header (4 GiB)".into(),
            Fault::WrongTag => "wrong tag after the hello".into(),
            Fault::BadKey => "bad public key".into(),
            Fault::StallAfterHello => "stalls after the hello".into(),
            Fault::PowerBasisKey => "public key in power-basis form".into(),
            Fault::PowerBasisCiphertext => "offline ciphertext in power-basis form".into(),
            Fault::Cut(n) => format!("disconnects after {n} bytes"),
        }
    }
}

/// A client stream that breaks after `left` bytes have crossed it either way, as a peer that
/// vanishes mid-phase does.
pub struct Cut {
    /// The socket.
    pub inner: Timed<TcpStream>,
    /// Bytes left before it breaks.
    pub left: usize,
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

stream_through_inner!(Cut);

/// A client's whole session over `ch` with its randomness from `rng`; returns the revealed
/// integers.
pub fn client_session<S: Stream, R: rand::Rng + rand::CryptoRng>(
    plan: &Plan,
    ch: &mut Channel<S>,
    x: &Tensor<f32>,
    rng: &mut R,
) -> Result<Vec<i64>, SessionError> {
    let be = FheRs::new(plan.fixed.p).map_err(SessionError::He)?;
    let hash = plan.hash()?;
    let opts = ClientOptions::default();
    let prep = client_offline(plan, &hash, &be, ch, &opts, rng, &mut |_| {})?;
    let (out, _) = client_online(prep, ch, x, &mut |_| {})?;
    Ok(out.revealed.data)
}

/// An honest client's whole session over `ch` (randomness from the OS); returns the revealed
/// integers.
pub fn honest<S: Stream>(
    plan: &Plan,
    ch: &mut Channel<S>,
    x: &Tensor<f32>,
) -> Result<Vec<i64>, String> {
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    client_session(plan, ch, x, &mut rng).map_err(|e| e.to_string())
}

/// A valid hello for `plan`, as the handshake writes it.
pub fn hello(plan: &Plan) -> Vec<u8> {
    let mut b = b"C3DRUN\0\0".to_vec();
    b.extend_from_slice(&c3d_runtime::session::handshake::PROTOCOL_VERSION.to_le_bytes());
    b.extend_from_slice(&plan.hash().unwrap());
    b.extend_from_slice(b"fhe.rs");
    b
}

/// One wire frame as the transport writes it: length, tag, payload.
pub fn frame(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_le_bytes().to_vec();
    f.push(tag);
    f.extend_from_slice(payload);
    f
}

/// Writes `bytes`, then reads until the server hangs up (or 200 s pass: the connection may
/// wait for a slot behind the honest sessions).
pub fn send_and_drain(addr: &str, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(200))).unwrap();
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
}

/// Runs one hostile connection against the server at `addr` until the server drops it (a
/// stalled connection that the server keeps for a minute is a failure: Err).
pub fn inject(fault: Fault, plan: &Plan, addr: &str, x: &Tensor<f32>) -> Result<(), String> {
    match fault {
        Fault::IdleBeforeHello | Fault::Trickle => {
            let mut t = TcpStream::connect(addr).map_err(|e| e.to_string())?;
            t.set_read_timeout(Some(Duration::from_millis(200)))
                .map_err(|e| e.to_string())?;
            let h = frame(Tag::Hello as u8, &hello(plan));
            for k in 0..300 {
                if fault == Fault::Trickle && t.write_all(&h[k % h.len()..][..1]).is_err() {
                    return Ok(());
                }
                let mut b = [0u8; 64];
                match t.read(&mut b) {
                    Ok(0) => return Ok(()),
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Ok(()),
                    _ => {}
                }
            }
            Err("the server kept a stalled connection for a minute".into())
        }
        Fault::Garbage => {
            send_and_drain(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            Ok(())
        }
        Fault::Oversize => {
            send_and_drain(addr, &[0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
            Ok(())
        }
        Fault::WrongTag => {
            let mut b = frame(Tag::Hello as u8, &hello(plan));
            b.extend(frame(Tag::Reveal as u8, b"not the public key"));
            send_and_drain(addr, &b);
            Ok(())
        }
        Fault::BadKey => {
            let mut b = frame(Tag::Hello as u8, &hello(plan));
            b.extend(frame(Tag::PublicKey as u8, &[0x5Au8; 4096]));
            send_and_drain(addr, &b);
            Ok(())
        }
        Fault::StallAfterHello => {
            send_and_drain(addr, &frame(Tag::Hello as u8, &hello(plan)));
            Ok(())
        }
        Fault::PowerBasisKey => {
            let mut b = frame(Tag::Hello as u8, &hello(plan));
            b.extend(frame(
                Tag::PublicKey as u8,
                &power_basis_public_key(plan.fixed.p),
            ));
            send_and_drain(addr, &b);
            Ok(())
        }
        Fault::PowerBasisCiphertext => {
            let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
            let mut ch = Channel::over(Tamper {
                inner: Timed::new(tcp),
                p: plan.fixed.p,
                pending: Vec::new(),
                done: false,
            });
            match honest(plan, &mut ch, x) {
                Err(_) => Ok(()),
                Ok(_) => Err("a session with a power-basis ciphertext finished".into()),
            }
        }
        Fault::Cut(n) => {
            let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
            let mut ch = Channel::over(Cut {
                inner: Timed::new(tcp),
                left: n,
            });
            match honest(plan, &mut ch, x) {
                Err(_) => Ok(()),
                Ok(_) => Err(format!("a client cut after {n} bytes finished")),
            }
        }
    }
}

/// BFV parameters as the runtime's fhe.rs backend builds them for `p`.
fn bfv(p: u64) -> std::sync::Arc<fhe::bfv::BfvParameters> {
    fhe::bfv::BfvParametersBuilder::new()
        .set_degree(c3d_ir::he_model::DEGREE)
        .set_plaintext_modulus(p)
        .set_moduli_sizes(c3d_ir::HeModel::limb_bits(p))
        .build_arc()
        .expect("parameters")
}

/// Re-encodes a serialised ciphertext with its polynomial `i` in power-basis form, through
/// the crate's own protobuf types (so everything else about it stays valid).
fn power_basis(par: &std::sync::Arc<fhe::bfv::BfvParameters>, ct: &[u8], i: usize) -> Vec<u8> {
    use fhe_math::rq::Representation;
    use fhe_traits::{DeserializeParametrized, Serialize};
    use prost::Message;
    let ct = fhe::bfv::Ciphertext::from_bytes(ct, par).expect("a ciphertext");
    let mut polys: Vec<fhe_math::rq::Poly> = ct.iter().cloned().collect();
    polys[i].change_representation(Representation::PowerBasis);
    let mut proto = fhe::proto::bfv::Ciphertext::from(&ct);
    proto.seed.clear();
    proto.c = polys.iter().map(|p| p.to_bytes()).collect();
    proto.encode_to_vec()
}

/// A public key for `p` whose first polynomial is in power-basis form.
pub fn power_basis_public_key(p: u64) -> Vec<u8> {
    use fhe_traits::Serialize;
    use prost::Message;
    let par = bfv(p);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let sk = fhe::bfv::SecretKey::random(&par, &mut rng);
    let pk = fhe::bfv::PublicKey::new(&sk, &mut rng);
    let proto = fhe::proto::bfv::PublicKey::decode(pk.to_bytes().as_slice()).expect("a key");
    let inner = proto.c.expect("the key's ciphertext").encode_to_vec();
    let bad = fhe::proto::bfv::Ciphertext::decode(power_basis(&par, &inner, 0).as_slice())
        .expect("re-encoded");
    fhe::proto::bfv::PublicKey { c: Some(bad) }.encode_to_vec()
}

/// A client stream that rewrites the first offline linear ciphertext it sends (tag 0x40)
/// with its second polynomial in power-basis form; everything else passes unchanged.
pub struct Tamper {
    inner: Timed<TcpStream>,
    p: u64,
    pending: Vec<u8>,
    done: bool,
}

impl Read for Tamper {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        self.inner.read(b)
    }
}

impl Write for Tamper {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.done {
            return self.inner.write(b);
        }
        self.pending.extend_from_slice(b);
        // Pass whole frames on, rewriting the first ciphertext.
        loop {
            if self.pending.len() < 5 {
                break;
            }
            let len = u32::from_le_bytes(self.pending[..4].try_into().expect("4")) as usize;
            if self.pending.len() < 5 + len {
                break;
            }
            let rest = self.pending.split_off(5 + len);
            let mut f = std::mem::replace(&mut self.pending, rest);
            if f[4] == Tag::LinearIn as u8 && !self.done {
                let bad = power_basis(&bfv(self.p), &f[5..], 1);
                f = frame(Tag::LinearIn as u8, &bad);
                self.done = true;
            }
            self.inner.write_all(&f)?;
            if self.done {
                let rest = std::mem::take(&mut self.pending);
                self.inner.write_all(&rest)?;
                break;
            }
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

stream_through_inner!(Tamper);
