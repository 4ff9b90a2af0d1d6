//! One garbled layer between the parties: the server garbles every window's circuit offline
//! and sends the tables, the client fetches the labels of its inputs (its share and its next
//! mask, both known offline) by OT and spools both; online the server sends the labels of its
//! share, the client evaluates and returns the output labels, and the server decodes its new
//! share y - r.
//!
//! A layer the client has no room to spool is streamed instead: the whole exchange runs in
//! the online phase, chunk by chunk ([`server_streamed`], [`client_streamed`]).
//!
//! Work goes in chunks of windows bounded by AND gates, so neither side holds more than a
//! chunk's tables or labels in memory. The server keeps no labels: each window is garbled
//! from its own ChaCha stream of one secret per-layer seed, so the offset and the labels of
//! the server's inputs are re-derived online; it keeps only the low 64 bits of the output
//! zero labels, enough to decode and to catch a wrong label.

use super::spool::Spool;
use super::{PeerMisbehaved, SessionError};
use crate::gc::circuit::from_bits;
use crate::gc::halfgates::garbler_labels;
use crate::gc::lockstep::{evaluate_lockstep, garble_lockstep, LOCKSTEP};
use crate::gc::pool_relu::{evaluator_input, garbler_input, width};
use crate::gc::{Circuit, Hasher, Label, Tweak};
use crate::ot::{OtReceiver, OtSender};
use crate::transport::{Channel, Stream};
use crate::wire::Tag;
use rand::{CryptoRng, Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use std::collections::HashMap;
use std::ops::Range;

/// AND gates per chunk (8 MiB of tables).
const CHUNK_ANDS: usize = 1 << 18;

/// The windows of a garbled layer: window u reads the input positions
/// `taps[offsets[u]..offsets[u + 1]]` and yields output u (a ReLU's windows are one position
/// each, a max-pool's its valid taps).
#[derive(Clone, Debug)]
pub struct Windows {
    /// Input positions, window after window.
    pub taps: Vec<u32>,
    /// Start of each window in `taps`, plus the end.
    pub offsets: Vec<u32>,
}

impl Windows {
    /// Number of windows (outputs).
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The input positions of window `u`.
    pub fn of(&self, u: usize) -> &[u32] {
        &self.taps[self.offsets[u] as usize..self.offsets[u + 1] as usize]
    }
}

/// A garbled layer's public description: all either party needs to garble or evaluate it,
/// derived from the plan by both (the schedule builds it once, in its step's kind).
#[derive(Clone, Debug)]
pub struct GarbledLayer {
    /// The field modulus.
    pub p: u64,
    /// The windows.
    pub windows: Windows,
    /// Bits truncated before comparing.
    pub truncate: u32,
    /// ReLU after the maximum.
    pub relu: bool,
    /// The circuit of each window size that occurs, built once for both phases.
    pub circuits: HashMap<usize, Circuit>,
    /// Index of the layer's step in the schedule (separates hash tweaks between layers).
    pub index: u32,
}

impl GarbledLayer {
    fn circuit(&self, u: usize) -> &Circuit {
        &self.circuits[&self.windows.of(u).len()]
    }

    /// One party's shares of window u's taps, from its share of the layer's input.
    fn window_shares(&self, u: usize, input: &[u64]) -> Vec<u64> {
        self.windows
            .of(u)
            .iter()
            .map(|&i| input[i as usize])
            .collect()
    }

    /// Consecutive windows with at most [`CHUNK_ANDS`] AND gates (one window at least).
    fn chunks(&self) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let (mut start, mut ands) = (0, 0);
        for u in 0..self.windows.len() {
            let a = self.circuit(u).and_count();
            if u > start && ands + a > CHUNK_ANDS {
                out.push(start..u);
                (start, ands) = (u, 0);
            }
            ands += a;
        }
        if start < self.windows.len() {
            out.push(start..self.windows.len());
        }
        out
    }

    /// The windows of `r` in groups of consecutive windows with one circuit, at most
    /// [`LOCKSTEP`] each: a group is garbled and evaluated in lockstep.
    fn groups(&self, r: &Range<usize>) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut start = r.start;
        for u in r.clone() {
            if u > start
                && (u - start == LOCKSTEP
                    || self.windows.of(u).len() != self.windows.of(start).len())
            {
                out.push(start..u);
                start = u;
            }
        }
        if start < r.end {
            out.push(start..r.end);
        }
        out
    }

    /// Tweaks of window u: 2^40 per window (far above any window's 2 per AND gate), 2^96 per
    /// layer.
    fn tweak(&self, u: usize) -> Tweak {
        Tweak::new(((self.index as u128) << 96) | ((u as u128) << 40))
    }

    fn bytes(&self, r: &Range<usize>, per: impl Fn(&Circuit) -> usize) -> usize {
        r.clone().map(|u| per(self.circuit(u))).sum()
    }
}

