//! Semi-honest half-gates garbling (Zahur, Rosulek, Evans 2015) with free-XOR and
//! point-and-permute: two 128-bit ciphertexts per AND gate, XOR and NOT free. Tables go to a
//! sink as they are made and are read back from a source, so a layer's tables are never held
//! whole.

use super::circuit::{Circuit, Gate};
use super::hash::{Hasher, Label, MAX_BATCH};
use rand::{CryptoRng, Rng};

/// One AND gate's table: the garbler half and the evaluator half.
pub type Table = [Label; 2];

/// What the garbler keeps: the global offset and the zero labels it needs to encode inputs
/// and decode outputs.
#[derive(Clone, Debug)]
pub struct Garbling {
    /// Global free-XOR offset (least significant bit set).
    pub delta: Label,
    /// Zero labels of the garbler's inputs, the constant wire 0 first.
    pub garbler_zero: Vec<Label>,
    /// Zero labels of the evaluator's inputs (the OT sender's message pairs are (L, L ^ delta)).
    pub evaluator_zero: Vec<Label>,
    /// Zero labels of the outputs.
    pub output_zero: Vec<Label>,
}

/// Why an output label could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("output label {0} is neither of its wire's labels (corrupted or dishonest evaluation)")]
pub struct BadLabel(pub usize);

impl Garbling {
    /// Labels of the garbler's own input bits (constant wire first).
    pub fn encode_garbler(&self, bits: &[bool]) -> Vec<Label> {
        assert_eq!(bits.len() + 1, self.garbler_zero.len(), "garbler inputs");
        std::iter::once(self.garbler_zero[0])
            .chain(
                self.garbler_zero[1..]
                    .iter()
                    .zip(bits)
                    .map(|(&z, &b)| z ^ if b { self.delta } else { 0 }),
            )
            .collect()
    }

    /// Decodes the output labels the evaluator returns.
    pub fn decode(&self, labels: &[Label]) -> Result<Vec<bool>, BadLabel> {
        assert_eq!(labels.len(), self.output_zero.len(), "outputs");
        labels
            .iter()
            .zip(&self.output_zero)
            .enumerate()
            .map(|(i, (&l, &z))| {
                if l == z {
                    Ok(false)
                } else if l == z ^ self.delta {
                    Ok(true)
                } else {
                    Err(BadLabel(i))
                }
            })
            .collect()
    }
}

#[inline(always)]
fn lsb(x: Label) -> bool {
    x & 1 == 1
}

#[inline(always)]
fn sel(b: bool, x: Label) -> Label {
    (b as u128).wrapping_neg() & x
}

/// Garbles `circ` with a fresh offset drawn from `rng`; tables go to `sink` in order.
pub fn garble<R: Rng + CryptoRng>(
    circ: &Circuit,
    hasher: &Hasher,
    rng: &mut R,
    sink: impl FnMut(Table),
) -> Garbling {
    garble_at(circ, hasher, 0, rng, sink)
}

/// The offset and the garbler's input zero labels exactly as [`garble_at`] draws them first
/// from `rng`: a garbler that keeps the generator's seed can re-derive them instead of
/// storing them.
pub fn garbler_labels<R: Rng + CryptoRng>(circ: &Circuit, rng: &mut R) -> (Label, Vec<Label>) {
    let delta: Label = rng.random::<u128>() | 1;
    let zeros = (0..circ.garbler_inputs).map(|_| rng.random()).collect();
    (delta, zeros)
}

