//! One layer by OT-based comparisons between the parties (issue 16): ReLU, max-pool and
//! max-pool + ReLU, computing exactly what `c3dc simulate` computes, f(max_j floor(y_j / 2^t)),
//! as floor(f(max_j y_j) / 2^t) (floor is monotone and ReLU commutes with it).
//!
//! The maximum is a tree of steps max(a, b) = b + DReLU(a - b) (a - b), about log2 k levels
//! per window, each a DReLU mod p ([`crate::nonlinear::drelu_field`]: two millionaire
//! comparisons sharing the client's leaf OTs, then a 1-out-of-4 OT) and a multiplexer (two
//! additive COTs, one per direction). ReLU is one more step against a public 0. Truncation is
//! exact ([`crate::nonlinear::truncate`]). Last, the client re-randomises its share to the
//! mask it chose offline, as after a Beaver square, so the next linear layer's offline work
//! holds.
//!
//! Every COT comes from the session's pools ([`CotSupply`]), prepared offline by silent OT
//! and taken in the same counts and order by both parties; [`ComparedLayer::cots`] says how
//! many, so the offline phase prepares exactly enough. All windows of a chunk advance level
//! by level together, so a level costs a fixed number of round trips whatever the chunk size.

use super::garbled::Windows;
use super::{check_field, PeerMisbehaved, SessionError};
use crate::bitpack::{pack, pack_bits, unpack, unpack_bits};
use crate::field::Field;
use crate::gc::hash::Hasher;
use crate::nonlinear::millionaire::{
    digits, level_inputs, level_outputs, receiver_leaves, sender_leaves, split,
};
use crate::nonlinear::pair_triples::{self, client_pairs, server_pairs, PairTriples};
use crate::nonlinear::{drelu_field, max_tree, mux, truncate};
use crate::ot::cot_pool::{round_params, rounds_for, ReceiverPool, SenderPool};
use crate::ot::one_of_n::{receiver_fix, receiver_outputs, sender_tables};
use crate::ot::{OtReceiver, OtSender};
use crate::transport::{Channel, Stream};
use crate::wire::Tag;
use rand::{CryptoRng, Rng};
use std::ops::Range;

/// Candidates per chunk: bounds the COTs, tables and shares in memory at once (about 160
/// COTs of 16 bytes per candidate and side).
const CHUNK: usize = 1 << 16;

/// An OT-compared layer's public description, derived from the plan by both parties.
#[derive(Clone, Debug)]
pub struct ComparedLayer {
    /// The field modulus.
    pub p: u64,
    /// The windows (one position each for a ReLU).
    pub windows: Windows,
    /// Bits truncated (floor) after the maximum.
    pub truncate: u32,
    /// ReLU after the maximum.
    pub relu: bool,
    /// A public multiple of 2^t the server adds before truncating a signed maximum (pools
    /// without ReLU), so the truncated value is in [0, (p-1)/2]; 0 with ReLU.
    pub offset: u64,
}

/// Bits of p.
fn width(p: u64) -> u32 {
    64 - p.leading_zeros()
}

impl ComparedLayer {
    /// Max steps of window u (one more with ReLU, against 0).
    fn steps(&self, u: usize) -> usize {
        self.windows.of(u).len() + self.relu as usize - 1
    }

    /// COTs the layer takes, (forward: the server's Delta; reverse: the client's). Per max
    /// step: 4 a leaf digit, one each way per pair of ANDs (2 (q - 1) pairs), 2 for the
    /// 1-of-4, one each way for the multiplexer; per truncation likewise, with 4 for its
    /// 1-of-16.
    pub fn cots(&self) -> (u64, u64) {
        let q = digits(drelu_field::compare_bits(self.p)) as u64;
        let steps: u64 = (0..self.windows.len()).map(|u| self.steps(u) as u64).sum();
        let mut fwd = steps * (4 * q + 2 * (q - 1) + 3);
        let mut rev = steps * (2 * (q - 1) + 1);
        if self.truncate > 0 {
            let qt = digits(truncate::compare_bits(self.truncate)) as u64;
            fwd += self.windows.len() as u64 * (4 * qt + 2 * (qt - 1) + 4);
            rev += self.windows.len() as u64 * 2 * (qt - 1);
        }
        (fwd, rev)
    }

