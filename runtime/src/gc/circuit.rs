//! Boolean circuits: a builder with constant folding, arithmetic gadgets (adders, subtractors,
//! comparators, multiplexers, addition mod p), and evaluation in the clear (the reference the
//! garbled evaluation is tested against).
//!
//! Wires 0..g are the garbler's inputs (wire 0 is the constant false), g..g+e the evaluator's;
//! every gate adds one wire. XOR and NOT are free under free-XOR; AND costs one half-gates table.

/// A wire index.
pub type Wire = u32;

/// A gate; its output is the next wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// a xor b.
    Xor(Wire, Wire),
    /// a and b.
    And(Wire, Wire),
    /// not a.
    Not(Wire),
}

/// A finished circuit.
#[derive(Clone, Debug)]
pub struct Circuit {
    /// Garbler input wires, the constant-false wire 0 included.
    pub garbler_inputs: u32,
    /// Evaluator input wires.
    pub evaluator_inputs: u32,
    /// Gates in order.
    pub gates: Vec<Gate>,
    /// Output wires.
    pub outputs: Vec<Wire>,
}

impl Circuit {
    /// Number of AND gates (the cost: 32 bytes of table each).
    pub fn and_count(&self) -> usize {
        self.gates
            .iter()
            .filter(|g| matches!(g, Gate::And(..)))
            .count()
    }

    /// Total wires.
    pub fn wires(&self) -> usize {
        (self.garbler_inputs + self.evaluator_inputs) as usize + self.gates.len()
    }

    /// Evaluates in the clear. `garbler` excludes the constant wire 0.
    pub fn eval(&self, garbler: &[bool], evaluator: &[bool]) -> Vec<bool> {
        assert_eq!(
            garbler.len() + 1,
            self.garbler_inputs as usize,
            "garbler inputs"
        );
        assert_eq!(
            evaluator.len(),
            self.evaluator_inputs as usize,
            "evaluator inputs"
        );
        let mut v = Vec::with_capacity(self.wires());
        v.push(false);
        v.extend_from_slice(garbler);
        v.extend_from_slice(evaluator);
        for g in &self.gates {
            let x = match *g {
                Gate::Xor(a, b) => v[a as usize] ^ v[b as usize],
                Gate::And(a, b) => v[a as usize] & v[b as usize],
                Gate::Not(a) => !v[a as usize],
            };
            v.push(x);
        }
        self.outputs.iter().map(|&o| v[o as usize]).collect()
    }
}

/// Builds a circuit; folds gates whose inputs are constants.
pub struct Builder {
    garbler_inputs: u32,
    evaluator_inputs: u32,
    gates: Vec<Gate>,
    /// Known constant value of each wire, if any.
    konst: Vec<Option<bool>>,
    one: Wire,
}

/// Little-endian bit vector of wires.
pub type Bits = Vec<Wire>;

impl Builder {
    /// A builder with `g` garbler and `e` evaluator input bits. Returns it with the two input
    /// vectors.
    pub fn new(g: u32, e: u32) -> (Self, Bits, Bits) {
        let mut b = Builder {
            garbler_inputs: g + 1,
            evaluator_inputs: e,
            gates: Vec::new(),
            konst: vec![None; (g + 1 + e) as usize],
            one: 0,
        };
        b.konst[0] = Some(false);
        b.one = b.push(Gate::Not(0), Some(true));
        let gi = (1..=g).collect();
        let ei = (g + 1..g + 1 + e).collect();
        (b, gi, ei)
    }

    fn push(&mut self, g: Gate, k: Option<bool>) -> Wire {
        self.gates.push(g);
        self.konst.push(k);
        (self.konst.len() - 1) as Wire
    }

    /// The constant wire of value `v`.
    pub fn constant(&self, v: bool) -> Wire {
        if v {
            self.one
        } else {
            0
        }
    }

    /// The bits of a constant, `n` wide.
    pub fn constant_bits(&self, v: u128, n: usize) -> Bits {
        (0..n).map(|i| self.constant((v >> i) & 1 == 1)).collect()
    }

    /// a xor b.
    pub fn xor(&mut self, a: Wire, b: Wire) -> Wire {
        match (self.konst[a as usize], self.konst[b as usize]) {
            (Some(x), Some(y)) => self.constant(x ^ y),
            (Some(false), _) => b,
            (_, Some(false)) => a,
            (Some(true), _) => self.not(b),
            (_, Some(true)) => self.not(a),
            _ if a == b => 0,
            _ => self.push(Gate::Xor(a, b), None),
        }
    }

    /// a and b.
    pub fn and(&mut self, a: Wire, b: Wire) -> Wire {
        match (self.konst[a as usize], self.konst[b as usize]) {
            (Some(x), Some(y)) => self.constant(x & y),
            (Some(false), _) | (_, Some(false)) => 0,
            (Some(true), _) => b,
            (_, Some(true)) => a,
            _ if a == b => a,
            _ => self.push(Gate::And(a, b), None),
        }
    }

    /// not a.
    pub fn not(&mut self, a: Wire) -> Wire {
        match self.konst[a as usize] {
            Some(x) => self.constant(!x),
            None => self.push(Gate::Not(a), None),
        }
    }