fn unit_rng(seed: &[u8; 32], u: usize) -> ChaCha20Rng {
    let mut r = ChaCha20Rng::from_seed(*seed);
    r.set_stream(u as u64);
    r
}

fn labels_to_bytes(ls: &[Label], out: &mut Vec<u8>) {
    for l in ls {
        out.extend_from_slice(&l.to_bytes());
    }
}

fn bytes_to_labels(b: &[u8]) -> Vec<Label> {
    b.chunks_exact(16)
        .map(|c| Label::from_bytes(c.try_into().expect("16 bytes")))
        .collect()
}

/// A label as an OT message: its 16 wire bytes as one block.
fn ot_message(l: Label) -> u128 {
    u128::from_le_bytes(l.to_bytes())
}

fn expect_len(what: &'static str, got: usize, want: usize) -> Result<(), SessionError> {
    if got != want {
        return Err(PeerMisbehaved::WrongLength { what, got, want }.into());
    }
    Ok(())
}

/// What the server keeps of a garbled layer between the phases.
pub struct ServerLayer {
    seed: [u8; 32],
    out_zero: Vec<u64>,
}

impl GarbledLayer {
    /// Bytes the client spools for this layer when it is prepared offline (tables and the
    /// labels of its inputs).
    pub fn spool_bytes(&self) -> u64 {
        (0..self.windows.len())
            .map(|u| {
                let c = self.circuit(u);
                (c.and_count() * 32 + c.evaluator_inputs as usize * 16) as u64
            })
            .sum()
    }

    /// Bytes the server keeps for this layer between the phases when it is prepared offline.
    pub fn keep_bytes(&self) -> u64 {
        (self.windows.len() * width(self.p) * 8) as u64
    }
}

/// One chunk garbled: its tables (bytes), the OT pairs of the client's input labels, and the
/// low halves of its output zero labels.
struct GarbledChunk {
    tables: Vec<u8>,
    pairs: Vec<(u128, u128)>,
    out_zero: Vec<u64>,
}

/// Garbles the windows of `r`, each from its own ChaCha stream of `seed`, groups in
/// parallel and each group in lockstep.
fn garble_chunk(layer: &GarbledLayer, seed: &[u8; 32], r: &Range<usize>) -> GarbledChunk {
    let hasher = Hasher::default();
    let parts: Vec<GarbledChunk> = layer
        .groups(r)
        .into_par_iter()
        .map(|grp| {
            let circ = layer.circuit(grp.start);
            let per = circ.and_count() * 32;
            let mut tables = vec![0u8; grp.len() * per];
            let mut at = vec![0usize; grp.len()];
            let tweaks: Vec<Tweak> = grp.clone().map(|u| layer.tweak(u)).collect();
            let mut rngs: Vec<ChaCha20Rng> = grp.clone().map(|u| unit_rng(seed, u)).collect();
            let gbs = garble_lockstep(circ, &hasher, &tweaks, &mut rngs, |k, [tg, te]| {
                let o = k * per + at[k];
                tables[o..o + 16].copy_from_slice(&tg.to_bytes());
                tables[o + 16..o + 32].copy_from_slice(&te.to_bytes());
                at[k] += 32;
            });
            let mut out = GarbledChunk {
                tables,
                pairs: Vec::new(),
                out_zero: Vec::new(),
            };
            for gb in gbs {
                out.pairs.extend(
                    gb.evaluator_zero
                        .iter()
                        .map(|&z| (ot_message(z), ot_message(z ^ gb.delta))),
                );
                out.out_zero
                    .extend(gb.output_zero.iter().map(|&z| z.low_half()));
            }
            out
        })
        .collect();
    let mut out = GarbledChunk {
        tables: Vec::with_capacity(layer.bytes(r, |c| c.and_count() * 32)),
        pairs: Vec::new(),
        out_zero: Vec::with_capacity(r.len() * width(layer.p)),
    };
    for p in parts {
        out.tables.extend_from_slice(&p.tables);
        out.pairs.extend(p.pairs);
        out.out_zero.extend(p.out_zero);
    }
    out
}