/// [`garble`] with the hash tweaks starting at `tweak`: circuits garbled in one session take
/// disjoint tweak ranges (2 per AND gate), so no tweak is ever used twice.
pub fn garble_at<R: Rng + CryptoRng>(
    circ: &Circuit,
    hasher: &Hasher,
    tweak: u128,
    rng: &mut R,
    mut sink: impl FnMut(Table),
) -> Garbling {
    let (delta, mut w) = garbler_labels(circ, rng);
    w.reserve(circ.wires());
    for _ in 0..circ.evaluator_inputs {
        w.push(rng.random());
    }
    let n_in = w.len();
    let mut j: u128 = tweak / 2;
    for g in &circ.gates {
        let out = match *g {
            Gate::Xor(a, b) => w[a as usize] ^ w[b as usize],
            Gate::Not(a) => w[a as usize] ^ delta,
            Gate::And(a, b) => {
                let (a0, b0) = (w[a as usize], w[b as usize]);
                let (a1, b1) = (a0 ^ delta, b0 ^ delta);
                let (pa, pb) = (lsb(a0), lsb(b0));
                let (t0, t1) = (2 * j, 2 * j + 1);
                let [ha0, ha1, hb0, hb1] = hasher.hash([a0, a1, b0, b1], [t0, t0, t1, t1]);
                // Garbler half: knows the colour bit pb.
                let tg = ha0 ^ ha1 ^ sel(pb, delta);
                let wg0 = ha0 ^ sel(pa, tg);
                // Evaluator half: the evaluator knows its colour bit.
                let te = hb0 ^ hb1 ^ a0;
                let we0 = hb0 ^ sel(pb, te ^ a0);
                sink([tg, te]);
                j += 1;
                wg0 ^ we0
            }
        };
        w.push(out);
    }
    let gi = circ.garbler_inputs as usize;
    Garbling {
        delta,
        garbler_zero: w[..gi].to_vec(),
        evaluator_zero: w[gi..n_in].to_vec(),
        output_zero: circ.outputs.iter().map(|&o| w[o as usize]).collect(),
    }
}

/// Evaluates a garbled circuit on one label per input wire (garbler's, constant first, then
/// evaluator's), reading the tables from `source` in order; returns the output labels.
pub fn evaluate(
    circ: &Circuit,
    hasher: &Hasher,
    garbler: &[Label],
    evaluator: &[Label],
    source: impl FnMut() -> Table,
) -> Vec<Label> {
    evaluate_at(circ, hasher, 0, garbler, evaluator, source)
}

/// [`evaluate`] for a circuit garbled by [`garble_at`] at tweak `tweak`.
pub fn evaluate_at(
    circ: &Circuit,
    hasher: &Hasher,
    tweak: u128,
    garbler: &[Label],
    evaluator: &[Label],
    mut source: impl FnMut() -> Table,
) -> Vec<Label> {
    assert_eq!(
        garbler.len(),
        circ.garbler_inputs as usize,
        "garbler labels"
    );
    assert_eq!(
        evaluator.len(),
        circ.evaluator_inputs as usize,
        "evaluator labels"
    );
    let mut w: Vec<Label> = Vec::with_capacity(circ.wires());
    w.extend_from_slice(garbler);
    w.extend_from_slice(evaluator);
    let mut j: u128 = tweak / 2;
    for g in &circ.gates {
        let out = match *g {
            Gate::Xor(a, b) => w[a as usize] ^ w[b as usize],
            Gate::Not(a) => w[a as usize],
            Gate::And(a, b) => {
                let (la, lb) = (w[a as usize], w[b as usize]);
                let [tg, te] = source();
                let [ha, hb] = hasher.hash([la, lb], [2 * j, 2 * j + 1]);
                j += 1;
                let wg = ha ^ sel(lsb(la), tg);
                let we = hb ^ sel(lsb(lb), te ^ la);
                wg ^ we
            }
        };
        w.push(out);
    }
    circ.outputs.iter().map(|&o| w[o as usize]).collect()
}

/// Copies of one circuit garbled or evaluated in lockstep at most (16 copies: 64 blocks per
/// AND gate for the garbler).
pub const LOCKSTEP: usize = MAX_BATCH / 4;

