//! A session's supply of COTs in one direction: rounds of silent OT prepared in the offline
//! phase (their traffic, kept as compact keys) and expanded locally, one round at a time, as
//! the online phase takes COTs. Both parties take the same counts in the same order, so they
//! cross round boundaries together and hold the same indices; an index is never handed out
//! twice, which is what makes every COT single-use.

use super::cot::{CotReceiver, CotSender};
use super::lpn_params::SilentParams;
use super::silent_cot::{ReceiverKey, SenderKey, SilentReceiver, SilentSender};
use super::{OtError, OtReceiver, OtSender, Result};
use crate::transport::{Channel, Stream};
use rand::{CryptoRng, Rng};
use std::collections::VecDeque;

/// Least and most COTs per round: small models need few, large ones amortise the rounds.
const ROUND_MIN: u64 = 1 << 14;
const ROUND_MAX: u64 = 1 << 21;

/// The round size for `total` COTs in a direction: as few rounds as rounds of at most 2^21
/// allow, each the power of two (at least 2^14) that covers its share, so little of the last
/// round goes unused. (`c3d_passes::cost::silent_rounds` is the cost model's copy of this
/// rule; a test holds them equal.)
pub fn round_params(total: u64) -> Result<SilentParams> {
    let rounds = total.max(1).div_ceil(ROUND_MAX);
    let n = total
        .max(1)
        .div_ceil(rounds)
        .next_power_of_two()
        .clamp(ROUND_MIN, ROUND_MAX);
    SilentParams::for_round(n).map_err(|e| OtError::Malformed(format!("silent OT round: {e}")))
}

/// Rounds of `params` that cover `total` COTs.
pub fn rounds_for(params: &SilentParams, total: u64) -> u64 {
    total.div_ceil(params.n)
}

/// A run of COTs with consecutive indices, as one side holds it.
pub trait CotRun {
    /// An empty run with this one's global state (the sender's Delta).
    fn emptied(&self) -> Self;
    /// Its length.
    fn len(&self) -> usize;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Index of its first COT.
    fn first(&self) -> u64;
    /// Appends `src[at..at + k]`.
    fn extend_from(&mut self, src: &Self, at: usize, k: usize);
    /// Renumbers it from `first`.
    fn set_first(&mut self, first: u64);
}

impl CotRun for CotSender {
    fn emptied(&self) -> Self {
        CotSender {
            delta: self.delta,
            v: Vec::new(),
            first: 0,
        }
    }
    fn len(&self) -> usize {
        self.v.len()
    }
    fn first(&self) -> u64 {
        self.first
    }
    fn extend_from(&mut self, src: &Self, at: usize, k: usize) {
        self.v.extend_from_slice(&src.v[at..at + k]);
    }
    fn set_first(&mut self, first: u64) {
        self.first = first;
    }
}

impl CotRun for CotReceiver {
    fn emptied(&self) -> Self {
        CotReceiver {
            w: Vec::new(),
            first: 0,
        }
    }
    fn len(&self) -> usize {
        self.w.len()
    }
    fn first(&self) -> u64 {
        self.first
    }
    fn extend_from(&mut self, src: &Self, at: usize, k: usize) {
        self.w.extend_from_slice(&src.w[at..at + k]);
    }
    fn set_first(&mut self, first: u64) {
        self.first = first;
    }
}

/// One side of a silent-OT instance, as a pool expands it.
pub trait Expand {
    /// What a prepared round keeps.
    type Key;
    /// What a round expands to.
    type Run: CotRun;
    /// The round's COTs, locally.
    fn expand_key(&self, key: &Self::Key) -> Result<Self::Run>;
    /// COTs per round.
    fn round_size(&self) -> u64;
}

impl Expand for SilentSender {
    type Key = SenderKey;
    type Run = CotSender;
    fn expand_key(&self, key: &SenderKey) -> Result<CotSender> {
        self.expand(key)
    }
    fn round_size(&self) -> u64 {
        self.params().n
    }
}

impl Expand for SilentReceiver {
    type Key = ReceiverKey;
    type Run = CotReceiver;
    fn expand_key(&self, key: &ReceiverKey) -> Result<CotReceiver> {
        self.expand(key)
    }
    fn round_size(&self) -> u64 {
        self.params().n
    }
}