    /// Consecutive windows with at most [`CHUNK`] candidates (one window at least).
    fn chunks(&self) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let (mut start, mut n) = (0, 0);
        for u in 0..self.windows.len() {
            let k = self.windows.of(u).len() + self.relu as usize;
            if u > start && n + k > CHUNK {
                out.push(start..u);
                (start, n) = (u, 0);
            }
            n += k;
        }
        if start < self.windows.len() {
            out.push(start..self.windows.len());
        }
        out
    }
}

/// One party's COT pools for one layer: forward (the server holds Delta) and reverse (the
/// client does).
pub enum CotSupply {
    /// The server's side.
    Server {
        /// Forward COTs, as sender.
        fwd: SenderPool,
        /// Reverse COTs, as receiver.
        rev: ReceiverPool,
    },
    /// The client's side.
    Client {
        /// Forward COTs, as receiver.
        fwd: ReceiverPool,
        /// Reverse COTs, as sender.
        rev: SenderPool,
    },
}

/// One party in a compared layer: the channel, its COTs and (the server's) randomness; the
/// client's side draws none.
struct Party<'a, S: Stream, R> {
    ch: &'a mut Channel<S>,
    cots: &'a mut CotSupply,
    rng: Option<&'a mut R>,
    f: Field,
    h: Hasher,
}

fn wrong(what: &'static str, got: usize, want: usize) -> SessionError {
    PeerMisbehaved::WrongLength { what, got, want }.into()
}