/// [`garble_at`] on `rngs.len()` (at most [`LOCKSTEP`]) copies of one circuit at once, copy k
/// at tweak `tweaks[k]` drawing from `rngs[k]`: the same garblings and tables as one call
/// each, but every AND gate's hashes for all copies go through AES together. Copy k's
/// tables go to `sink(k, table)`, each copy's in gate order.
pub fn garble_lockstep<R: Rng + CryptoRng>(
    circ: &Circuit,
    hasher: &Hasher,
    tweaks: &[u128],
    rngs: &mut [R],
    mut sink: impl FnMut(usize, Table),
) -> Vec<Garbling> {
    let k = rngs.len();
    assert!(k <= LOCKSTEP && tweaks.len() == k, "lockstep copies");
    let gi = circ.garbler_inputs as usize;
    let n_in = gi + circ.evaluator_inputs as usize;
    // Wire-major: the labels of wire i of every copy are w[i * k..(i + 1) * k].
    let mut w: Vec<Label> = vec![0; (n_in + circ.gates.len()) * k];
    let mut deltas = Vec::with_capacity(k);
    for (c, rng) in rngs.iter_mut().enumerate() {
        let (delta, zeros) = garbler_labels(circ, rng);
        deltas.push(delta);
        for (i, z) in zeros.into_iter().enumerate() {
            w[i * k + c] = z;
        }
        for i in gi..n_in {
            w[i * k + c] = rng.random();
        }
    }
    let mut js: Vec<u128> = tweaks.iter().map(|t| t / 2).collect();
    let (mut xs, mut ts, mut hs) = ([0u128; MAX_BATCH], [0u128; MAX_BATCH], [0u128; MAX_BATCH]);
    for (gate, g) in circ.gates.iter().enumerate() {
        let o = (n_in + gate) * k;
        match *g {
            Gate::Xor(a, b) => {
                for c in 0..k {
                    w[o + c] = w[a as usize * k + c] ^ w[b as usize * k + c];
                }
            }
            Gate::Not(a) => {
                for c in 0..k {
                    w[o + c] = w[a as usize * k + c] ^ deltas[c];
                }
            }
            Gate::And(a, b) => {
                for c in 0..k {
                    let (a0, b0) = (w[a as usize * k + c], w[b as usize * k + c]);
                    let d = deltas[c];
                    xs[4 * c..4 * c + 4].copy_from_slice(&[a0, a0 ^ d, b0, b0 ^ d]);
                    let (t0, t1) = (2 * js[c], 2 * js[c] + 1);
                    ts[4 * c..4 * c + 4].copy_from_slice(&[t0, t0, t1, t1]);
                }
                hasher.hash_slice(&xs[..4 * k], &ts[..4 * k], &mut hs[..4 * k]);
                for c in 0..k {
                    let (a0, b0, d) = (w[a as usize * k + c], w[b as usize * k + c], deltas[c]);
                    let [ha0, ha1, hb0, hb1] =
                        [hs[4 * c], hs[4 * c + 1], hs[4 * c + 2], hs[4 * c + 3]];
                    let (pa, pb) = (lsb(a0), lsb(b0));
                    let tg = ha0 ^ ha1 ^ sel(pb, d);
                    let wg0 = ha0 ^ sel(pa, tg);
                    let te = hb0 ^ hb1 ^ a0;
                    let we0 = hb0 ^ sel(pb, te ^ a0);
                    sink(c, [tg, te]);
                    js[c] += 1;
                    w[o + c] = wg0 ^ we0;
                }
            }
        }
    }
    (0..k)
        .map(|c| Garbling {
            delta: deltas[c],
            garbler_zero: (0..gi).map(|i| w[i * k + c]).collect(),
            evaluator_zero: (gi..n_in).map(|i| w[i * k + c]).collect(),
            output_zero: circ
                .outputs
                .iter()
                .map(|&o| w[o as usize * k + c])
                .collect(),
        })
        .collect()
}