/// The labels of the server's share `s_in` for the windows of `r` (bytes, in order), and each
/// window's offset (low half), re-derived from `seed`.
fn garbler_chunk_labels(
    layer: &GarbledLayer,
    seed: &[u8; 32],
    r: &Range<usize>,
    s_in: &[u64],
) -> (Vec<u8>, Vec<u64>) {
    let enc: Vec<(Vec<Label>, u64)> = r
        .clone()
        .into_par_iter()
        .map(|u| {
            let (delta, zeros) = garbler_labels(layer.circuit(u), &mut unit_rng(seed, u));
            let bits = garbler_input(layer.p, &layer.window_shares(u, s_in));
            let ls = std::iter::once(zeros[0])
                .chain(
                    zeros[1..]
                        .iter()
                        .zip(&bits)
                        .map(|(&z, &b)| z ^ delta.select(b)),
                )
                .collect();
            (ls, delta.low_half())
        })
        .collect();
    let mut b = Vec::with_capacity(layer.bytes(r, |c| c.garbler_inputs as usize * 16));
    let mut deltas = Vec::with_capacity(r.len());
    for (ls, d) in enc {
        labels_to_bytes(&ls, &mut b);
        deltas.push(d);
    }
    (b, deltas)
}

/// Decodes the client's output labels of the windows of `r` against their zero labels
/// (`out_zero`, low halves, this chunk's only) and offsets.
fn decode_chunk(
    layer: &GarbledLayer,
    r: &Range<usize>,
    back: &[u8],
    out_zero: &[u64],
    deltas: &[u64],
    out: &mut Vec<u64>,
) -> Result<(), SessionError> {
    let (p, n) = (layer.p, width(layer.p));
    expect_len("output labels", back.len(), r.len() * n * 16)?;
    for (j, u) in r.clone().enumerate() {
        let d = deltas[j];
        let mut bits = Vec::with_capacity(n);
        for i in 0..n {
            let at = (j * n + i) * 16;
            let l = u64::from_le_bytes(back[at..at + 8].try_into().expect("8 bytes"));
            let z = out_zero[j * n + i];
            bits.push(if l == z {
                false
            } else if l == z ^ d {
                true
            } else {
                return Err(PeerMisbehaved::UnknownOutputLabel { wire: i, window: u }.into());
            });
        }
        let v = from_bits(&bits);
        if v >= p {
            return Err(PeerMisbehaved::OutputNotInField {
                window: u,
                value: v,
            }
            .into());
        }
        out.push(v);
    }
    Ok(())
}

/// The client's input bits of the windows of `r`: its share `c_in` and its output mask.
fn client_choices(
    layer: &GarbledLayer,
    r: &Range<usize>,
    c_in: &[u64],
    r_out: &[u64],
) -> Vec<bool> {
    r.clone()
        .flat_map(|u| evaluator_input(layer.p, &layer.window_shares(u, c_in), r_out[u]))
        .collect()
}

/// Evaluates the windows of `r` on the server's labels `g`, the tables and the client's own
/// labels `mine` (all this chunk's, as bytes), groups in parallel and each group in lockstep;
/// returns the output labels.
fn evaluate_chunk(
    layer: &GarbledLayer,
    r: &Range<usize>,
    g: &[u8],
    tables: &[u8],
    mine: &[u8],
) -> Vec<u8> {
    let hasher = Hasher::default();
    // Offsets of each group's slice in the three buffers.
    let mut offs = Vec::new();
    let (mut og, mut ot, mut oe) = (0, 0, 0);
    for grp in layer.groups(r) {
        let c = layer.circuit(grp.start);
        offs.push((grp.clone(), og, ot, oe));
        og += grp.len() * c.garbler_inputs as usize * 16;
        ot += grp.len() * c.and_count() * 32;
        oe += grp.len() * c.evaluator_inputs as usize * 16;
    }
    let outs: Vec<Vec<Vec<Label>>> = offs
        .par_iter()
        .map(|(grp, og, ot, oe)| {
            let c = layer.circuit(grp.start);
            let (ng, nt, ne) = (
                c.garbler_inputs as usize * 16,
                c.and_count() * 32,
                c.evaluator_inputs as usize * 16,
            );
            let gl: Vec<Vec<Label>> = (0..grp.len())
                .map(|k| bytes_to_labels(&g[og + k * ng..og + (k + 1) * ng]))
                .collect();
            let el: Vec<Vec<Label>> = (0..grp.len())
                .map(|k| bytes_to_labels(&mine[oe + k * ne..oe + (k + 1) * ne]))
                .collect();
            let gr: Vec<&[Label]> = gl.iter().map(|v| &v[..]).collect();
            let er: Vec<&[Label]> = el.iter().map(|v| &v[..]).collect();
            let tweaks: Vec<Tweak> = grp.clone().map(|u| layer.tweak(u)).collect();
            let mut at: Vec<usize> = (0..grp.len()).map(|k| ot + k * nt).collect();
            evaluate_lockstep(c, &hasher, &tweaks, &gr, &er, |k| {
                let b = &tables[at[k]..at[k] + 32];
                at[k] += 32;
                [
                    Label::from_bytes(b[..16].try_into().expect("16 bytes")),
                    Label::from_bytes(b[16..].try_into().expect("16 bytes")),
                ]
            })
        })
        .collect();
    let mut b = Vec::with_capacity(r.len() * width(layer.p) * 16);
    for o in outs.iter().flatten() {
        labels_to_bytes(o, &mut b);
    }
    b
}

