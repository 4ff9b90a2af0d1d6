//! Many copies of one circuit garbled or evaluated together: each AND gate's hashes for all
//! copies go through AES in one batch, which fills AES-NI's pipeline as one gate's four
//! blocks do not. The gates themselves are the one-at-a-time path's own kernels
//! ([`garble_and`], [`eval_and`]), so both paths make the same tables and labels.

use super::circuit::{Circuit, Gate};
use super::halfgates::{
    eval_and, eval_and_inputs, garble_and, garble_and_inputs, garbler_labels, Garbling, Table,
};
use super::hash::{Hasher, MAX_BATCH};
use super::label::{Label, Tweak};
use rand::{CryptoRng, Rng};

/// Copies of one circuit garbled or evaluated in lockstep at most (16 copies: 64 blocks per
/// AND gate for the garbler).
pub const LOCKSTEP: usize = MAX_BATCH / 4;

/// [`super::halfgates::garble_at`] on `rngs.len()` (at most [`LOCKSTEP`]) copies of one
/// circuit at once, copy k at tweak `tweaks[k]` drawing from `rngs[k]`: the same garblings
/// and tables as one call each, but every AND gate's hashes for all copies go through AES
/// together. Copy k's tables go to `sink(k, table)`, each copy's in gate order.
pub fn garble_lockstep<R: Rng + CryptoRng>(
    circ: &Circuit,
    hasher: &Hasher,
    tweaks: &[Tweak],
    rngs: &mut [R],
    mut sink: impl FnMut(usize, Table),
) -> Vec<Garbling> {
    let k = rngs.len();
    assert!(k <= LOCKSTEP && tweaks.len() == k, "lockstep copies");
    let gi = circ.garbler_inputs as usize;
    let n_in = gi + circ.evaluator_inputs as usize;
    // Wire-major: the labels of wire i of every copy are w[i * k..(i + 1) * k].
    let mut w: Vec<Label> = vec![Label::default(); (n_in + circ.gates.len()) * k];
    let mut deltas = Vec::with_capacity(k);
    for (c, rng) in rngs.iter_mut().enumerate() {
        let (delta, zeros) = garbler_labels(circ, rng);
        deltas.push(delta);
        for (i, z) in zeros.into_iter().enumerate() {
            w[i * k + c] = z;
        }
        for i in gi..n_in {
            w[i * k + c] = Label::random(rng);
        }
    }
    let mut ts: Vec<Tweak> = tweaks.to_vec();
    let mut xs = [Label::default(); MAX_BATCH];
    let mut tw = [Tweak::new(0); MAX_BATCH];
    let mut hs = [Label::default(); MAX_BATCH];
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
                    let (x, t) = garble_and_inputs(a0, b0, deltas[c], ts[c]);
                    xs[4 * c..4 * c + 4].copy_from_slice(&x);
                    tw[4 * c..4 * c + 4].copy_from_slice(&t);
                }
                hasher.hash_slice(&xs[..4 * k], &tw[..4 * k], &mut hs[..4 * k]);
                for c in 0..k {
                    let (a0, b0) = (w[a as usize * k + c], w[b as usize * k + c]);
                    let h = [hs[4 * c], hs[4 * c + 1], hs[4 * c + 2], hs[4 * c + 3]];
                    let (table, out) = garble_and(a0, b0, deltas[c], h);
                    sink(c, table);
                    ts[c] = ts[c].next_gate();
                    w[o + c] = out;
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

/// [`super::halfgates::evaluate_at`] on copies of one circuit at once (at most
/// 2 [`LOCKSTEP`]: the evaluator hashes two blocks per gate): copy k at tweak `tweaks[k]` on
/// labels `garbler[k]`, `evaluator[k]`, reading its tables from `source(k)`. Returns each
/// copy's output labels.
pub fn evaluate_lockstep(
    circ: &Circuit,
    hasher: &Hasher,
    tweaks: &[Tweak],
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
    let mut w: Vec<Label> = vec![Label::default(); (n_in + circ.gates.len()) * k];
    for c in 0..k {
        assert_eq!(garbler[c].len(), gi, "garbler labels");
        assert_eq!(evaluator[c].len(), n_in - gi, "evaluator labels");
        for (i, &l) in garbler[c].iter().chain(evaluator[c].iter()).enumerate() {
            w[i * k + c] = l;
        }
    }
    let mut ts: Vec<Tweak> = tweaks.to_vec();
    let mut xs = [Label::default(); MAX_BATCH];
    let mut tw = [Tweak::new(0); MAX_BATCH];
    let mut hs = [Label::default(); MAX_BATCH];
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
                    let (la, lb) = (w[a as usize * k + c], w[b as usize * k + c]);
                    let (x, t) = eval_and_inputs(la, lb, ts[c]);
                    xs[2 * c..2 * c + 2].copy_from_slice(&x);
                    tw[2 * c..2 * c + 2].copy_from_slice(&t);
                }
                hasher.hash_slice(&xs[..2 * k], &tw[..2 * k], &mut hs[..2 * k]);
                for c in 0..k {
                    let table = source(c);
                    let (la, lb) = (xs[2 * c], xs[2 * c + 1]);
                    let h = [hs[2 * c], hs[2 * c + 1]];
                    ts[c] = ts[c].next_gate();
                    w[o + c] = eval_and(la, lb, h, table);
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

#[cfg(test)]
mod tests {
    use super::super::circuit::Builder;
    use super::super::halfgates::tests_support::{encode_evaluator, random_circuit};
    use super::super::halfgates::{evaluate_at, garble_at};
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// Garbles `c` in lockstep and one copy at a time from the same seeds and tweaks, then
    /// evaluates both ways on random inputs: tables, garblings and output labels must be
    /// identical, and the outputs must decode to the clear evaluation.
    fn check_lockstep_equals_one_at_a_time(c: &Circuit, k: usize, rng: &mut ChaCha20Rng) {
        let h = Hasher::default();
        let seeds: Vec<u64> = (0..k as u64).map(|i| 100 * k as u64 + i).collect();
        let tweaks: Vec<Tweak> = (0..k as u128).map(|i| Tweak::new((7 + i) << 40)).collect();
        let mut rngs: Vec<ChaCha20Rng> = seeds
            .iter()
            .map(|&s| ChaCha20Rng::seed_from_u64(s))
            .collect();
        let mut tabs = vec![Vec::new(); k];
        let many = garble_lockstep(c, &h, &tweaks, &mut rngs, |i, t| tabs[i].push(t));
        let (ng, ne) = (c.garbler_inputs as usize - 1, c.evaluator_inputs as usize);
        let mut gls = Vec::new();
        let mut els = Vec::new();
        for i in 0..k {
            let mut one_t = Vec::new();
            let one = garble_at(
                c,
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
            let gv: Vec<bool> = (0..ng).map(|_| rng.random()).collect();
            let ev: Vec<bool> = (0..ne).map(|_| rng.random()).collect();
            gls.push(one.encode_garbler(&gv));
            els.push(encode_evaluator(&one, &ev));
            let mut it = one_t.iter().copied();
            let single = evaluate_at(c, &h, tweaks[i], &gls[i], &els[i], || it.next().unwrap());
            assert_eq!(one.decode(&single).unwrap(), c.eval(&gv, &ev));
        }
        let gr: Vec<&[Label]> = gls.iter().map(|v| &v[..]).collect();
        let er: Vec<&[Label]> = els.iter().map(|v| &v[..]).collect();
        let mut next = vec![0usize; k];
        let outs = evaluate_lockstep(c, &h, &tweaks, &gr, &er, |i| {
            next[i] += 1;
            tabs[i][next[i] - 1]
        });
        for i in 0..k {
            let mut it = tabs[i].iter().copied();
            let single = evaluate_at(c, &h, tweaks[i], &gls[i], &els[i], || it.next().unwrap());
            assert_eq!(outs[i], single, "copy {i} of {k}: outputs");
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
        for k in [1usize, 3, LOCKSTEP] {
            check_lockstep_equals_one_at_a_time(&c, k, &mut rng);
        }
    }

    #[test]
    fn lockstep_equals_one_at_a_time_on_random_circuits() {
        let mut rng = ChaCha20Rng::seed_from_u64(15);
        for trial in 0..12 {
            let c = random_circuit(&mut rng);
            let k = [1usize, 2, 5, LOCKSTEP][trial % 4];
            check_lockstep_equals_one_at_a_time(&c, k, &mut rng);
        }
    }
}