/// [`evaluate_at`] on copies of one circuit at once (at most [`LOCKSTEP`]): copy k at tweak
/// `tweaks[k]` on labels `garbler[k]`, `evaluator[k]`, reading its tables from
/// `source(k)`. Returns each copy's output labels.
pub fn evaluate_lockstep(
    circ: &Circuit,
    hasher: &Hasher,
    tweaks: &[u128],
    garbler: &[&[Label]],
    evaluator: &[&[Label]],
    mut source: impl FnMut(usize) -> Table,
) -> Vec<Vec<Label>> {
    let k = tweaks.len();
    assert!(
        k <= 2 * LOCKSTEP && garbler.len() == k && evaluator.len() == k,
        "lockstep copies"
    );
    let gi = circ.garbler_inputs as usize;
    let n_in = gi + circ.evaluator_inputs as usize;
    let mut w: Vec<Label> = vec![0; (n_in + circ.gates.len()) * k];
    for c in 0..k {
        assert_eq!(garbler[c].len(), gi, "garbler labels");
        assert_eq!(evaluator[c].len(), n_in - gi, "evaluator labels");
        for (i, &l) in garbler[c].iter().chain(evaluator[c].iter()).enumerate() {
            w[i * k + c] = l;
        }
    }
    let mut js: Vec<u128> = tweaks.iter().map(|t| t / 2).collect();
    let (mut xs, mut ts, mut hs) = ([0u128; MAX_BATCH], [0u128; MAX_BATCH], [0u128; MAX_BATCH]);
    for (gate, g) in circ.gates.iter().enumerate() {
        let o = (n_in + gate) * k;
        match *g {
            Gate::Xor(a, b) => {
                for c in 0..k {
                    w[o + c] = w[a as usize * k + c] ^ w[b as usize * k + c];
                }
            }
            Gate::Not(a) => {
                for c in 0..k {
                    w[o + c] = w[a as usize * k + c];
                }
            }
            Gate::And(a, b) => {
                for c in 0..k {
                    xs[2 * c] = w[a as usize * k + c];
                    xs[2 * c + 1] = w[b as usize * k + c];
                    ts[2 * c] = 2 * js[c];
                    ts[2 * c + 1] = 2 * js[c] + 1;
                }
                hasher.hash_slice(&xs[..2 * k], &ts[..2 * k], &mut hs[..2 * k]);
                for c in 0..k {
                    let [tg, te] = source(c);
                    let (la, lb) = (xs[2 * c], xs[2 * c + 1]);
                    let wg = hs[2 * c] ^ sel(lsb(la), tg);
                    let we = hs[2 * c + 1] ^ sel(lsb(lb), te ^ la);
                    js[c] += 1;
                    w[o + c] = wg ^ we;
                }
            }
        }
    }
    (0..k)
        .map(|c| {
            circ.outputs
                .iter()
                .map(|&o| w[o as usize * k + c])
                .collect()
        })
        .collect()
}

/// Test helper shared with the protocol circuits' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use rand_chacha::ChaCha20Rng;

    /// Garbles, evaluates with the right labels, decodes: must equal the clear evaluation.
    pub(crate) fn run_garbled(
        circ: &Circuit,
        g: &[bool],
        e: &[bool],
        rng: &mut ChaCha20Rng,
    ) -> Vec<bool> {
        let h = Hasher::default();
        let mut tables = Vec::new();
        let gb = garble(circ, &h, rng, |t| tables.push(t));
        assert_eq!(tables.len(), circ.and_count());
        let gl = gb.encode_garbler(g);
        // What OT would deliver: the label of each evaluator bit.
        let el: Vec<Label> = gb
            .evaluator_zero
            .iter()
            .zip(e)
            .map(|(&z, &b)| z ^ if b { gb.delta } else { 0 })
            .collect();
        let mut it = tables.into_iter();
        let out = evaluate(circ, &h, &gl, &el, || it.next().expect("enough tables"));
        gb.decode(&out).expect("honest labels decode")
    }
}