impl<S: Stream, R: Rng + CryptoRng> Party<'_, S, R> {
    fn server(&self) -> bool {
        matches!(self.cots, CotSupply::Server { .. })
    }

    /// The server's randomness (its masks).
    fn rng(&mut self) -> &mut R {
        self.rng
            .as_mut()
            .expect("the server's side has its randomness")
    }

    fn recv_bits(
        &mut self,
        tag: Tag,
        n: usize,
        what: &'static str,
    ) -> Result<Vec<bool>, SessionError> {
        let b = self.ch.recv(tag)?;
        unpack_bits(&b, n).ok_or_else(|| wrong(what, b.len(), n.div_ceil(8)))
    }

    fn recv_packed(
        &mut self,
        tag: Tag,
        n: usize,
        w: u32,
        what: &'static str,
    ) -> Result<Vec<u64>, SessionError> {
        let b = self.ch.recv(tag)?;
        unpack(&b, n, w).ok_or_else(|| wrong(what, b.len(), crate::bitpack::packed_len(n, w)))
    }

    fn recv_field(
        &mut self,
        tag: Tag,
        n: usize,
        what: &'static str,
    ) -> Result<Vec<u64>, SessionError> {
        let v = self.recv_packed(tag, n, width(self.f.p()), what)?;
        check_field(self.f.p(), &v, what)?;
        Ok(v)
    }

    /// Pairs of triples for `n` pairs of AND gates sharing an input (one forward and one
    /// reverse COT each, no traffic).
    fn pairs(&mut self, n: usize) -> Result<PairTriples, SessionError> {
        Ok(match self.cots {
            CotSupply::Server { fwd, rev } => server_pairs(&self.h, &fwd.take(n)?, &rev.take(n)?),
            CotSupply::Client { fwd, rev } => client_pairs(&self.h, &fwd.take(n)?, &rev.take(n)?),
        })
    }

    /// 1-out-of-2^m OTs of `l`-bit messages on forward COTs: the server gives `messages`
    /// (2^m per OT), the client `indices` and gets its messages.
    fn one_of_n(
        &mut self,
        m: u32,
        l: u32,
        messages: &[u64],
        indices: &[u8],
    ) -> Result<Vec<u64>, SessionError> {
        match self.cots {
            CotSupply::Server { fwd, .. } => {
                let n = messages.len() >> m;
                let mut cs = fwd.take(n * m as usize)?;
                let fix = self.recv_bits_from(n * m as usize)?;
                let tables = sender_tables(&self.h, &mut cs, &fix, m, l, messages);
                self.ch.send(Tag::CmpTables, &pack(&tables, l))?;
                Ok(Vec::new())
            }
            CotSupply::Client { fwd, .. } => {
                let n = indices.len();
                let mut cr = fwd.take(n * m as usize)?;
                let fix = receiver_fix(&mut cr, m, indices);
                self.ch.send(Tag::CmpChoiceFix, &pack_bits(&fix))?;
                let tables = self.recv_packed(Tag::CmpTables, n << m, l, "OT tables")?;
                Ok(receiver_outputs(&self.h, &cr, m, l, indices, &tables))
            }
        }
    }

    fn recv_bits_from(&mut self, n: usize) -> Result<Vec<bool>, SessionError> {
        self.recv_bits(Tag::CmpChoiceFix, n, "choice fixes")
    }

    /// Pairs of AND gates x y_1, x y_2 on shares, one exchange of 3 bits a pair (the
    /// client's openings first).
    fn and_pairs(
        &mut self,
        x: &[bool],
        y: &[[bool; 2]],
        t: &PairTriples,
        from: usize,
    ) -> Result<Vec<[bool; 2]>, SessionError> {
        let mine = pair_triples::open(x, y, t, from);
        let n = mine.len();
        let theirs = if self.server() {
            let b = self.recv_bits(Tag::CmpAndOpen, n, "AND openings")?;
            self.ch.send(Tag::CmpAndOpen, &pack_bits(&mine))?;
            b
        } else {
            self.ch.send(Tag::CmpAndOpen, &pack_bits(&mine))?;
            self.recv_bits(Tag::CmpAndOpen, n, "AND openings")?
        };
        Ok(pair_triples::finish(self.server(), &mine, &theirs, t, from))
    }

    /// Shares of [a1 < b] and [a2 < b] on `bits` bits: the server's inputs `a1`, `a2`, the
    /// client's `b` (the other side passes empty slices and the count `n`), one leaf OT per
    /// digit of b carrying both comparisons' (lt, eq) bits.
    fn compare2(
        &mut self,
        n: usize,
        a1: &[u64],
        a2: &[u64],
        b: &[u64],
        bits: u32,
    ) -> Result<(Vec<bool>, Vec<bool>), SessionError> {
        let q = digits(bits);
        let (mut s1, mut s2);
        if self.server() {
            let masks: Vec<(bool, bool)> = (0..2 * n * q)
                .map(|_| (self.rng().random(), self.rng().random()))
                .collect();
            let (m1, sh1) = sender_leaves(a1, bits, &masks[..n * q]);
            let (m2, sh2) = sender_leaves(a2, bits, &masks[n * q..]);
            let messages: Vec<u64> = m1.iter().zip(&m2).map(|(x, y)| x | y << 2).collect();
            self.one_of_n(4, 4, &messages, &[])?;
            (s1, s2) = (sh1, sh2);
        } else {
            let bd: Vec<u8> = b.iter().flat_map(|&v| split(v, bits)).collect();
            let got = self.one_of_n(4, 4, &[], &bd)?;
            s1 = receiver_leaves(&got.iter().map(|o| o & 3).collect::<Vec<_>>());
            s2 = receiver_leaves(&got.iter().map(|o| o >> 2).collect::<Vec<_>>());
        }
        // Each combination of two digits is a pair of ANDs sharing eq_hi.
        let t = self.pairs(2 * (q - 1) * n)?;
        let (mut w, mut used) = (q, 0);
        while w > 1 {
            let (x1, y1) = level_inputs(&s1, w);
            let (x2, y2) = level_inputs(&s2, w);
            let k = x1.len();
            let x: Vec<bool> = x1.iter().chain(&x2).step_by(2).copied().collect();
            let y: Vec<[bool; 2]> = y1
                .chunks_exact(2)
                .chain(y2.chunks_exact(2))
                .map(|p| [p[0], p[1]])
                .collect();
            let z: Vec<bool> = self
                .and_pairs(&x, &y, &t, used)?
                .into_iter()
                .flatten()
                .collect();
            used += x.len();
            s1 = level_outputs(&s1, w, &z[..k]);
            s2 = level_outputs(&s2, w, &z[k..]);
            w = w.div_ceil(2);
        }
        Ok((
            s1.iter().map(|s| s.0).collect(),
            s2.iter().map(|s| s.0).collect(),
        ))
    }

    /// Shares of DReLU(x) = [x <= (p-1)/2] for this party's shares `x`.
    fn drelu(&mut self, x: &[u64]) -> Result<Vec<bool>, SessionError> {
        let p = self.f.p();
        let n = x.len();
        let bits = drelu_field::compare_bits(p);
        if self.server() {
            let ins: Vec<(u64, u64, bool)> = x
                .iter()
                .map(|&v| drelu_field::sender_inputs(p, v))
                .collect();
            let wrap: Vec<u64> = ins.iter().map(|i| i.0).collect();
            let cmp: Vec<u64> = ins.iter().map(|i| i.1).collect();
            let (w0, c0) = self.compare2(n, &wrap, &cmp, &[], bits)?;
            let masks: Vec<bool> = (0..n).map(|_| self.rng().random()).collect();
            let msgs: Vec<u64> = (0..n)
                .flat_map(|i| drelu_field::sender_final(ins[i].2, w0[i], c0[i], masks[i]))
                .collect();
            self.one_of_n(2, 1, &msgs, &[])?;
            Ok(masks.iter().map(|m| !m).collect())
        } else {
            let b: Vec<u64> = x
                .iter()
                .map(|&v| drelu_field::receiver_input(p, v))
                .collect();
            let (w1, c1) = self.compare2(n, &[], &[], &b, bits)?;
            let idx: Vec<u8> = (0..n)
                .map(|i| drelu_field::receiver_final(w1[i], c1[i]))
                .collect();
            Ok(self
                .one_of_n(2, 1, &[], &idx)?
                .iter()
                .map(|&g| g == 1)
                .collect())
        }
    }

    /// Shares of sel x: one additive COT each way.
    fn mux(&mut self, sel: &[bool], x: &[u64]) -> Result<Vec<u64>, SessionError> {
        let n = x.len();
        let f = self.f;
        let corr = mux::correlation(&f, sel, x);
        let w = width(f.p());
        let (keep, t) = match self.cots {
            CotSupply::Server { fwd, rev } => {
                let (mut cs, mut cr) = (fwd.take(n)?, rev.take(n)?);
                let fix = self.recv_bits(Tag::CmpChoiceFix, n, "choice fixes")?;
                cs.fix_choices(&fix);
                let (keep, y) = cs.additive(&self.h, &f, &corr);
                let mine = cr.fix_choices(sel);
                self.ch.send(Tag::CmpChoiceFix, &pack_bits(&mine))?;
                self.ch.send(Tag::CmpCorrection, &pack(&y, w))?;
                let y = self.recv_field(Tag::CmpCorrection, n, "COT corrections")?;
                (keep, cr.additive(&self.h, &f, &y))
            }
            CotSupply::Client { fwd, rev } => {
                let (mut cr, mut cs) = (fwd.take(n)?, rev.take(n)?);
                let mine = cr.fix_choices(sel);
                self.ch.send(Tag::CmpChoiceFix, &pack_bits(&mine))?;
                let fix = self.recv_bits(Tag::CmpChoiceFix, n, "choice fixes")?;
                cs.fix_choices(&fix);
                let y = self.recv_field(Tag::CmpCorrection, n, "COT corrections")?;
                let t = cr.additive(&self.h, &f, &y);
                let (keep, y) = cs.additive(&self.h, &f, &corr);
                self.ch.send(Tag::CmpCorrection, &pack(&y, w))?;
                (keep, t)
            }
        };
        Ok(mux::combine(&f, sel, x, &keep, &t))
    }

    /// Shares of floor(z / 2^t) for z in [0, (p-1)/2].
    fn truncate(&mut self, t: u32, z: &[u64]) -> Result<Vec<u64>, SessionError> {
        let f = self.f;
        let p = f.p();
        let n = z.len();
        let bits = truncate::compare_bits(t);
        if self.server() {
            let ins: Vec<(u64, u64, truncate::Own)> = z
                .iter()
                .map(|&v| truncate::sender_inputs(p, t, v))
                .collect();
            let a1: Vec<u64> = ins.iter().map(|i| i.0).collect();
            let a2: Vec<u64> = ins.iter().map(|i| i.1).collect();
            let (c0, c1) = self.compare2(n, &a1, &a2, &[], bits)?;
            let masks: Vec<u64> = (0..n).map(|_| f.random(self.rng())).collect();
            let msgs: Vec<u64> = (0..n)
                .flat_map(|i| truncate::sender_messages(&f, t, &ins[i].2, c0[i], c1[i], masks[i]))
                .collect();
            self.one_of_n(4, width(p), &msgs, &[])?;
            Ok((0..n)
                .map(|i| truncate::sender_share(&f, &ins[i].2, masks[i]))
                .collect())
        } else {
            let ins: Vec<(u64, truncate::Own)> = z
                .iter()
                .map(|&v| truncate::receiver_input(p, t, v))
                .collect();
            let b: Vec<u64> = ins.iter().map(|i| i.0).collect();
            let (c0, c1) = self.compare2(n, &[], &[], &b, bits)?;
            let idx: Vec<u8> = (0..n)
                .map(|i| truncate::receiver_index(&ins[i].1, c0[i], c1[i]))
                .collect();
            let got = self.one_of_n(4, width(p), &[], &idx)?;
            Ok((0..n)
                .map(|i| truncate::receiver_share(&f, &ins[i].1, f.reduce(got[i])))
                .collect())
        }
    }

    /// This party's shares of the layer's outputs for the windows `r`, from its shares of
    /// the layer's input.
    fn windows(
        &mut self,
        layer: &ComparedLayer,
        r: Range<usize>,
        input: &[u64],
    ) -> Result<Vec<u64>, SessionError> {
        let f = self.f;
        let mut cand: Vec<Vec<u64>> = r
            .clone()
            .map(|u| {
                let mut c: Vec<u64> = layer
                    .windows
                    .of(u)
                    .iter()
                    .map(|&i| input[i as usize])
                    .collect();
                if layer.relu {
                    c.push(0);
                }
                c
            })
            .collect();
        // Level by level, the pairs and carries of the window tree (`max_tree::level`).
        while cand.iter().any(|c| c.len() > 1) {
            let levels: Vec<_> = cand.iter().map(|c| max_tree::level(c.len())).collect();
            let (mut d, mut b) = (Vec::new(), Vec::new());
            for (c, (pairs, _)) in cand.iter().zip(&levels) {
                for &(i, j) in pairs {
                    d.push(f.sub(c[i], c[j]));
                    b.push(c[j]);
                }
            }
            let sel = self.drelu(&d)?;
            let m = self.mux(&sel, &d)?;
            let mut k = 0;
            for (c, (pairs, carry)) in cand.iter_mut().zip(&levels) {
                let mut next: Vec<u64> = (k..k + pairs.len()).map(|i| f.add(b[i], m[i])).collect();
                k += pairs.len();
                next.extend(carry.map(|i| c[i]));
                *c = next;
            }
        }
        let v: Vec<u64> = cand.into_iter().map(|c| c[0]).collect();
        let t = layer.truncate;
        if t == 0 {
            return Ok(v);
        }
        let server = self.server();
        let z: Vec<u64> = if server && layer.offset > 0 {
            v.iter()
                .map(|&x| f.add(x, f.reduce(layer.offset)))
                .collect()
        } else {
            v
        };
        let mut y = self.truncate(t, &z)?;
        if server && layer.offset > 0 {
            let o = f.reduce(layer.offset >> t);
            for y in &mut y {
                *y = f.sub(*y, o);
            }
        }
        Ok(y)
    }
}

