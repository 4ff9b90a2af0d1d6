//! Beaver triples made by the two parties with BFV (no trusted dealer), and Beaver
//! multiplication and squaring on additive shares.
//!
//! Triples: the client draws a_c, b_c and sends Enc(a_c), Enc(b_c) (slot encoding); the
//! server draws a_s, b_s, z and returns Enc(a_c b_s + b_c a_s + a_s b_s - z), flooded (one
//! reply per N triples, counted in the session's [`FloodBudget`] by whoever runs them). The
//! client's c share is the decryption plus a_c b_c, the server's is z; then
//! c_c + c_s = (a_c + a_s)(b_c + b_s). Squares (a, a^2) need one product: Enc(2 a_c a_s +
//! a_s^2 - z).
//!
//! Material is consumed by value: [`Triples::take`] moves the first n out of the pool, so
//! nothing can be used twice.

use crate::field::Field;
use crate::he::{flood_bits, product_noise_bits, Backend, CtLevel, Encoding, FloodBudget, HeError};
use crate::transport::{Channel, Stream, TransportError};
use crate::wire::Tag;
use rand::{CryptoRng, Rng, RngCore};

/// Why a Beaver step failed.
#[derive(Debug, thiserror::Error)]
pub enum BeaverError {
    /// HE failed or the parameters cannot carry the products.
    #[error(transparent)]
    He(#[from] HeError),
    /// The channel failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Not enough offline material, or operands of different lengths.
    #[error("Beaver: {0}")]
    Material(String),
}

/// Result of a Beaver step.
pub type Result<T> = std::result::Result<T, BeaverError>;

/// One party's shares of multiplication triples c = a b.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Triples {
    /// Shares of a.
    pub a: Vec<u64>,
    /// Shares of b.
    pub b: Vec<u64>,
    /// Shares of c.
    pub c: Vec<u64>,
}

/// One party's shares of square pairs c = a^2.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Squares {
    /// Shares of a.
    pub a: Vec<u64>,
    /// Shares of c.
    pub c: Vec<u64>,
}

fn take_front(v: &mut Vec<u64>, n: usize) -> Vec<u64> {
    let rest = v.split_off(n);
    std::mem::replace(v, rest)
}

impl Triples {
    /// Moves the first `n` triples out of the pool.
    pub fn take(&mut self, n: usize) -> Result<Triples> {
        if n > self.c.len() {
            return Err(BeaverError::Material(format!(
                "{n} triples asked for, {} left",
                self.c.len()
            )));
        }
        Ok(Triples {
            a: take_front(&mut self.a, n),
            b: take_front(&mut self.b, n),
            c: take_front(&mut self.c, n),
        })
    }
}

impl Squares {
    /// Moves the first `n` pairs out of the pool.
    pub fn take(&mut self, n: usize) -> Result<Squares> {
        if n > self.c.len() {
            return Err(BeaverError::Material(format!(
                "{n} squares asked for, {} left",
                self.c.len()
            )));
        }
        Ok(Squares {
            a: take_front(&mut self.a, n),
            c: take_front(&mut self.c, n),
        })
    }
}

/// The flooding width of `n` values' replies (one per N) with `terms` products each, in a
/// session of `budget`'s replies, which must count them.
fn flood_for<B: Backend>(be: &B, n: usize, terms: u64, budget: &FloodBudget) -> Result<u32> {
    let replies = n.div_ceil(be.degree()) as u64;
    if replies > budget.replies() {
        return Err(BeaverError::Material(format!(
            "{replies} replies, but the session's flooding covers {}",
            budget.replies()
        )));
    }
    let p = be.plain_modulus();
    // A slot plaintext is dense: l1-norm up to N p / 2.
    let l1_bits = be.degree().trailing_zeros() + 64 - p.leading_zeros();
    Ok(flood_bits(
        be,
        product_noise_bits(be, l1_bits, terms),
        budget,
    )?)
}

fn send_cts<B: Backend, S: Stream>(
    be: &B,
    ch: &mut Channel<S>,
    tag: Tag,
    cts: &[B::Ct],
) -> Result<()> {
    for ct in cts {
        ch.send(tag, &be.serialize(ct)?)?;
    }
    Ok(())
}