#[cfg(test)]
mod tests {
    use super::super::circuit::{from_bits, to_bits, Builder};
    use super::tests_support::run_garbled;
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn garbled_equals_clear_on_random_circuits() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for trial in 0..20 {
            let (mut b, g, e) = Builder::new(6, 5);
            let mut wires: Vec<u32> = g.iter().chain(&e).copied().collect();
            for _ in 0..60 {
                let x = wires[rng.random_range(0..wires.len())];
                let y = wires[rng.random_range(0..wires.len())];
                let w = match rng.random_range(0..3) {
                    0 => b.xor(x, y),
                    1 => b.and(x, y),
                    _ => b.not(x),
                };
                wires.push(w);
            }
            let outs = wires[wires.len() - 12..].to_vec();
            let c = b.finish(outs);
            for _ in 0..8 {
                let gv: Vec<bool> = (0..6).map(|_| rng.random()).collect();
                let ev: Vec<bool> = (0..5).map(|_| rng.random()).collect();
                assert_eq!(
                    run_garbled(&c, &gv, &ev, &mut rng),
                    c.eval(&gv, &ev),
                    "trial {trial}"
                );
            }
        }
    }

    #[test]
    fn lockstep_equals_one_at_a_time() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let (mut b, g, e) = Builder::new(8, 8);
        let (s, _) = b.add_carry(&g, &e, 0);
        let lt = b.not(s[7]);
        let x = b.and(lt, s[3]);
        let c = b.finish(vec![s[0], s[5], x]);
        let h = Hasher::default();
        for k in [1usize, 3, LOCKSTEP] {
            let seeds: Vec<u64> = (0..k as u64).map(|i| 100 * k as u64 + i).collect();
            let tweaks: Vec<u128> = (0..k as u128).map(|i| (7 + i) << 40).collect();
            let mut rngs: Vec<ChaCha20Rng> = seeds
                .iter()
                .map(|&s| ChaCha20Rng::seed_from_u64(s))
                .collect();
            let mut tabs = vec![Vec::new(); k];
            let many = garble_lockstep(&c, &h, &tweaks, &mut rngs, |i, t| tabs[i].push(t));
            let mut gls = Vec::new();
            let mut els = Vec::new();
            for i in 0..k {
                let mut one_t = Vec::new();
                let one = garble_at(
                    &c,
                    &h,
                    tweaks[i],
                    &mut ChaCha20Rng::seed_from_u64(seeds[i]),
                    |t| one_t.push(t),
                );
                assert_eq!(one_t, tabs[i], "copy {i} of {k}: tables");
                assert_eq!(one.delta, many[i].delta);
                assert_eq!(one.garbler_zero, many[i].garbler_zero);
                assert_eq!(one.evaluator_zero, many[i].evaluator_zero);
                assert_eq!(one.output_zero, many[i].output_zero);
                let gv: Vec<bool> = (0..8).map(|_| rng.random()).collect();
                let ev: Vec<bool> = (0..8).map(|_| rng.random()).collect();
                gls.push(one.encode_garbler(&gv));
                els.push(
                    one.evaluator_zero
                        .iter()
                        .zip(&ev)
                        .map(|(&z, &b)| z ^ if b { one.delta } else { 0 })
                        .collect::<Vec<_>>(),
                );
                let mut it = one_t.iter().copied();
                let single =
                    evaluate_at(&c, &h, tweaks[i], &gls[i], &els[i], || it.next().unwrap());
                assert_eq!(one.decode(&single).unwrap(), c.eval(&gv, &ev));
            }
            let gr: Vec<&[Label]> = gls.iter().map(|v| &v[..]).collect();
            let er: Vec<&[Label]> = els.iter().map(|v| &v[..]).collect();
            let mut next = vec![0usize; k];
            let outs = evaluate_lockstep(&c, &h, &tweaks, &gr, &er, |i| {
                next[i] += 1;
                tabs[i][next[i] - 1]
            });
            for i in 0..k {
                let mut it = tabs[i].iter().copied();
                let single =
                    evaluate_at(&c, &h, tweaks[i], &gls[i], &els[i], || it.next().unwrap());
                assert_eq!(outs[i], single, "copy {i} of {k}: outputs");
            }
        }
    }

    #[test]
    fn an_adder_garbles_correctly_and_a_wrong_label_is_caught() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let (mut b, g, e) = Builder::new(16, 16);
        let (s, _) = b.add_carry(&g, &e, 0);
        let c = b.finish(s);
        for (x, y) in [(0u64, 0u64), (65535, 1), (12345, 54321), (40000, 40000)] {
            let r = run_garbled(&c, &to_bits(x, 16), &to_bits(y, 16), &mut rng);
            assert_eq!(from_bits(&r), (x + y) & 0xFFFF);
        }
        let h = Hasher::default();
        let gb = garble(&c, &h, &mut rng, |_| {});
        let mut bad = gb.output_zero.clone();
        bad[3] ^= 1 << 77;
        assert_eq!(gb.decode(&bad), Err(BadLabel(3)));
    }

    #[test]
    fn the_evaluator_view_does_not_depend_on_the_other_label() {
        // Point-and-permute: the colour bit of the label the evaluator holds is uniform
        // whatever the value (over fresh garblings), so it reveals nothing of the bit.
        let (mut b, g, _) = Builder::new(1, 0);
        let x = b.not(g[0]);
        let c = b.finish(vec![x]);
        let h = Hasher::default();
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let mut ones = [0usize; 2];
        for v in [false, true] {
            for _ in 0..2000 {
                let gb = garble(&c, &h, &mut rng, |_| {});
                ones[v as usize] += lsb(gb.encode_garbler(&[v])[1]) as usize;
            }
        }
        for o in ones {
            assert!((o as f64 / 2000.0 - 0.5).abs() < 0.05, "{ones:?}");
        }
    }
}