/// The server's side of a compared layer: its shares of the outputs from its shares of the
/// input (the online phase).
pub fn server_layer<S: Stream, R: Rng + CryptoRng>(
    ch: &mut Channel<S>,
    cots: &mut CotSupply,
    layer: &ComparedLayer,
    input: &[u64],
    rng: &mut R,
    tick: &mut dyn FnMut(usize, usize),
) -> Result<Vec<u64>, SessionError> {
    let f = Field::new(layer.p).map_err(super::PlanError::from)?;
    let mut party = Party {
        ch,
        cots,
        rng: Some(rng),
        f,
        h: Hasher::default(),
    };
    let chunks = layer.chunks();
    let mut out = Vec::with_capacity(layer.windows.len());
    for (i, r) in chunks.iter().enumerate() {
        let mut y = party.windows(layer, r.clone(), input)?;
        // The client's share becomes its offline mask: it sends its share minus the mask.
        let d = party.recv_field(Tag::Rerandomise, r.len(), "re-randomised share")?;
        f.add_assign(&mut y, &d);
        out.extend(y);
        tick(i + 1, chunks.len());
    }
    Ok(out)
}

/// The client's side of a compared layer: from its shares of the input (known offline), it
/// ends holding `mask` as its share of the outputs.
pub fn client_layer<S: Stream>(
    ch: &mut Channel<S>,
    cots: &mut CotSupply,
    layer: &ComparedLayer,
    input: &[u64],
    mask: &[u64],
    tick: &mut dyn FnMut(usize, usize),
) -> Result<(), SessionError> {
    let f = Field::new(layer.p).map_err(super::PlanError::from)?;
    let mut party: Party<'_, S, rand_chacha::ChaCha20Rng> = Party {
        ch,
        cots,
        rng: None,
        f,
        h: Hasher::default(),
    };
    let chunks = layer.chunks();
    for (i, r) in chunks.iter().enumerate() {
        let mut y = party.windows(layer, r.clone(), input)?;
        f.sub_assign(&mut y, &mask[r.clone()]);
        party.ch.send(Tag::Rerandomise, &pack(&y, width(layer.p)))?;
        tick(i + 1, chunks.len());
    }
    Ok(())
}