/// Server, one chunk: garbles it, sends the tables and answers the client's OTs for its
/// input labels; returns the output zero labels (low halves).
fn send_chunk<S: Stream>(
    ch: &mut Channel<S>,
    ot: &mut OtSender,
    layer: &GarbledLayer,
    seed: &[u8; 32],
    r: &Range<usize>,
) -> Result<Vec<u64>, SessionError> {
    let gc = garble_chunk(layer, seed, r);
    ch.send(Tag::GcTables, &gc.tables)?;
    drop(gc.tables);
    ot.send(ch, &gc.pairs)?;
    Ok(gc.out_zero)
}

/// Client, one chunk: receives the tables and fetches the labels of its inputs by OT; returns
/// both as bytes.
fn receive_chunk<S: Stream>(
    ch: &mut Channel<S>,
    ot: &mut OtReceiver,
    layer: &GarbledLayer,
    r: &Range<usize>,
    c_in: &[u64],
    r_out: &[u64],
) -> Result<(Vec<u8>, Vec<u8>), SessionError> {
    let tables = ch.recv(Tag::GcTables)?;
    expect_len(
        "garbled tables",
        tables.len(),
        layer.bytes(r, |c| c.and_count() * 32),
    )?;
    // The OT messages are the labels' wire bytes (see `ot_message`).
    let labels = ot.receive(ch, &client_choices(layer, r, c_in, r_out))?;
    let mut mine = Vec::with_capacity(labels.len() * 16);
    for l in labels {
        mine.extend_from_slice(&l.to_le_bytes());
    }
    Ok((tables, mine))
}

/// Server, offline: garbles every window, sends the tables, and answers the client's OTs for
/// its input labels.
pub fn server_offline<S: Stream, R: Rng + CryptoRng>(
    ch: &mut Channel<S>,
    ot: &mut OtSender,
    layer: &GarbledLayer,
    rng: &mut R,
    tick: &mut dyn FnMut(usize, usize),
) -> Result<ServerLayer, SessionError> {
    let seed: [u8; 32] = rng.random();
    let mut out_zero = Vec::with_capacity(layer.windows.len() * width(layer.p));
    let chunks = layer.chunks();
    for (k, r) in chunks.iter().cloned().enumerate() {
        tick(k, chunks.len());
        out_zero.extend(send_chunk(ch, ot, layer, &seed, &r)?);
    }
    Ok(ServerLayer { seed, out_zero })
}

/// Client, offline: spools the tables and the labels of its inputs (`c_in`, its share of the
/// layer's input, and `r_out`, its mask of the output), fetched by OT.
pub fn client_offline<S: Stream>(
    ch: &mut Channel<S>,
    ot: &mut OtReceiver,
    layer: &GarbledLayer,
    c_in: &[u64],
    r_out: &[u64],
    spool: &mut Spool,
    tick: &mut dyn FnMut(usize, usize),
) -> Result<(), SessionError> {
    let chunks = layer.chunks();
    for (k, r) in chunks.iter().cloned().enumerate() {
        tick(k, chunks.len());
        let (tables, mine) = receive_chunk(ch, ot, layer, &r, c_in, r_out)?;
        spool.write(&tables)?;
        spool.write(&mine)?;
    }
    Ok(())
}