    /// a or b (one AND).
    pub fn or(&mut self, a: Wire, b: Wire) -> Wire {
        let (na, nb) = (self.not(a), self.not(b));
        let n = self.and(na, nb);
        self.not(n)
    }

    /// a + b + carry_in over equal widths; returns the sum and the carry out. One AND per bit:
    /// c' = c xor ((a xor c) and (b xor c)).
    pub fn add_carry(&mut self, a: &[Wire], b: &[Wire], carry_in: Wire) -> (Bits, Wire) {
        assert_eq!(a.len(), b.len(), "adder widths");
        let mut c = carry_in;
        let mut s = Vec::with_capacity(a.len());
        for (&x, &y) in a.iter().zip(b) {
            let xy = self.xor(x, y);
            s.push(self.xor(xy, c));
            let xc = self.xor(x, c);
            let yc = self.xor(y, c);
            let t = self.and(xc, yc);
            c = self.xor(c, t);
        }
        (s, c)
    }

    /// a - b over equal widths; returns the difference and whether a < b (the borrow).
    pub fn sub_borrow(&mut self, a: &[Wire], b: &[Wire]) -> (Bits, Wire) {
        let nb: Bits = b.iter().map(|&w| self.not(w)).collect();
        let one = self.constant(true);
        let (d, carry) = self.add_carry(a, &nb, one);
        let borrow = self.not(carry);
        (d, borrow)
    }

    /// s ? a : b, bitwise (one AND per bit).
    pub fn mux(&mut self, s: Wire, a: &[Wire], b: &[Wire]) -> Bits {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| {
                let d = self.xor(x, y);
                let t = self.and(s, d);
                self.xor(y, t)
            })
            .collect()
    }

    /// (a + b) mod p for a, b < p, n = bits of p.
    pub fn add_mod(&mut self, a: &[Wire], b: &[Wire], p: u64) -> Bits {
        let n = a.len();
        let zero = self.constant(false);
        let (mut t, c) = self.add_carry(a, b, zero);
        t.push(c);
        let pb = self.constant_bits(p as u128, n + 1);
        let (d, borrow) = self.sub_borrow(&t, &pb);
        // t >= p: take t - p.
        self.mux(borrow, &t[..n], &d[..n])
    }

    /// Finishes the circuit with these outputs.
    pub fn finish(self, outputs: Bits) -> Circuit {
        Circuit {
            garbler_inputs: self.garbler_inputs,
            evaluator_inputs: self.evaluator_inputs,
            gates: self.gates,
            outputs,
        }
    }
}

/// Little-endian bits of `v`, `n` wide.
pub fn to_bits(v: u64, n: usize) -> Vec<bool> {
    (0..n).map(|i| (v >> i) & 1 == 1).collect()
}

/// The value of little-endian bits.
pub fn from_bits(b: &[bool]) -> u64 {
    b.iter()
        .enumerate()
        .fold(0, |v, (i, &x)| v | ((x as u64) << i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gadgets_compute_what_they_say() {
        let n = 8;
        let (mut b, g, e) = Builder::new(n, n);
        let (s, c) = b.add_carry(&g, &e, 0);
        let (d, br) = b.sub_borrow(&g, &e);
        let sel = g[0];
        let m = b.mux(sel, &g, &e);
        let mut out = s.clone();
        out.push(c);
        out.extend(&d);
        out.push(br);
        out.extend(&m);
        let circ = b.finish(out);
        for (x, y) in [
            (0u64, 0u64),
            (255, 1),
            (17, 200),
            (128, 128),
            (3, 250),
            (254, 255),
        ] {
            let r = circ.eval(&to_bits(x, 8), &to_bits(y, 8));
            assert_eq!(from_bits(&r[..9]), x + y);
            assert_eq!(from_bits(&r[9..17]), x.wrapping_sub(y) & 0xFF);
            assert_eq!(r[17], x < y);
            assert_eq!(from_bits(&r[18..26]), if x & 1 == 1 { x } else { y });
        }
        assert_eq!(circ.and_count(), 8 + 8 + 8, "one AND per bit per gadget");
    }

    #[test]
    fn add_mod_p_matches_integers_exhaustively_for_a_small_prime() {
        let p = 251u64;
        let (mut b, g, e) = Builder::new(8, 8);
        let out = b.add_mod(&g, &e, p);
        let c = b.finish(out);
        for x in 0..p {
            for y in (0..p).step_by(3) {
                assert_eq!(
                    from_bits(&c.eval(&to_bits(x, 8), &to_bits(y, 8))),
                    (x + y) % p
                );
            }
        }
    }

    #[test]
    fn constants_fold_away() {
        let (mut b, g, _) = Builder::new(2, 0);
        let one = b.constant(true);
        assert_eq!(b.and(g[0], one), g[0]);
        assert_eq!(b.and(g[0], 0), 0);
        assert_eq!(b.xor(g[1], 0), g[1]);
        assert_eq!(b.xor(g[1], g[1]), 0);
        let c = b.finish(vec![]);
        assert_eq!(c.and_count(), 0);
    }
}