/// Receives a ciphertext that must arrive at level `at` (fresh ones at the server, flooded
/// replies at the client).
fn recv_ct<B: Backend, S: Stream>(
    be: &B,
    ch: &mut Channel<S>,
    tag: Tag,
    at: CtLevel,
) -> Result<B::Ct> {
    Ok(be.deserialize_at(&ch.recv(tag)?, at)?)
}

/// Client side of triple generation: `n` triples.
pub fn client_triples<B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    be: &B,
    ch: &mut Channel<S>,
    sk: &B::Sk,
    n: usize,
    rng: &mut R,
) -> Result<Triples> {
    let f = Field::new(be.plain_modulus()).map_err(|e| BeaverError::Material(e.to_string()))?;
    let a = f.random_vec(rng, n);
    let b = f.random_vec(rng, n);
    let mut c = Vec::with_capacity(n);
    let slots = be.degree();
    for (ac, bc) in a.chunks(slots).zip(b.chunks(slots)) {
        let cts = [
            be.encrypt(sk, ac, Encoding::Slots, rng)?,
            be.encrypt(sk, bc, Encoding::Slots, rng)?,
        ];
        send_cts(be, ch, Tag::BeaverA, &cts)?;
        let d = be.decrypt(
            sk,
            &recv_ct(be, ch, Tag::BeaverC, CtLevel::Reply)?,
            Encoding::Slots,
        )?;
        c.extend(
            ac.iter()
                .zip(bc)
                .zip(&d)
                .map(|((&x, &y), &z)| f.add(z, f.mul(x, y))),
        );
    }
    Ok(Triples { a, b, c })
}

/// Server side of triple generation: `n` triples, whose n / N replies (rounded up) are
/// flooded for a session of `budget`'s replies.
pub fn server_triples<B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    be: &B,
    ch: &mut Channel<S>,
    n: usize,
    key: &B::Pk,
    budget: &FloodBudget,
    rng: &mut R,
) -> Result<Triples> {
    let f = Field::new(be.plain_modulus()).map_err(|e| BeaverError::Material(e.to_string()))?;
    let flood = flood_for(be, n, 2, budget)?;
    let a = f.random_vec(rng, n);
    let b = f.random_vec(rng, n);
    let z = f.random_vec(rng, n);
    let slots = be.degree();
    for ((as_, bs), zs) in a.chunks(slots).zip(b.chunks(slots)).zip(z.chunks(slots)) {
        let enc_a = recv_ct(be, ch, Tag::BeaverA, CtLevel::Fresh)?;
        let enc_b = recv_ct(be, ch, Tag::BeaverA, CtLevel::Fresh)?;
        let mut acc = be.mul_plain(&enc_a, &be.prepare(bs, Encoding::Slots)?)?;
        be.add_assign(
            &mut acc,
            &be.mul_plain(&enc_b, &be.prepare(as_, Encoding::Slots)?)?,
        )?;
        let plain: Vec<u64> = as_
            .iter()
            .zip(bs)
            .zip(zs)
            .map(|((&x, &y), &w)| f.sub(f.mul(x, y), w))
            .collect();
        be.add_plain_assign(&mut acc, &plain, Encoding::Slots)?;
        be.flood(&mut acc, flood, key, rng)?;
        send_cts(be, ch, Tag::BeaverC, &[acc])?;
    }
    Ok(Triples { a, b, c: z })
}

/// Client side of square-pair generation.
pub fn client_squares<B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    be: &B,
    ch: &mut Channel<S>,
    sk: &B::Sk,
    n: usize,
    rng: &mut R,
) -> Result<Squares> {
    let f = Field::new(be.plain_modulus()).map_err(|e| BeaverError::Material(e.to_string()))?;
    let a = f.random_vec(rng, n);
    let mut c = Vec::with_capacity(n);
    for ac in a.chunks(be.degree()) {
        send_cts(
            be,
            ch,
            Tag::BeaverA,
            &[be.encrypt(sk, ac, Encoding::Slots, rng)?],
        )?;
        let d = be.decrypt(
            sk,
            &recv_ct(be, ch, Tag::BeaverC, CtLevel::Reply)?,
            Encoding::Slots,
        )?;
        c.extend(ac.iter().zip(&d).map(|(&x, &z)| f.add(z, f.mul(x, x))));
    }
    Ok(Squares { a, c })
}