/// Server, online: sends the labels of its share `s_in`, decodes the client's output labels
/// and returns its share of the output (the value minus the client's mask).
pub fn server_online<S: Stream>(
    ch: &mut Channel<S>,
    layer: &GarbledLayer,
    keep: ServerLayer,
    s_in: &[u64],
    tick: &mut dyn FnMut(usize, usize),
) -> Result<Vec<u64>, SessionError> {
    let n = width(layer.p);
    let mut out = Vec::with_capacity(layer.windows.len());
    let chunks = layer.chunks();
    for (k, r) in chunks.iter().cloned().enumerate() {
        tick(k, chunks.len());
        let (b, deltas) = garbler_chunk_labels(layer, &keep.seed, &r, s_in);
        ch.send(Tag::GcGarblerLabels, &b)?;
        let back = ch.recv(Tag::GcOutputLabels)?;
        let zeros = &keep.out_zero[r.start * n..r.end * n];
        decode_chunk(layer, &r, &back, zeros, &deltas, &mut out)?;
    }
    Ok(out)
}

/// Client, online: evaluates every window on the server's labels and its spooled material,
/// and returns the output labels.
pub fn client_online<S: Stream>(
    ch: &mut Channel<S>,
    layer: &GarbledLayer,
    spool: &mut Spool,
    tick: &mut dyn FnMut(usize, usize),
) -> Result<(), SessionError> {
    let chunks = layer.chunks();
    for (k, r) in chunks.iter().cloned().enumerate() {
        tick(k, chunks.len());
        let g = ch.recv(Tag::GcGarblerLabels)?;
        expect_len(
            "garbler labels",
            g.len(),
            layer.bytes(&r, |c| c.garbler_inputs as usize * 16),
        )?;
        let tables = spool.read(layer.bytes(&r, |c| c.and_count() * 32))?;
        let mine = spool.read(layer.bytes(&r, |c| c.evaluator_inputs as usize * 16))?;
        ch.send(
            Tag::GcOutputLabels,
            &evaluate_chunk(layer, &r, &g, &tables, &mine),
        )?;
    }
    Ok(())
}

/// Server, a layer streamed in the online phase (one the client chose not to prepare
/// offline): per chunk, garbles, sends the tables, answers the client's OTs, sends the labels
/// of its share and decodes the outputs. Only one chunk's material exists at a time, on
/// either side. The garbling is fresh (a new seed), so nothing is reused.
pub fn server_streamed<S: Stream, R: Rng + CryptoRng>(
    ch: &mut Channel<S>,
    ot: &mut OtSender,
    layer: &GarbledLayer,
    s_in: &[u64],
    rng: &mut R,
    tick: &mut dyn FnMut(usize, usize),
) -> Result<Vec<u64>, SessionError> {
    let seed: [u8; 32] = rng.random();
    let mut out = Vec::with_capacity(layer.windows.len());
    let chunks = layer.chunks();
    for (k, r) in chunks.iter().cloned().enumerate() {
        tick(k, chunks.len());
        let out_zero = send_chunk(ch, ot, layer, &seed, &r)?;
        let (b, deltas) = garbler_chunk_labels(layer, &seed, &r, s_in);
        ch.send(Tag::GcGarblerLabels, &b)?;
        let back = ch.recv(Tag::GcOutputLabels)?;
        decode_chunk(layer, &r, &back, &out_zero, &deltas, &mut out)?;
    }
    Ok(out)
}

/// Client, a layer streamed in the online phase: per chunk, receives the tables, fetches the
/// labels of its inputs (`c_in`, `r_out`, known since the offline phase) by OT, evaluates on
/// the server's labels and returns the output labels.
pub fn client_streamed<S: Stream>(
    ch: &mut Channel<S>,
    ot: &mut OtReceiver,
    layer: &GarbledLayer,
    c_in: &[u64],
    r_out: &[u64],
    tick: &mut dyn FnMut(usize, usize),
) -> Result<(), SessionError> {
    let chunks = layer.chunks();
    for (k, r) in chunks.iter().cloned().enumerate() {
        tick(k, chunks.len());
        let (tables, mine) = receive_chunk(ch, ot, layer, &r, c_in, r_out)?;
        let g = ch.recv(Tag::GcGarblerLabels)?;
        expect_len(
            "garbler labels",
            g.len(),
            layer.bytes(&r, |c| c.garbler_inputs as usize * 16),
        )?;
        ch.send(
            Tag::GcOutputLabels,
            &evaluate_chunk(layer, &r, &g, &tables, &mine),
        )?;
    }
    Ok(())
}
