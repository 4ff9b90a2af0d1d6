//! Silent correlated OT between the parties, one round at a time (Boyle et al., CCS 2019;
//! Ferret, CCS 2020; Expand-Convolute compression, Raghuraman, Rindal, Tanguy, Crypto 2023).
//!
//! A round makes n COTs with the sender's global Delta for about 0.67 bits each at n = 2^21:
//!
//! 1. t h IKNP random OTs (receiver to sender, `IknpU`), the receiver's choices being the
//!    complement of its punctured points' bits ([`super::mpcot_regular`]);
//! 2. the t GGM tree messages, sender to receiver, in one `SilentPprf` frame;
//! 3. locally on each side: the trees' leaves (the regular-noise vector of N = 2n positions)
//!    compressed by the dual Expand-Convolute code ([`super::exconv`]) to n COTs.
//!
//! Rounds are independent (IKNP bootstraps each one), so every round can run offline. Each
//! round's COTs carry session indices that never repeat ([`CotSender::first`]), the tweaks of
//! every transfer derived from them ([`super::cot`]), so no COT serves twice.

use super::cot::{CotReceiver, CotSender};
use super::exconv::ExConvCode;
use super::ggm_pprf::{Prg, TreeMessage};
use super::lpn_params::SilentParams;
use super::mpcot_regular::{
    receiver_choices_of, receiver_points, receiver_round, sender_round_of, sender_seeds,
    sender_vector,
};
use super::{OtError, OtReceiver, OtSender, Result};
use crate::transport::{Channel, Stream};
use crate::wire::Tag;
use rand::{CryptoRng, Rng};

/// The COT sender's state across rounds (in the session: the server, which is IKNP's sender).
pub struct SilentSender {
    params: SilentParams,
    code: ExConvCode,
    prg: Prg,
    delta: u128,
    next: u64,
}

/// The COT receiver's state across rounds.
pub struct SilentReceiver {
    params: SilentParams,
    code: ExConvCode,
    prg: Prg,
    next: u64,
}

fn code_of(params: &SilentParams) -> Result<ExConvCode> {
    params
        .check()
        .map_err(|e| OtError::Malformed(format!("silent OT parameters: {e}")))?;
    ExConvCode::new(params.n as usize, params.code)
        .map_err(|e| OtError::Malformed(format!("silent OT code: {e}")))
}

fn encode_messages(messages: &[TreeMessage]) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages.iter().map(TreeMessage::bytes).sum());
    for m in messages {
        for [a, b] in &m.levels {
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
        }
        out.extend_from_slice(&m.correction.to_le_bytes());
    }
    out
}

fn decode_messages(b: &[u8], params: &SilentParams) -> Result<Vec<TreeMessage>> {
    let (t, h) = (params.t as usize, params.depth() as usize);
    let want = t * (2 * h + 1) * 16;
    if b.len() != want {
        return Err(OtError::Malformed(format!(
            "a silent-OT round's tree messages are {want} bytes, got {}",
            b.len()
        )));
    }
    let block = |k: usize| u128::from_le_bytes(b[16 * k..16 * k + 16].try_into().expect("16"));
    Ok((0..t)
        .map(|j| {
            let at = j * (2 * h + 1);
            TreeMessage {
                levels: (0..h)
                    .map(|l| [block(at + 2 * l), block(at + 2 * l + 1)])
                    .collect(),
                correction: block(at + 2 * h),
            }
        })
        .collect())
}

fn compress(code: &ExConvCode, mut v: Vec<u128>, n: usize) -> Result<Vec<u128>> {
    code.dual_encode(&mut v)
        .map_err(|e| OtError::Malformed(format!("silent OT compression: {e}")))?;
    v.truncate(n);
    Ok(v)
}

/// What the sender keeps of a round prepared offline: its tree seeds (4 KiB at t = 256),
/// from which [`SilentSender::expand`] re-makes the round's COTs.
pub struct SenderKey {
    seeds: Vec<u128>,
    first: u64,
}

