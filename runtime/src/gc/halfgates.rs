//! Semi-honest half-gates garbling (Zahur, Rosulek, Evans 2015) with free-XOR and
//! point-and-permute: two 128-bit ciphertexts per AND gate, XOR and NOT free. Tables go to a
//! sink as they are made and are read back from a source, so a layer's tables are never held
//! whole.
//!
//! One AND kernel serves every path: [`garble_and`] and [`eval_and`] take the gate's hashes
//! from the caller, so the one-at-a-time walks here hash one gate at a time and the lockstep
//! walks ([`super::lockstep`]) hash a gate of many circuits in one batch.

use super::circuit::{Circuit, Gate};
use super::hash::Hasher;
use super::label::{Delta, Label, Tweak};
use rand::{CryptoRng, Rng};

/// One AND gate's table: the garbler half and the evaluator half.
pub type Table = [Label; 2];

/// What the garbler keeps: the global offset and the zero labels it needs to encode inputs
/// and decode outputs.
#[derive(Clone, Debug)]
pub struct Garbling {
    /// Global free-XOR offset.
    pub delta: Delta,
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
                    .map(|(&z, &b)| z ^ self.delta.select(b)),
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

/// What the garbler hashes for the AND gate at tweak `t` with input zero labels `a0`, `b0`:
/// both labels of each input, the first input's under the gate's first tweak.
#[inline(always)]
pub fn garble_and_inputs(a0: Label, b0: Label, delta: Delta, t: Tweak) -> ([Label; 4], [Tweak; 4]) {
    let [t0, t1] = t.and_gate();
    ([a0, a0 ^ delta, b0, b0 ^ delta], [t0, t0, t1, t1])
}

/// The half-gates AND, garbled: from the input zero labels and their hashes (in the order
/// of [`garble_and_inputs`]), the gate's table and its output zero label.
#[inline(always)]
pub fn garble_and(
    a0: Label,
    b0: Label,
    delta: Delta,
    [ha0, ha1, hb0, hb1]: [Label; 4],
) -> (Table, Label) {
    let (pa, pb) = (a0.pointer(), b0.pointer());
    // Garbler half: the garbler knows the colour bit pb.
    let tg = ha0 ^ ha1 ^ delta.select(pb);
    let wg0 = ha0 ^ tg.select(pa);
    // Evaluator half: the evaluator knows its colour bit.
    let te = hb0 ^ hb1 ^ a0;
    let we0 = hb0 ^ (te ^ a0).select(pb);
    ([tg, te], wg0 ^ we0)
}

/// What the evaluator hashes for the AND gate at tweak `t`: its label of each input, under
/// the gate's two tweaks.
#[inline(always)]
pub fn eval_and_inputs(la: Label, lb: Label, t: Tweak) -> ([Label; 2], [Tweak; 2]) {
    ([la, lb], t.and_gate())
}

/// The half-gates AND, evaluated: from the input labels, their hashes (in the order of
/// [`eval_and_inputs`]) and the gate's table, the output label.
#[inline(always)]
pub fn eval_and(la: Label, lb: Label, [ha, hb]: [Label; 2], [tg, te]: Table) -> Label {
    let wg = ha ^ tg.select(la.pointer());
    let we = hb ^ (te ^ la).select(lb.pointer());
    wg ^ we
}

/// Garbles `circ` with a fresh offset drawn from `rng`; tables go to `sink` in order.
pub fn garble<R: Rng + CryptoRng>(
    circ: &Circuit,
    hasher: &Hasher,
    rng: &mut R,
    sink: impl FnMut(Table),
) -> Garbling {
    garble_at(circ, hasher, Tweak::new(0), rng, sink)
}

/// The offset and the garbler's input zero labels exactly as [`garble_at`] draws them first
/// from `rng`: a garbler that keeps the generator's seed can re-derive them instead of
/// storing them.
pub fn garbler_labels<R: Rng + CryptoRng>(circ: &Circuit, rng: &mut R) -> (Delta, Vec<Label>) {
    let delta = Delta::random(rng);
    let zeros = (0..circ.garbler_inputs)
        .map(|_| Label::random(rng))
        .collect();
    (delta, zeros)
}

/// [`garble`] with the hash tweaks starting at `tweak`: circuits garbled in one session take
/// disjoint tweak ranges (2 per AND gate), so no tweak is ever used twice.
pub fn garble_at<R: Rng + CryptoRng>(
    circ: &Circuit,
    hasher: &Hasher,
    tweak: Tweak,
    rng: &mut R,
    mut sink: impl FnMut(Table),
) -> Garbling {
    let (delta, mut w) = garbler_labels(circ, rng);
    w.reserve(circ.wires());
    for _ in 0..circ.evaluator_inputs {
        w.push(Label::random(rng));
    }
    let n_in = w.len();
    let mut t = tweak;
    for g in &circ.gates {
        let out = match *g {
            Gate::Xor(a, b) => w[a as usize] ^ w[b as usize],
            Gate::Not(a) => w[a as usize] ^ delta,
            Gate::And(a, b) => {
                let (a0, b0) = (w[a as usize], w[b as usize]);
                let (xs, ts) = garble_and_inputs(a0, b0, delta, t);
                let (table, out) = garble_and(a0, b0, delta, hasher.hash(xs, ts));
                sink(table);
                t = t.next_gate();
                out
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
    evaluate_at(circ, hasher, Tweak::new(0), garbler, evaluator, source)
}

/// [`evaluate`] for a circuit garbled by [`garble_at`] at tweak `tweak`.
pub fn evaluate_at(
    circ: &Circuit,
    hasher: &Hasher,
    tweak: Tweak,
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
    let mut t = tweak;
    for g in &circ.gates {
        let out = match *g {
            Gate::Xor(a, b) => w[a as usize] ^ w[b as usize],
            Gate::Not(a) => w[a as usize],
            Gate::And(a, b) => {
                let (la, lb) = (w[a as usize], w[b as usize]);
                let table = source();
                let (xs, ts) = eval_and_inputs(la, lb, t);
                t = t.next_gate();
                eval_and(la, lb, hasher.hash(xs, ts), table)
            }
        };
        w.push(out);
    }
    circ.outputs.iter().map(|&o| w[o as usize]).collect()
}

/// Test helper shared with the protocol circuits' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::super::circuit::Builder;
    use super::*;
    use rand_chacha::ChaCha20Rng;

    /// A random circuit of 60 gates on 6 garbler and 5 evaluator bits, its last 12 wires
    /// the outputs.
    pub(crate) fn random_circuit(rng: &mut ChaCha20Rng) -> Circuit {
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
        b.finish(outs)
    }

    /// The labels of the evaluator's input bits: what OT would deliver.
    pub(crate) fn encode_evaluator(gb: &Garbling, bits: &[bool]) -> Vec<Label> {
        gb.evaluator_zero
            .iter()
            .zip(bits)
            .map(|(&z, &b)| z ^ gb.delta.select(b))
            .collect()
    }

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
        let el = encode_evaluator(&gb, e);
        let mut it = tables.into_iter();
        let out = evaluate(circ, &h, &gl, &el, || it.next().expect("enough tables"));
        gb.decode(&out).expect("honest labels decode")
    }
}

#[cfg(test)]
mod tests {
    use super::super::circuit::{from_bits, to_bits, Builder};
    use super::tests_support::{random_circuit, run_garbled};
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn garbled_equals_clear_on_random_circuits() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for trial in 0..20 {
            let c = random_circuit(&mut rng);
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
        bad[3] = bad[3] ^ Label::from_bytes((1u128 << 77).to_le_bytes());
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
                ones[v as usize] += gb.encode_garbler(&[v])[1].pointer() as usize;
            }
        }
        for o in ones {
            assert!((o as f64 / 2000.0 - 0.5).abs() < 0.05, "{ones:?}");
        }
    }
}