/// One side's supply: prepared rounds, some expanded ahead, handed out in order.
pub struct Pool<E: Expand> {
    silent: E,
    ready: VecDeque<E::Run>,
    keys: VecDeque<E::Key>,
    cur: E::Run,
    pos: usize,
    left: u64,
}

/// The COT sender's supply (it holds Delta).
pub type SenderPool = Pool<SilentSender>;

/// The COT receiver's supply.
pub type ReceiverPool = Pool<SilentReceiver>;

impl SenderPool {
    /// Prepares `rounds` rounds with the peer (offline), COT indices from `first` on: the
    /// base OTs from `ot`, a fresh Delta.
    pub fn prepare<S: Stream, R: Rng + CryptoRng>(
        params: SilentParams,
        rounds: u64,
        first: u64,
        ch: &mut Channel<S>,
        ot: &mut OtSender,
        rng: &mut R,
    ) -> Result<Self> {
        let mut silent = SilentSender::new(params, rng)?.start_at(first);
        let keys = (0..rounds)
            .map(|_| silent.prepare(ch, ot, rng))
            .collect::<Result<VecDeque<_>>>()?;
        let cur = CotSender {
            delta: silent.delta(),
            v: Vec::new(),
            first: 0,
        };
        Ok(Pool::new(silent, keys, cur))
    }
}

impl ReceiverPool {
    /// Prepares `rounds` rounds with the peer (offline), COT indices from `first` on, the
    /// base OTs from `ot`.
    pub fn prepare<S: Stream, R: Rng + CryptoRng>(
        params: SilentParams,
        rounds: u64,
        first: u64,
        ch: &mut Channel<S>,
        ot: &mut OtReceiver,
        rng: &mut R,
    ) -> Result<Self> {
        let mut silent = SilentReceiver::new(params)?.start_at(first);
        let keys = (0..rounds)
            .map(|_| silent.prepare(ch, ot, rng))
            .collect::<Result<VecDeque<_>>>()?;
        let cur = CotReceiver {
            w: Vec::new(),
            first: 0,
        };
        Ok(Pool::new(silent, keys, cur))
    }
}

impl<E: Expand> Pool<E> {
    fn new(silent: E, keys: VecDeque<E::Key>, cur: E::Run) -> Self {
        let left = keys.len() as u64 * silent.round_size();
        Pool {
            silent,
            ready: VecDeque::new(),
            keys,
            cur,
            pos: 0,
            left,
        }
    }

    /// The next `n` COTs, expanding rounds as needed.
    pub fn take(&mut self, n: usize) -> Result<E::Run> {
        if n as u64 > self.left {
            return Err(OtError::Exhausted {
                wanted: n,
                left: self.left,
            });
        }
        let mut out = self.cur.emptied();
        while out.len() < n {
            if self.pos == self.cur.len() {
                self.cur = match self.ready.pop_front() {
                    Some(r) => r,
                    None => {
                        let key = self.keys.pop_front().expect("rounds cover what is left");
                        self.silent.expand_key(&key)?
                    }
                };
                self.pos = 0;
            }
            let k = (n - out.len()).min(self.cur.len() - self.pos);
            out.extend_from(&self.cur, self.pos, k);
            self.pos += k;
        }
        self.left -= n as u64;
        // Indices run on across rounds (round r + 1 starts where round r ends).
        out.set_first(self.cur.first() + self.pos as u64 - n as u64);
        Ok(out)
    }

    /// COTs not yet taken.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// Expands the first rounds now (in the offline phase), as many as fit `bytes` of memory
    /// at 16 bytes a COT; returns the bytes used. The rest are expanded as they are taken.
    pub fn expand_ahead(&mut self, bytes: u64) -> Result<u64> {
        let per = self.silent.round_size() * 16;
        let mut used = 0;
        while used + per <= bytes {
            let Some(key) = self.keys.pop_front() else {
                break;
            };
            self.ready.push_back(self.silent.expand_key(&key)?);
            used += per;
        }
        Ok(used)
    }
}