/// What the receiver keeps of a round prepared offline: its punctured points, the tree
/// messages and its base-OT outputs (about 176 KiB at n = 2^21).
pub struct ReceiverKey {
    points: Vec<u64>,
    messages: Vec<TreeMessage>,
    base: Vec<u128>,
    first: u64,
}

impl SilentSender {
    /// A sender with a fresh Delta (lsb 1) for rounds of `params`; refuses an insecure set.
    pub fn new<R: Rng + CryptoRng>(params: SilentParams, rng: &mut R) -> Result<Self> {
        Ok(SilentSender {
            code: code_of(&params)?,
            params,
            prg: Prg::default(),
            delta: rng.random::<u128>() | 1,
            next: 0,
        })
    }

    /// The round parameters.
    pub fn params(&self) -> SilentParams {
        self.params
    }

    /// Numbers this sender's COTs from `first` on (a second instance in the session starts
    /// far from the first, so no two COTs share an index and a hash tweak).
    pub fn start_at(mut self, first: u64) -> Self {
        self.next = first;
        self
    }

    /// The global offset of every COT this sender makes.
    pub fn delta(&self) -> u128 {
        self.delta
    }

    /// One round: n COTs for this side, after the IKNP base OTs and the tree messages.
    pub fn round<S: Stream, R: Rng + CryptoRng>(
        &mut self,
        ch: &mut Channel<S>,
        ot: &mut OtSender,
        rng: &mut R,
    ) -> Result<CotSender> {
        let key = self.prepare(ch, ot, rng)?;
        self.expand(&key)
    }

    /// The round's traffic (the base OTs and the tree messages), kept as the round's seeds:
    /// the offline half of a round.
    pub fn prepare<S: Stream, R: Rng + CryptoRng>(
        &mut self,
        ch: &mut Channel<S>,
        ot: &mut OtSender,
        rng: &mut R,
    ) -> Result<SenderKey> {
        let p = self.params;
        let base = ot.send_random(ch, (p.t * p.depth() as u64) as usize)?;
        let seeds = sender_seeds(&p, rng);
        let round = sender_round_of(&self.prg, &p, self.delta, &base, &seeds)
            .map_err(|e| OtError::Malformed(e.to_string()))?;
        ch.send(Tag::SilentPprf, &encode_messages(&round.messages))?;
        let first = self.next;
        self.next += p.n;
        Ok(SenderKey { seeds, first })
    }

    /// The round's n COTs from its key, locally (the online half).
    pub fn expand(&self, key: &SenderKey) -> Result<CotSender> {
        let p = self.params;
        let v = sender_vector(&self.prg, &p, &key.seeds)
            .map_err(|e| OtError::Malformed(e.to_string()))?;
        Ok(CotSender {
            delta: self.delta,
            v: compress(&self.code, v, p.n as usize)?,
            first: key.first,
        })
    }
}

impl SilentReceiver {
    /// A receiver for rounds of `params`; refuses an insecure set.
    pub fn new(params: SilentParams) -> Result<Self> {
        Ok(SilentReceiver {
            code: code_of(&params)?,
            params,
            prg: Prg::default(),
            next: 0,
        })
    }

    /// The round parameters.
    pub fn params(&self) -> SilentParams {
        self.params
    }

    /// Numbers this receiver's COTs from `first` on, as its sender does.
    pub fn start_at(mut self, first: u64) -> Self {
        self.next = first;
        self
    }

    /// One round: n COTs whose choice bits (the lsbs) are pseudorandom.
    pub fn round<S: Stream, R: Rng + CryptoRng>(
        &mut self,
        ch: &mut Channel<S>,
        ot: &mut OtReceiver,
        rng: &mut R,
    ) -> Result<CotReceiver> {
        let key = self.prepare(ch, ot, rng)?;
        self.expand(&key)
    }

