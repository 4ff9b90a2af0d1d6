//! IKNP OT extension (Ishai, Kilian, Nissim, Petrank 2003) in the semi-honest setting: 128
//! base OTs with the roles swapped seed 256 PRG streams, after which every extended OT costs
//! the receiver 16 bytes and (chosen-message mode) the sender 32. The correlation-robust hash
//! is the fixed-key AES TCCR hash the garbler uses, tweaked by the OT's index in the session
//! so no two transfers share a hash input. Work is done in chunks, so a run of millions of
//! OTs never holds more than a chunk's matrices.

use super::transpose::columns_to_rows;
use super::{base, OtError, Result, KAPPA};
use crate::gc::hash::{Hasher, MAX_BATCH};
use crate::transport::{Channel, Stream};
use crate::wire::Tag;
use rand::{CryptoRng, Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rayon::prelude::*;

/// OTs per chunk: 2 MiB of receiver matrix, 4 MiB of sender replies.
pub const CHUNK: usize = 1 << 17;

fn next_words(rng: &mut ChaCha12Rng, out: &mut [u128]) {
    let mut b = vec![0u8; out.len() * 16];
    rng.fill_bytes(&mut b);
    for (w, c) in out.iter_mut().zip(b.chunks_exact(16)) {
        *w = u128::from_le_bytes(c.try_into().expect("16 bytes"));
    }
}

/// H(xs[k], ts[k]) for many inputs: [`MAX_BATCH`] per AES call, batches in parallel.
fn hash_all(h: &Hasher, xs: &[u128], ts: &[u128]) -> Vec<u128> {
    let mut out = vec![0u128; xs.len()];
    out.par_chunks_mut(MAX_BATCH)
        .zip(xs.par_chunks(MAX_BATCH).zip(ts.par_chunks(MAX_BATCH)))
        .for_each(|(o, (x, t))| h.hash_blocks(x, t, o));
    out
}

fn pack_bits(bits: &[bool]) -> Vec<u128> {
    let mut w = vec![0u128; bits.len().div_ceil(128)];
    for (j, &b) in bits.iter().enumerate() {
        w[j / 128] |= (b as u128) << (j % 128);
    }
    w
}

fn to_bytes(xs: impl Iterator<Item = u128>, cap: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(cap * 16);
    for x in xs {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn from_bytes(b: &[u8]) -> impl Iterator<Item = u128> + '_ {
    b.chunks_exact(16)
        .map(|c| u128::from_le_bytes(c.try_into().expect("16 bytes")))
}

/// The OT sender's state after setup (in the protocol: the garbler, the server).
pub struct OtSender {
    s: u128,
    prgs: Vec<ChaCha12Rng>,
    counter: u128,
    hasher: Hasher,
}

/// The OT receiver's state after setup (in the protocol: the evaluator, the client).
pub struct OtReceiver {
    prgs: Vec<(ChaCha12Rng, ChaCha12Rng)>,
    counter: u128,
    hasher: Hasher,
}

impl OtSender {
    /// Runs the base OTs (as their receiver, choosing by the bits of a fresh secret `s`).
    pub fn setup<S: Stream, R: Rng + CryptoRng>(ch: &mut Channel<S>, rng: &mut R) -> Result<Self> {
        let s: u128 = rng.random();
        let choices: Vec<bool> = (0..KAPPA).map(|i| (s >> i) & 1 == 1).collect();
        let keys = base::receive(ch, &choices, rng)?;
        Ok(OtSender {
            s,
            prgs: keys.into_iter().map(ChaCha12Rng::from_seed).collect(),
            counter: 0,
            hasher: Hasher::default(),
        })
    }

    /// The rows q_j = t_j xor r_j * s of one chunk of `n` OTs.
    fn extend_chunk<S: Stream>(&mut self, ch: &mut Channel<S>, n: usize) -> Result<Vec<u128>> {
        let words = n.div_ceil(128);
        let u = ch.recv(Tag::IknpU)?;
        if u.len() != KAPPA * words * 16 {
            return Err(OtError::Malformed(format!(
                "extension matrix of {} bytes, expected {} for {n} OTs",
                u.len(),
                KAPPA * words * 16
            )));
        }
        let u: Vec<u128> = from_bytes(&u).collect();
        let s = self.s;
        let cols: Vec<Vec<u128>> = self
            .prgs
            .par_iter_mut()
            .enumerate()
            .map(|(i, prg)| {
                let mut q = vec![0u128; words];
                next_words(prg, &mut q);
                if (s >> i) & 1 == 1 {
                    for (w, uw) in q.iter_mut().zip(&u[i * words..(i + 1) * words]) {
                        *w ^= uw;
                    }
                }
                q
            })
            .collect();
        let cols: [Vec<u128>; KAPPA] = cols.try_into().expect("KAPPA columns");
        Ok(columns_to_rows(&cols, n))
    }

    /// The hash inputs of a chunk's rows: (q_j, q_j xor s), both tweaked by the OT's index.
    fn sender_inputs(&self, q: &[u128]) -> (Vec<u128>, Vec<u128>) {
        let xs = q.iter().flat_map(|&qj| [qj, qj ^ self.s]).collect();
        let ts = (0..q.len())
            .flat_map(|j| {
                let tw = self.counter + j as u128;
                [tw, tw]
            })
            .collect();
        (xs, ts)
    }

    /// Chosen-message OT: the receiver learns `pairs[j].0` or `pairs[j].1` by its j-th choice
    /// bit, and nothing about the other.
    pub fn send<S: Stream>(&mut self, ch: &mut Channel<S>, pairs: &[(u128, u128)]) -> Result<()> {
        for chunk in pairs.chunks(CHUNK) {
            let q = self.extend_chunk(ch, chunk.len())?;
            let (xs, ts) = self.sender_inputs(&q);
            let hs = hash_all(&self.hasher, &xs, &ts);
            let ys = chunk
                .iter()
                .zip(hs.chunks_exact(2))
                .flat_map(|(&(x0, x1), h)| [x0 ^ h[0], x1 ^ h[1]]);
            ch.send(Tag::IknpY, &to_bytes(ys, 2 * chunk.len()))?;
            self.counter += chunk.len() as u128;
        }
        Ok(())
    }

    /// Random OT: `n` uniformly random message pairs, of which the receiver learns the ones
    /// its choice bits select; nothing but the extension matrix is sent.
    pub fn send_random<S: Stream>(
        &mut self,
        ch: &mut Channel<S>,
        n: usize,
    ) -> Result<Vec<(u128, u128)>> {
        let mut out = Vec::with_capacity(n);
        let mut left = n;
        while left > 0 {
            let m = left.min(CHUNK);
            let q = self.extend_chunk(ch, m)?;
            let (xs, ts) = self.sender_inputs(&q);
            let hs = hash_all(&self.hasher, &xs, &ts);
            out.extend(hs.chunks_exact(2).map(|h| (h[0], h[1])));
            self.counter += m as u128;
            left -= m;
        }
        Ok(out)
    }
}

impl OtReceiver {
    /// Runs the base OTs (as their sender) and seeds both PRG streams of every column.
    pub fn setup<S: Stream, R: Rng + CryptoRng>(ch: &mut Channel<S>, rng: &mut R) -> Result<Self> {
        let keys = base::send(ch, KAPPA, rng)?;
        Ok(OtReceiver {
            prgs: keys
                .into_iter()
                .map(|(k0, k1)| (ChaCha12Rng::from_seed(k0), ChaCha12Rng::from_seed(k1)))
                .collect(),
            counter: 0,
            hasher: Hasher::default(),
        })
    }

    /// Sends u_i = G(k0_i) xor G(k1_i) xor r for one chunk and returns the rows t_j.
    fn extend_chunk<S: Stream>(
        &mut self,
        ch: &mut Channel<S>,
        choices: &[bool],
    ) -> Result<Vec<u128>> {
        let r = pack_bits(choices);
        let words = r.len();
        let parts: Vec<(Vec<u128>, Vec<u8>)> = self
            .prgs
            .par_iter_mut()
            .map(|(g0, g1)| {
                let mut t = vec![0u128; words];
                let mut t1 = vec![0u128; words];
                next_words(g0, &mut t);
                next_words(g1, &mut t1);
                let mut u = Vec::with_capacity(words * 16);
                for ((a, b), rw) in t.iter().zip(&t1).zip(&r) {
                    u.extend_from_slice(&(a ^ b ^ rw).to_le_bytes());
                }
                (t, u)
            })
            .collect();
        let mut u = Vec::with_capacity(KAPPA * words * 16);
        let mut cols = Vec::with_capacity(KAPPA);
        for (t, ui) in parts {
            u.extend_from_slice(&ui);
            cols.push(t);
        }
        let cols: [Vec<u128>; KAPPA] = cols.try_into().expect("KAPPA columns");
        ch.send(Tag::IknpU, &u)?;
        Ok(columns_to_rows(&cols, choices.len()))
    }

    /// The tweaks of the next `n` OTs: their indices in the session.
    fn tweaks(&self, n: usize) -> Vec<u128> {
        (0..n as u128).map(|j| self.counter + j).collect()
    }

    /// Chosen-message OT: returns the message each choice bit selects.
    pub fn receive<S: Stream>(
        &mut self,
        ch: &mut Channel<S>,
        choices: &[bool],
    ) -> Result<Vec<u128>> {
        let mut out = Vec::with_capacity(choices.len());
        for chunk in choices.chunks(CHUNK) {
            let t = self.extend_chunk(ch, chunk)?;
            let y = ch.recv(Tag::IknpY)?;
            if y.len() != 32 * chunk.len() {
                return Err(OtError::Malformed(format!(
                    "OT replies of {} bytes, expected {} for {} OTs",
                    y.len(),
                    32 * chunk.len(),
                    chunk.len()
                )));
            }
            let ys: Vec<u128> = from_bytes(&y).collect();
            let hs = hash_all(&self.hasher, &t, &self.tweaks(t.len()));
            for (j, (&h, &c)) in hs.iter().zip(chunk).enumerate() {
                out.push(ys[2 * j + c as usize] ^ h);
            }
            self.counter += chunk.len() as u128;
        }
        Ok(out)
    }

    /// Random OT: the chosen one of each of the sender's random pairs.
    pub fn receive_random<S: Stream>(
        &mut self,
        ch: &mut Channel<S>,
        choices: &[bool],
    ) -> Result<Vec<u128>> {
        let mut out = Vec::with_capacity(choices.len());
        for chunk in choices.chunks(CHUNK) {
            let t = self.extend_chunk(ch, chunk)?;
            out.extend(hash_all(&self.hasher, &t, &self.tweaks(t.len())));
            self.counter += chunk.len() as u128;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;

    fn setup() -> ((OtSender, Pipe), (OtReceiver, Pipe)) {
        let (mut a, mut b) = Channel::pair().unwrap();
        let t = std::thread::spawn(move || {
            let s = OtSender::setup(&mut a, &mut ChaCha20Rng::seed_from_u64(10)).unwrap();
            (s, a)
        });
        let r = OtReceiver::setup(&mut b, &mut ChaCha20Rng::seed_from_u64(11)).unwrap();
        (t.join().unwrap(), (r, b))
    }

    type Pipe = crate::transport::Pipe;

    /// One chosen-message run: the sender on a thread, the receiver here; returns the
    /// receiver's outputs and the sender's state for the next run.
    fn round(
        (mut snd, mut a): (OtSender, Pipe),
        rcv: &mut OtReceiver,
        b: &mut Pipe,
        pairs: &[(u128, u128)],
        choices: &[bool],
    ) -> (Vec<u128>, (OtSender, Pipe)) {
        let p2 = pairs.to_vec();
        let t = std::thread::spawn(move || {
            snd.send(&mut a, &p2).unwrap();
            (snd, a)
        });
        let got = rcv.receive(b, choices).unwrap();
        (got, t.join().unwrap())
    }

    #[test]
    fn chosen_messages_arrive_and_the_others_stay_hidden() {
        let (mut sender, (mut rcv, mut b)) = setup();
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        // Two runs on one session (the second continues the PRG streams and the tweak
        // counter), one spanning a chunk boundary and not a multiple of 128.
        for n in [1000usize, CHUNK + 77] {
            let pairs: Vec<(u128, u128)> = (0..n).map(|_| (rng.random(), rng.random())).collect();
            let choices: Vec<bool> = (0..n).map(|_| rng.random()).collect();
            // The same pairs again with every choice flipped: the session's state moves on
            // (fresh pads), and now the other message of each pair arrives.
            let flipped: Vec<bool> = choices.iter().map(|c| !c).collect();
            for ch in [&choices, &flipped] {
                let got;
                (got, sender) = round(sender, &mut rcv, &mut b, &pairs, ch);
                for ((g, (m0, m1)), c) in got.iter().zip(&pairs).zip(ch.iter()) {
                    assert_eq!(*g, if *c { *m1 } else { *m0 });
                }
            }
        }
    }

    #[test]
    fn the_unchosen_message_is_not_in_the_receivers_view() {
        let ((mut snd, mut a), (mut rcv, mut b)) = setup();
        let n = 512;
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let pairs: Vec<(u128, u128)> = (0..n).map(|_| (rng.random(), rng.random())).collect();
        let choices: Vec<bool> = (0..n).map(|_| rng.random()).collect();
        // Run the receiver by hand to keep its view: t rows and the sender's replies.
        let p2 = pairs.clone();
        let t = std::thread::spawn(move || snd.send(&mut a, &p2).unwrap());
        let rows = rcv.extend_chunk(&mut b, &choices).unwrap();
        let y: Vec<u128> = from_bytes(&b.recv(Tag::IknpY).unwrap()).collect();
        t.join().unwrap();
        for (j, ((&tj, &c), (m0, m1))) in rows.iter().zip(&choices).zip(&pairs).enumerate() {
            let mut h = [0u128; 1];
            rcv.hasher.hash_blocks(&[tj], &[j as u128], &mut h);
            let h = h[0];
            let (mine, other) = if c { (m1, m0) } else { (m0, m1) };
            assert_eq!(y[2 * j + c as usize] ^ h, *mine);
            // Every pad the receiver can form from its view fails on the other reply.
            let masked = y[2 * j + !c as usize];
            for guess in [h, tj, 0] {
                assert_ne!(masked ^ guess, *other, "OT {j}");
            }
            assert_ne!(masked, *other);
        }
    }

    #[test]
    fn random_ot_pairs_agree_with_the_choices() {
        let ((mut snd, mut a), (mut rcv, mut b)) = setup();
        let n = 777;
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        let choices: Vec<bool> = (0..n).map(|_| rng.random()).collect();
        let t = std::thread::spawn(move || snd.send_random(&mut a, n).unwrap());
        let got = rcv.receive_random(&mut b, &choices).unwrap();
        let pairs = t.join().unwrap();
        let mut distinct = std::collections::HashSet::new();
        for ((g, (m0, m1)), c) in got.iter().zip(&pairs).zip(&choices) {
            assert_eq!(*g, if *c { *m1 } else { *m0 });
            assert_ne!(*g, if *c { *m0 } else { *m1 });
            distinct.insert(*m0);
            distinct.insert(*m1);
        }
        assert_eq!(distinct.len(), 2 * n, "random messages do not repeat");
    }

    #[test]
    fn a_short_extension_matrix_is_refused() {
        let ((mut snd, mut a), (_rcv, mut b)) = setup();
        b.send(Tag::IknpU, &[0u8; 100]).unwrap();
        let e = snd.send(&mut a, &[(1, 2)]).unwrap_err();
        assert!(e.to_string().contains("expected 2048"), "{e}");
    }
}