/// Server side of square-pair generation, flooded like [`server_triples`].
pub fn server_squares<B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    be: &B,
    ch: &mut Channel<S>,
    n: usize,
    key: &B::Pk,
    budget: &FloodBudget,
    rng: &mut R,
) -> Result<Squares> {
    let f = Field::new(be.plain_modulus()).map_err(|e| BeaverError::Material(e.to_string()))?;
    let flood = flood_for(be, n, 1, budget)?;
    let a = f.random_vec(rng, n);
    let z = f.random_vec(rng, n);
    for (as_, zs) in a.chunks(be.degree()).zip(z.chunks(be.degree())) {
        let enc_a = recv_ct(be, ch, Tag::BeaverA, CtLevel::Fresh)?;
        let two_a: Vec<u64> = as_.iter().map(|&x| f.add(x, x)).collect();
        let mut acc = be.mul_plain(&enc_a, &be.prepare(&two_a, Encoding::Slots)?)?;
        let plain: Vec<u64> = as_
            .iter()
            .zip(zs)
            .map(|(&x, &w)| f.sub(f.mul(x, x), w))
            .collect();
        be.add_plain_assign(&mut acc, &plain, Encoding::Slots)?;
        be.flood(&mut acc, flood, key, rng)?;
        send_cts(be, ch, Tag::BeaverC, &[acc])?;
    }
    Ok(Squares { a, c: z })
}

/// Client side of square-pair generation by oblivious transfer (Gilboa's product): for each
/// bit i of its a_c the client receives m_i + bit_i 2^i a_s, so the sum is sum m_i + a_c a_s.
/// Needs w OTs per pair (w the bits of p) and no HE, so it works at any prime; the HE
/// version's slot products need a 3 w + 71 + ceil(log2 R)-bit modulus to be flooded (R the
/// session's replies), more than N = 8192's 217 bits above 48-bit primes.
pub fn client_squares_ot<S: Stream, R: Rng + CryptoRng>(
    f: &Field,
    ch: &mut Channel<S>,
    ot: &mut crate::ot::OtReceiver,
    n: usize,
    rng: &mut R,
) -> Result<Squares> {
    let w = (64 - f.p().leading_zeros()) as usize;
    let a = f.random_vec(rng, n);
    let mut c = Vec::with_capacity(n);
    // Bounded chunks keep the OT messages of one call small.
    for ac in a.chunks(1 << 12) {
        let choices: Vec<bool> = ac
            .iter()
            .flat_map(|&v| (0..w).map(move |i| (v >> i) & 1 == 1))
            .collect();
        let got = ot
            .receive(ch, &choices)
            .map_err(|e| BeaverError::Material(format!("OT: {e}")))?;
        for (j, &v) in ac.iter().enumerate() {
            let mut cross = 0u64;
            for &m in &got[j * w..(j + 1) * w] {
                if m >= f.p() as u128 {
                    return Err(BeaverError::Material(
                        "the peer's OT message is not a field element".into(),
                    ));
                }
                cross = f.add(cross, m as u64);
            }
            c.push(f.add(f.mul(v, v), f.add(cross, cross)));
        }
    }
    Ok(Squares { a, c })
}

/// Server side of [`client_squares_ot`].
pub fn server_squares_ot<S: Stream, R: Rng + CryptoRng>(
    f: &Field,
    ch: &mut Channel<S>,
    ot: &mut crate::ot::OtSender,
    n: usize,
    rng: &mut R,
) -> Result<Squares> {
    let w = (64 - f.p().leading_zeros()) as usize;
    let a = f.random_vec(rng, n);
    let mut c = Vec::with_capacity(n);
    for as_ in a.chunks(1 << 12) {
        let mut pairs = Vec::with_capacity(as_.len() * w);
        for &v in as_ {
            let mut sum = 0u64;
            let mut shifted = v; // 2^i a_s
            for _ in 0..w {
                let m = f.random(rng);
                sum = f.add(sum, m);
                pairs.push((m as u128, f.add(m, shifted) as u128));
                shifted = f.add(shifted, shifted);
            }
            // a^2 = a_c^2 + 2 a_c a_s + a_s^2; the client holds a_c^2 + 2 (sum m + a_c a_s).
            c.push(f.sub(f.mul(v, v), f.add(sum, sum)));
        }
        ot.send(ch, &pairs)
            .map_err(|e| BeaverError::Material(format!("OT: {e}")))?;
    }
    Ok(Squares { a, c })
}