/// Memory a session may hold in COTs expanded offline, per party (16 bytes each); the rest
/// are expanded online as the layers take them.
pub const EXPAND_AHEAD_BYTES: u64 = 1 << 30;

/// Index of the reverse instance's first COT: far above any forward index, so no two COTs of
/// a session share an index, and so a hash tweak.
pub const REVERSE_FIRST: u64 = 1 << 62;

/// Where a session's COT indices stand, and its reverse IKNP (the client as OT sender),
/// set up at the first compared layer. Each layer's pools start where the last one's ended.
pub struct SupplyState<T> {
    back: Option<T>,
    next: (u64, u64),
}

impl<T> Default for SupplyState<T> {
    fn default() -> Self {
        SupplyState {
            back: None,
            next: (0, REVERSE_FIRST),
        }
    }
}

/// The server's COT pools for one layer (its [`ComparedLayer::cots`]), prepared offline with
/// the client: forward rounds on the session's IKNP (`ot`), reverse rounds on the second IKNP
/// with the roles swapped.
pub fn server_supply<S: Stream, R: Rng + CryptoRng>(
    ch: &mut Channel<S>,
    ot: &mut OtSender,
    state: &mut SupplyState<OtReceiver>,
    layer: &ComparedLayer,
    rng: &mut R,
) -> Result<CotSupply, SessionError> {
    let (fwd, rev) = layer.cots();
    let pf = round_params(fwd)?;
    let (rf, rr) = (rounds_for(&pf, fwd), 0);
    let fwd_pool = SenderPool::prepare(pf, rf, state.next.0, ch, ot, rng)?;
    if state.back.is_none() {
        state.back = Some(OtReceiver::setup(ch, rng)?);
    }
    let back = state.back.as_mut().expect("set up above");
    let pr = round_params(rev)?;
    let rr = rr + rounds_for(&pr, rev);
    let rev_pool = ReceiverPool::prepare(pr, rr, state.next.1, ch, back, rng)?;
    state.next.0 += rf * pf.n;
    state.next.1 += rr * pr.n;
    Ok(CotSupply::Server {
        fwd: fwd_pool,
        rev: rev_pool,
    })
}