    /// The round's traffic, kept as its key: the offline half of a round. The tree frame is
    /// checked for size here, its contents when the round is expanded.
    pub fn prepare<S: Stream, R: Rng + CryptoRng>(
        &mut self,
        ch: &mut Channel<S>,
        ot: &mut OtReceiver,
        rng: &mut R,
    ) -> Result<ReceiverKey> {
        let p = self.params;
        let points = receiver_points(&p, rng);
        let choices =
            receiver_choices_of(&p, &points).map_err(|e| OtError::Malformed(e.to_string()))?;
        let base = ot.receive_random(ch, &choices)?;
        let messages = decode_messages(&ch.recv(Tag::SilentPprf)?, &p)?;
        let first = self.next;
        self.next += p.n;
        Ok(ReceiverKey {
            points,
            messages,
            base,
            first,
        })
    }

    /// The round's n COTs from its key, locally (the online half).
    pub fn expand(&self, key: &ReceiverKey) -> Result<CotReceiver> {
        let p = self.params;
        let w = receiver_round(&self.prg, &p, &key.points, &key.messages, &key.base)
            .map_err(|e| OtError::Malformed(e.to_string()))?;
        Ok(CotReceiver {
            w: compress(&self.code, w, p.n as usize)?,
            first: key.first,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ot::lpn_params::DualCode;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// The smallest set the rule accepts: t = 256 blocks of 32 (N = 2^13, n = 2^12).
    fn small() -> SilentParams {
        SilentParams {
            code: DualCode::ExConv7x24,
            n: 1 << 12,
            big_n: 1 << 13,
            t: 256,
        }
    }

    #[test]
    fn rounds_over_a_channel_give_cots_at_every_index_with_fresh_indices() {
        let (mut a, mut b) = Channel::pair().unwrap();
        let server = std::thread::spawn(move || {
            let mut rng = ChaCha20Rng::seed_from_u64(20);
            let mut ot = OtSender::setup(&mut a, &mut rng).unwrap();
            let mut s = SilentSender::new(small(), &mut rng).unwrap();
            let before = a.total().sent;
            let r1 = s.round(&mut a, &mut ot, &mut rng).unwrap();
            let r2 = s.round(&mut a, &mut ot, &mut rng).unwrap();
            (r1, r2, a.total().sent - before)
        });
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        let mut ot = OtReceiver::setup(&mut b, &mut rng).unwrap();
        let mut r = SilentReceiver::new(small()).unwrap();
        let c1 = r.round(&mut b, &mut ot, &mut rng).unwrap();
        let before = b.total().sent;
        let c2 = r.round(&mut b, &mut ot, &mut rng).unwrap();
        let receiver_sent = b.total().sent - before;
        let (s1, s2, server_sent) = server.join().unwrap();
        // The sender sends only the tree messages: t (2h + 1) blocks and a frame header a round.
        assert_eq!(server_sent, 2 * (256 * 11 * 16 + 5));
        // The receiver sends IKNP's matrix for t h = 1280 random OTs: 16 bytes each, and headers.
        assert!(
            (1280 * 16..1280 * 16 + 64).contains(&receiver_sent),
            "{receiver_sent}"
        );
        let mut ones = 0;
        for (s, c) in [(&s1, &c1), (&s2, &c2)] {
            assert_eq!((s.v.len(), c.w.len()), (1 << 12, 1 << 12));
            assert_eq!(s.first, c.first);
            for (i, (&v, &w)) in s.v.iter().zip(&c.w).enumerate() {
                let bit = w & 1 == 1;
                ones += bit as usize;
                assert_eq!(w, if bit { v ^ s.delta } else { v }, "COT {i}");
            }
        }
        assert_eq!((s1.first, s2.first), (0, 1 << 12), "indices never repeat");
        // The compressed choice bits are pseudorandom: about half are set.
        assert!(
            (3500..4700).contains(&ones),
            "{ones} of 8192 choice bits set"
        );
    }

    #[test]
    fn a_short_tree_frame_and_an_insecure_set_are_refused() {
        let p = small();
        assert!(matches!(
            decode_messages(&[0u8; 100], &p),
            Err(OtError::Malformed(m)) if m.contains("tree messages")
        ));
        let weak = SilentParams {
            n: 124 << 4,
            big_n: 248 << 4,
            t: 248,
            ..p
        };
        assert!(SilentReceiver::new(weak).is_err());
    }
}
