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
/// round goes unused.
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

/// The COT sender's supply (it holds Delta).
pub struct SenderPool {
    silent: SilentSender,
    ready: VecDeque<CotSender>,
    keys: VecDeque<SenderKey>,
    cur: CotSender,
    pos: usize,
    left: u64,
}

/// The COT receiver's supply.
pub struct ReceiverPool {
    silent: SilentReceiver,
    ready: VecDeque<CotReceiver>,
    keys: VecDeque<ReceiverKey>,
    cur: CotReceiver,
    pos: usize,
    left: u64,
}

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
        let delta = silent.delta();
        Ok(SenderPool {
            silent,
            ready: VecDeque::new(),
            keys,
            cur: CotSender {
                delta,
                v: Vec::new(),
                first: 0,
            },
            pos: 0,
            left: rounds * params.n,
        })
    }

    /// The next `n` COTs, expanding rounds as needed.
    pub fn take(&mut self, n: usize) -> Result<CotSender> {
        if n as u64 > self.left {
            return Err(OtError::Exhausted {
                wanted: n,
                left: self.left,
            });
        }
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            if self.pos == self.cur.v.len() {
                self.cur = match self.ready.pop_front() {
                    Some(r) => r,
                    None => {
                        let key = self.keys.pop_front().expect("rounds cover what is left");
                        self.silent.expand(&key)?
                    }
                };
                self.pos = 0;
            }
            let k = (n - v.len()).min(self.cur.v.len() - self.pos);
            v.extend_from_slice(&self.cur.v[self.pos..self.pos + k]);
            self.pos += k;
        }
        self.left -= n as u64;
        // Indices run on across rounds (round r + 1 starts where round r ends).
        let first = self.cur.first + self.pos as u64 - n as u64;
        Ok(CotSender {
            delta: self.cur.delta,
            v,
            first,
        })
    }

    /// COTs not yet taken.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// Expands the first rounds now (in the offline phase), as many as fit `bytes` of memory
    /// at 16 bytes a COT; returns the bytes used. The rest are expanded as they are taken.
    pub fn expand_ahead(&mut self, bytes: u64) -> Result<u64> {
        let per = self.silent.params().n * 16;
        let mut used = 0;
        while used + per <= bytes {
            let Some(key) = self.keys.pop_front() else {
                break;
            };
            self.ready.push_back(self.silent.expand(&key)?);
            used += per;
        }
        Ok(used)
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
        Ok(ReceiverPool {
            silent,
            ready: VecDeque::new(),
            keys,
            cur: CotReceiver {
                w: Vec::new(),
                first: 0,
            },
            pos: 0,
            left: rounds * params.n,
        })
    }

    /// The next `n` COTs, expanding rounds as needed.
    pub fn take(&mut self, n: usize) -> Result<CotReceiver> {
        if n as u64 > self.left {
            return Err(OtError::Exhausted {
                wanted: n,
                left: self.left,
            });
        }
        let mut w = Vec::with_capacity(n);
        while w.len() < n {
            if self.pos == self.cur.w.len() {
                self.cur = match self.ready.pop_front() {
                    Some(r) => r,
                    None => {
                        let key = self.keys.pop_front().expect("rounds cover what is left");
                        self.silent.expand(&key)?
                    }
                };
                self.pos = 0;
            }
            let k = (n - w.len()).min(self.cur.w.len() - self.pos);
            w.extend_from_slice(&self.cur.w[self.pos..self.pos + k]);
            self.pos += k;
        }
        self.left -= n as u64;
        let first = self.cur.first + self.pos as u64 - n as u64;
        Ok(CotReceiver { w, first })
    }

    /// COTs not yet taken.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// Expands the first rounds now, as many as fit `bytes` (see
    /// [`SenderPool::expand_ahead`]); returns the bytes used.
    pub fn expand_ahead(&mut self, bytes: u64) -> Result<u64> {
        let per = self.silent.params().n * 16;
        let mut used = 0;
        while used + per <= bytes {
            let Some(key) = self.keys.pop_front() else {
                break;
            };
            self.ready.push_back(self.silent.expand(&key)?);
            used += per;
        }
        Ok(used)
    }
}