/// The client's COT pools for one layer, the mirror of [`server_supply`].
pub fn client_supply<S: Stream, R: Rng + CryptoRng>(
    ch: &mut Channel<S>,
    ot: &mut OtReceiver,
    state: &mut SupplyState<OtSender>,
    layer: &ComparedLayer,
    rng: &mut R,
) -> Result<CotSupply, SessionError> {
    let (fwd, rev) = layer.cots();
    let pf = round_params(fwd)?;
    let rf = rounds_for(&pf, fwd);
    let fwd_pool = ReceiverPool::prepare(pf, rf, state.next.0, ch, ot, rng)?;
    if state.back.is_none() {
        state.back = Some(OtSender::setup(ch, rng)?);
    }
    let back = state.back.as_mut().expect("set up above");
    let pr = round_params(rev)?;
    let rr = rounds_for(&pr, rev);
    let rev_pool = SenderPool::prepare(pr, rr, state.next.1, ch, back, rng)?;
    state.next.0 += rf * pf.n;
    state.next.1 += rr * pr.n;
    Ok(CotSupply::Client {
        fwd: fwd_pool,
        rev: rev_pool,
    })
}

impl CotSupply {
    /// Expands the layer's first rounds now (offline), within `bytes` of memory; returns the
    /// bytes used. A party's own choice: the peer sees no difference.
    pub fn expand_ahead(&mut self, bytes: u64) -> Result<u64, SessionError> {
        Ok(match self {
            CotSupply::Server { fwd, rev } => {
                let a = fwd.expand_ahead(bytes)?;
                a + rev.expand_ahead(bytes - a)?
            }
            CotSupply::Client { fwd, rev } => {
                let a = fwd.expand_ahead(bytes)?;
                a + rev.expand_ahead(bytes - a)?
            }
        })
    }

    /// COTs left, (forward, reverse): both 0 once every layer has run, if the count was right.
    pub fn left(&self) -> (u64, u64) {
        match self {
            CotSupply::Server { fwd, rev } => (fwd.left(), rev.left()),
            CotSupply::Client { fwd, rev } => (fwd.left(), rev.left()),
        }
    }
}

#[cfg(test)]
mod tests;