/// Opens masked values: each side sends its shares and adds the peer's. The server writes
/// first and the client reads first, so large openings cannot deadlock on full buffers.
fn open<S: Stream>(f: &Field, ch: &mut Channel<S>, server: bool, mine: &[u64]) -> Result<Vec<u64>> {
    let theirs = if server {
        ch.send_u64s(Tag::BeaverOpen, mine)?;
        ch.recv_u64s(Tag::BeaverOpen, mine.len())?
    } else {
        let t = ch.recv_u64s(Tag::BeaverOpen, mine.len())?;
        ch.send_u64s(Tag::BeaverOpen, mine)?;
        t
    };
    if let Some(v) = theirs.iter().find(|&&v| v >= f.p()) {
        return Err(BeaverError::Material(format!(
            "the peer opened {v}, not a field element"
        )));
    }
    Ok(f.reconstruct(mine, &theirs))
}

/// Shares of x * y from shares of x and y, consuming one triple per element. One round.
pub fn multiply<S: Stream>(
    f: &Field,
    ch: &mut Channel<S>,
    server: bool,
    x: &[u64],
    y: &[u64],
    t: Triples,
) -> Result<Vec<u64>> {
    let n = x.len();
    if y.len() != n || t.c.len() != n {
        return Err(BeaverError::Material(format!(
            "{n} and {} operands with {} triples",
            y.len(),
            t.c.len()
        )));
    }
    // Open d = x - a and e = y - b together.
    let mut mine: Vec<u64> = x.iter().zip(&t.a).map(|(&v, &a)| f.sub(v, a)).collect();
    mine.extend(y.iter().zip(&t.b).map(|(&v, &b)| f.sub(v, b)));
    let de = open(f, ch, server, &mine)?;
    let (d, e) = de.split_at(n);
    Ok((0..n)
        .map(|i| {
            let mut z = f.add(t.c[i], f.add(f.mul(d[i], t.b[i]), f.mul(e[i], t.a[i])));
            if server {
                z = f.add(z, f.mul(d[i], e[i]));
            }
            z
        })
        .collect())
}

/// Shares of x^2 from shares of x, consuming one square pair per element. One round.
pub fn square<S: Stream>(
    f: &Field,
    ch: &mut Channel<S>,
    server: bool,
    x: &[u64],
    sq: Squares,
) -> Result<Vec<u64>> {
    if sq.c.len() != x.len() {
        return Err(BeaverError::Material(format!(
            "{} operands with {} square pairs",
            x.len(),
            sq.c.len()
        )));
    }
    let mine: Vec<u64> = x.iter().zip(&sq.a).map(|(&v, &a)| f.sub(v, a)).collect();
    let d = open(f, ch, server, &mine)?;
    Ok((0..x.len())
        .map(|i| {
            // x^2 = a^2 + 2 d a + d^2
            let mut z = f.add(sq.c[i], f.mul(f.add(d[i], d[i]), sq.a[i]));
            if server {
                z = f.add(z, f.mul(d[i], d[i]));
            }
            z
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::he::fhers::FheRs;
    use crate::he::NoiseBudget;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use std::sync::Arc;

    #[test]
    fn triples_and_squares_multiply_shares_exactly() {
        let be = Arc::new(FheRs::new(c3d_ir::fixed::DELPHI_PRIME).unwrap());
        let f = Field::new(be.plain_modulus()).unwrap();
        // More than one plaintext's worth, so chunking is exercised.
        let n = be.degree() + 100;
        let (mut a, mut b) = Channel::pair().unwrap();
        let be2 = be.clone();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let sk = be.keygen(&mut rng).unwrap();
        let key = be
            .read_public_key(&be.public_key(&sk, &mut rng).unwrap())
            .unwrap();
        let server = std::thread::spawn(move || {
            let mut rng = ChaCha20Rng::seed_from_u64(2);
            // One session: the triples' and the squares' replies.
            let budget = FloodBudget::new(2 * n.div_ceil(be2.degree()) as u64);
            let t = server_triples(be2.as_ref(), &mut a, n, &key, &budget, &mut rng).unwrap();
            let s = server_squares(be2.as_ref(), &mut a, n, &key, &budget, &mut rng).unwrap();
            (t, s, a)
        });
        let tc = client_triples(be.as_ref(), &mut b, &sk, n, &mut rng).unwrap();
        let sc = client_squares(be.as_ref(), &mut b, &sk, n, &mut rng).unwrap();
        let (ts, ss, mut a) = server.join().unwrap();
        for i in 0..n {
            let x = f.add(tc.a[i], ts.a[i]);
            let y = f.add(tc.b[i], ts.b[i]);
            assert_eq!(f.add(tc.c[i], ts.c[i]), f.mul(x, y), "triple {i}");
            let s = f.add(sc.a[i], ss.a[i]);
            assert_eq!(f.add(sc.c[i], ss.c[i]), f.mul(s, s), "square {i}");
        }

        // Online: shares of random x, y, including 0 and p - 1.
        let m = 300;
        let mut x: Vec<u64> = f.random_vec(&mut rng, m);
        let y: Vec<u64> = f.random_vec(&mut rng, m);
        x[0] = 0;
        x[1] = f.p() - 1;
        let (xc, xs) = f.share(&x, &mut rng);
        let (yc, ys) = f.share(&y, &mut rng);
        let (mut tc, mut ts, mut sc, mut ss) = (tc, ts, sc, ss);
        let (t_s, sq_s) = (ts.take(m).unwrap(), ss.take(m).unwrap());
        let (fs, xs2) = (f, xs.clone());
        let server = std::thread::spawn(move || {
            let prod = multiply(&fs, &mut a, true, &xs2, &ys, t_s).unwrap();
            let sq = square(&fs, &mut a, true, &xs2, sq_s).unwrap();
            (prod, sq)
        });
        let prod_c = multiply(&f, &mut b, false, &xc, &yc, tc.take(m).unwrap()).unwrap();
        let sq_c = square(&f, &mut b, false, &xc, sc.take(m).unwrap()).unwrap();
        let (prod_s, sq_s) = server.join().unwrap();
        for i in 0..m {
            assert_eq!(f.add(prod_c[i], prod_s[i]), f.mul(x[i], y[i]));
            assert_eq!(f.add(sq_c[i], sq_s[i]), f.mul(x[i], x[i]));
        }
        // Square pairs by OT, at a 61-bit prime the HE version cannot serve.
        let f61 = Field::new((1u64 << 61) - 1).unwrap();
        let (mut a2, mut b2) = Channel::pair().unwrap();
        let n2 = 5000;
        let server = std::thread::spawn(move || {
            let mut rng = ChaCha20Rng::seed_from_u64(3);
            let mut ot = crate::ot::OtSender::setup(&mut a2, &mut rng).unwrap();
            server_squares_ot(&f61, &mut a2, &mut ot, n2, &mut rng).unwrap()
        });
        let mut ot = crate::ot::OtReceiver::setup(&mut b2, &mut rng).unwrap();
        let oc = client_squares_ot(&f61, &mut b2, &mut ot, n2, &mut rng).unwrap();
        let os = server.join().unwrap();
        for i in 0..n2 {
            let s = f61.add(oc.a[i], os.a[i]);
            assert_eq!(f61.add(oc.c[i], os.c[i]), f61.mul(s, s), "OT square {i}");
        }

        // Used material is gone: the pools shrank, and asking past the end is refused.
        assert_eq!(tc.c.len(), n - m);
        assert!(tc.take(n).is_err());
        assert!(ss.take(n - m + 1).is_err());
    }
}
