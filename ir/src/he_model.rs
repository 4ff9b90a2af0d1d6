//! The one place in `ir` with HE knowledge: the BFV parameters the plans are packed for (ring
//! degree, the default backend's limb sizes), the noise arithmetic of a packed layer, the
//! flooding a session needs, and the packing choice they decide. Arithmetic on public numbers
//! only (shapes, bounds, bit counts): no keys, no encryption. The backends that encrypt live in
//! the runtime, and describe their own parameters through [`NoiseBudget`]; the compiler's
//! passes and the runtime both size noise from here, so they agree without exchanging anything.

use crate::packing::{ConvShape, GeometryError, Packing};
use crate::plan::{Plan, Protocol};

/// Why the HE parameters cannot carry a layer or a session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeModelError {
    /// An HE layer of the plan without its packing.
    #[error("`{layer}`: no HE packing in the plan (recompile it)")]
    NoPacking {
        /// The layer.
        layer: String,
    },
    /// The layer is not a convolution the packing can cut.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// The flooded noise does not fit the ciphertext modulus.
    #[error(
        "noise 2^{noise_bits} flooded to 2^{flood} ({FLOOD_SIGMA} bits of statistical \
         security over N = {degree} coefficients of R = {replies} replies per session) needs a \
         {need}-bit ciphertext modulus with a {t_bits}-bit p, the parameters have {have} bits"
    )]
    Flood {
        /// log2 of the noise bound B.
        noise_bits: u32,
        /// The flooding width b.
        flood: u32,
        /// Ring degree N.
        degree: usize,
        /// Replies R of the session.
        replies: u64,
        /// Modulus bits needed.
        need: u32,
        /// Bits of p.
        t_bits: u32,
        /// Modulus bits the parameters have.
        have: u32,
    },
    /// A packing made for another ring degree.
    #[error("packing for another ring degree")]
    Degree,
    /// A packing whose coefficients exceed the ring.
    #[error("{m_o} x {c_t} x {vin} coefficients exceed the ring degree {degree}")]
    Ring {
        /// Output channels per product.
        m_o: usize,
        /// Input channels per polynomial.
        c_t: usize,
        /// Coefficients per channel of an input tile.
        vin: usize,
        /// Ring degree.
        degree: usize,
    },
    /// A depthwise packing with M_o != C_t.
    #[error("a depthwise packing needs M_o = C_t")]
    Depthwise,
    /// No packing's flooding fits; the least noisy one fails with `quietest`.
    #[error(
        "no packing fits with {weight_mag_bits}-bit weights: the least noisy one leaves {quietest}"
    )]
    NoFit {
        /// Magnitude bits of the weights.
        weight_mag_bits: u32,
        /// Why the least noisy packing does not fit.
        #[source]
        quietest: Box<HeModelError>,
    },
    /// No packing fits the ring at all.
    #[error(
        "no packing of this layer fits N = {degree} with {weight_mag_bits}-bit weights in a \
         {modulus_bits}-bit ciphertext modulus"
    )]
    NoRingFit {
        /// Ring degree.
        degree: usize,
        /// Magnitude bits of the weights.
        weight_mag_bits: u32,
        /// Modulus bits the parameters have.
        modulus_bits: u32,
    },
}

/// Statistical security of noise flooding, in bits.
pub const FLOOD_SIGMA: u32 = 40;

/// Ring degree the plans are packed for: 8192 gives 128-bit security for the moduli used (the
/// HE standard's table allows log q <= 218 at N = 8192).
pub const DEGREE: usize = 8192;

/// What a BFV parameter set offers a computation: the ring, the plaintext modulus and the
/// room for noise.
pub trait NoiseBudget {
    /// Ring degree N: values per plaintext.
    fn degree(&self) -> usize;
    /// The plaintext modulus t = p.
    fn plain_modulus(&self) -> u64;
    /// log2 of the ciphertext modulus that computations run at (rounded down).
    fn modulus_bits(&self) -> u32;
    /// log2 of a bound on the noise of a fresh encryption.
    fn fresh_noise_bits(&self) -> u32;
}

/// The parameters of the default backend (fhe.rs at N = 8192) for a prime p, as the compiler
/// sees them: the limbs of [`HeModel::limb_bits`], one bit less than their nominal sum (the
/// primes are just under their sizes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeModel {
    /// Plaintext modulus.
    pub p: u64,
    /// Ciphertext modulus bits.
    pub modulus_bits: u32,
}

impl HeModel {
    /// The default backend's parameters for `p`.
    pub fn for_prime(p: u64) -> Self {
        HeModel {
            p,
            modulus_bits: Self::limb_bits(p).iter().sum::<usize>() as u32 - 1,
        }
    }

    /// RNS limb sizes of the default backend: 218 bits in all, the HE standard's 128-bit
    /// bound at N = 8192. fhe.rs wants every limb above p, and the first limb alone must
    /// exceed p (the slot encoding is read back through it), so primes above 51 bits get
    /// three 62-bit limbs (186 bits) instead.
    pub fn limb_bits(p: u64) -> &'static [usize] {
        if p < 1 << 51 {
            &[62, 52, 52, 52]
        } else {
            &[62, 62, 62]
        }
    }
}

/// Whether a ciphertext switched down to a modulus of `bits` bits still decrypts: the
/// switch's rounding noise (about N * 16) must stay below q / 4p.
pub fn switch_target_fits(bits: u32, p: u64) -> bool {
    let t_bits = 64 - p.leading_zeros();
    bits >= DEGREE.trailing_zeros() + 4 + t_bits + 3
}

impl NoiseBudget for HeModel {
    fn degree(&self) -> usize {
        DEGREE
    }
    fn plain_modulus(&self) -> u64 {
        self.p
    }
    fn modulus_bits(&self) -> u32 {
        self.modulus_bits
    }
    fn fresh_noise_bits(&self) -> u32 {
        6
    }
}

/// ceil(log2(x)), 0 for x <= 1.
pub fn ceil_log2(x: u64) -> u32 {
    if x <= 1 {
        0
    } else {
        64 - (x - 1).leading_zeros()
    }
}

/// What the flooding of one session must cover: R, the number of flooded ciphertexts the
/// server returns to the client in the whole session. The client decrypts every one of their
/// N coefficients, so the flood of each is sized for N R of them (see [`flood_bits`]).
///
/// Both parties and the compiler take R from the public plan ([`FloodBudget::of_plan`]), so
/// they agree on every flooding width without exchanging anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodBudget {
    replies: u64,
}

impl FloodBudget {
    /// A budget for `replies` flooded replies in a session (at least one).
    pub const fn new(replies: u64) -> Self {
        FloodBudget {
            replies: if replies == 0 { 1 } else { replies },
        }
    }

    /// The budget of a session running `plan`: R = [`session_replies`].
    pub fn of_plan(plan: &Plan) -> Result<Self, HeModelError> {
        Ok(Self::new(session_replies(plan)?))
    }

    /// R: the flooded replies of a session.
    pub fn replies(&self) -> u64 {
        self.replies
    }

    /// b - B, how many bits the flood is wider than the noise it hides:
    /// [`FLOOD_SIGMA`] + ceil(log2 N) + ceil(log2 R).
    pub fn margin_bits(&self, degree: usize) -> u32 {
        FLOOD_SIGMA + ceil_log2(degree as u64) + ceil_log2(self.replies)
    }
}

/// R of a session running `plan`: every ciphertext the server floods and returns. These are
/// the replies of the HE linear layers, [`Packing::cts_out`] of each (one per output group
/// and tile); the session makes its Beaver squares by oblivious transfer, which returns no
/// ciphertext. Fails on an HE layer without a packing.
pub fn session_replies(plan: &Plan) -> Result<u64, HeModelError> {
    let mut r = 0u64;
    for l in &plan.layers {
        if l.protocol != Protocol::HeLinear {
            continue;
        }
        let name = &plan.graph.node(l.node).name;
        let pk = l.packing.as_ref().ok_or_else(|| HeModelError::NoPacking {
            layer: name.clone(),
        })?;
        let s = ConvShape::of_node(&plan.graph, l.node)?;
        r += pk.cts_out(&s) as u64;
    }
    Ok(r)
}

/// The flooding width b for noise of at most 2^`noise_bits` = 2^B in a session of
/// `budget.replies()` = R replies, checked to fit the parameters.
///
/// Uniform noise on the 2^(b+1) integers of [-2^b, 2^b) hides an integer |e| <= 2^B to within
/// statistical distance |e| / 2^(b+1) <= 2^(B-b-1) per coefficient. The client decrypts all N
/// coefficients of each of R replies, each flooded independently, so the session's noise is
/// within N R 2^(B-b-1) of noise independent of the weights. With
/// b = B + [`FLOOD_SIGMA`] + ceil(log2 N) + ceil(log2 R) that is at most 2^-(FLOOD_SIGMA+1).
/// (Layers with different B each get their own b; the bound sums to the same.)
///
/// The flooded noise, below 2^B + 2^b <= 2^(b+1), must stay under q / (2t), with one bit to
/// spare for rounding: b + 3 + log2 t <= log2 q.
pub fn flood_bits<B: NoiseBudget + ?Sized>(
    be: &B,
    noise_bits: u32,
    budget: &FloodBudget,
) -> Result<u32, HeModelError> {
    let flood = noise_bits + budget.margin_bits(be.degree());
    let t_bits = 64 - be.plain_modulus().leading_zeros();
    let need = flood + 2 + t_bits + 1;
    if need > be.modulus_bits() {
        return Err(HeModelError::Flood {
            noise_bits,
            flood,
            degree: be.degree(),
            replies: budget.replies(),
            need,
            t_bits,
            have: be.modulus_bits(),
        });
    }
    Ok(flood)
}

/// log2 (rounded up) of a bound on the noise of sum_k ct_k * pt_k where `terms` products are
/// summed and each plaintext has l1-norm at most 2^`l1_bits`: each product adds at most
/// ||pt||_1 * (t + |e|) (the t term is BFV's q mod t carry). One more bit covers the
/// public-key encryption of zero that re-randomises the result (its noise, about N * 2^6,
/// is below one product's t * ||pt||_1 for every prime the plans use, 2^21 and up).
pub fn product_noise_bits<B: NoiseBudget + ?Sized>(be: &B, l1_bits: u32, terms: u64) -> u32 {
    let t_bits = 64 - be.plain_modulus().leading_zeros();
    let per = l1_bits + t_bits.max(be.fresh_noise_bits()) + 1;
    // + ceil(log2(terms)) + 1 for the re-randomisation
    per + 64 - (terms.max(1) - 1).leading_zeros() + 1
}

/// Microseconds per operation of the offline linear protocol on the reference machine (2
/// cores, both parties on them, fhe.rs backend, N = 8192, a 217-bit modulus): a product summed
/// into a reply, a kernel's preparation (its transform), a ciphertext in (encryption,
/// serialisation, the server's reading) and one out (mask, re-randomisation, flooding,
/// switch, serialisation, the client's reading and decryption). Fitted by least squares to
/// full C3D's eleven layers run end to end (`cargo bench -p c3d-runtime --bench he_layers --
/// --plan`); the fit is in docs/bench-runtime.md.
pub const COST_PRODUCT_US: f64 = 36.0;
/// See [`COST_PRODUCT_US`].
pub const COST_PREPARE_US: f64 = 240.0;
/// See [`COST_PRODUCT_US`].
pub const COST_IN_US: f64 = 3920.0;
/// See [`COST_PRODUCT_US`].
pub const COST_OUT_US: f64 = 4690.0;

fn candidates(limit: usize) -> Vec<usize> {
    let mut v: Vec<usize> = [
        1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 48, 56, 64, 112,
    ]
    .into_iter()
    .filter(|&x| x <= limit)
    .collect();
    v.push(limit);
    v.dedup();
    v
}

impl Packing {
    /// log2 of the noise bound after a tile's products, from the public weight bound.
    pub fn noise_bits<B: NoiseBudget + ?Sized>(
        &self,
        s: &ConvShape,
        be: &B,
        weight_mag_bits: u32,
    ) -> u32 {
        let kvol = s.kernel.iter().product::<usize>() as u64;
        let per_out = if s.depthwise { 1 } else { self.c_t as u64 };
        let l1 = self.m_o as u64 * per_out * kvol;
        let l1_bits = 64 - l1.leading_zeros() + weight_mag_bits;
        let terms = if s.depthwise {
            1
        } else {
            self.in_blocks(s) as u64
        };
        product_noise_bits(be, l1_bits, terms)
    }

    /// Checks the packing fits the ring and the noise budget of a session with `budget`'s
    /// replies, and returns the layer's flooding width ([`flood_bits`]).
    pub fn check<B: NoiseBudget + ?Sized>(
        &self,
        s: &ConvShape,
        be: &B,
        weight_mag_bits: u32,
        budget: &FloodBudget,
    ) -> Result<u32, HeModelError> {
        if self.degree != be.degree() {
            return Err(HeModelError::Degree);
        }
        if self.m_o * self.c_t * self.vin(s) > self.degree || self.c_t == 0 || self.m_o == 0 {
            return Err(HeModelError::Ring {
                m_o: self.m_o,
                c_t: self.c_t,
                vin: self.vin(s),
                degree: self.degree,
            });
        }
        if s.depthwise && self.m_o != self.c_t {
            return Err(HeModelError::Depthwise);
        }
        flood_bits(be, self.noise_bits(s, be, weight_mag_bits), budget)
    }

    /// Estimated seconds the layer costs under this packing on the reference machine, both
    /// parties' work (what [`Packing::choose`] minimises; [`COST_PRODUCT_US`] and the rest).
    pub fn cost(&self, s: &ConvShape) -> f64 {
        let per_tile = if s.depthwise {
            self.in_blocks(s)
        } else {
            self.in_blocks(s) * self.out_groups(s)
        };
        self.cost_live(s, per_tile)
    }

    /// [`Packing::cost`] when only `live` of a tile's products have a non-zero kernel (pruned
    /// weights: the server skips the others, and prepares only the live kernels).
    pub fn cost_live(&self, s: &ConvShape, live: usize) -> f64 {
        let batches = self.tile_count(s).div_ceil(self.tile_batch(s));
        (live as f64 * self.tile_count(s) as f64 * COST_PRODUCT_US
            + live as f64 * batches as f64 * COST_PREPARE_US
            + self.cts_in(s) as f64 * COST_IN_US
            + self.cts_out(s) as f64 * COST_OUT_US)
            / 1e6
    }

    /// The cheapest packing by the cost model among those that fit a session of `budget`'s
    /// replies. When none does, the error gives the least noisy packing that fits the ring
    /// and what its flooding would need.
    pub fn choose<B: NoiseBudget + ?Sized>(
        s: &ConvShape,
        be: &B,
        weight_mag_bits: u32,
        budget: &FloodBudget,
    ) -> Result<Packing, HeModelError> {
        Self::choose_by(s, be, weight_mag_bits, budget, &mut |pk| pk.cost(s))
    }

    /// [`Packing::choose`] minimising `cost` instead of [`Packing::cost`] (the packing pass
    /// counts only the live products of pruned weights, so the packing a sparse model was
    /// pruned along keeps its savings).
    pub fn choose_by<B: NoiseBudget + ?Sized>(
        s: &ConvShape,
        be: &B,
        weight_mag_bits: u32,
        budget: &FloodBudget,
        cost: &mut dyn FnMut(&Packing) -> f64,
    ) -> Result<Packing, HeModelError> {
        s.validate()?;
        let n = be.degree();
        let d = s.dense();
        let mut best: Option<(f64, Packing)> = None;
        // The least noisy packing that fits the ring, and why it does not fit the modulus.
        let mut quietest: Option<(u32, HeModelError)> = None;
        let mut cts: Vec<usize> = (0..)
            .map(|k| 1usize << k)
            .take_while(|&c| c < s.c_in)
            .collect();
        cts.push(s.c_in);
        for &tz in &candidates(d[0]) {
            for &ty in &candidates(d[1]) {
                for &tx in &candidates(d[2]) {
                    for &c_t in &cts {
                        let mut pk = Packing {
                            tile: [tz, ty, tx],
                            c_t,
                            m_o: 1,
                            degree: n,
                        };
                        let vin = pk.vin(s);
                        if c_t * vin > n {
                            continue;
                        }
                        pk.m_o = if s.depthwise {
                            if c_t * c_t * vin > n {
                                continue;
                            }
                            c_t
                        } else {
                            (n / (c_t * vin)).min(s.c_out)
                        };
                        if let Err(e) = pk.check(s, be, weight_mag_bits, budget) {
                            let noise = pk.noise_bits(s, be, weight_mag_bits);
                            if quietest.as_ref().is_none_or(|(b, _)| noise < *b) {
                                quietest = Some((noise, e));
                            }
                            continue;
                        }
                        let cost = cost(&pk);
                        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                            best = Some((cost, pk));
                        }
                    }
                }
            }
        }
        best.map(|(_, p)| p).ok_or_else(|| match quietest {
            Some((_, e)) => HeModelError::NoFit {
                weight_mag_bits,
                quietest: Box::new(e),
            },
            None => HeModelError::NoRingFit {
                degree: n,
                weight_mag_bits,
                modulus_bits: be.modulus_bits(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameters at Delphi's 41-bit prime: a 217-bit modulus.
    fn delphi() -> HeModel {
        HeModel::for_prime(crate::fixed::DELPHI_PRIME)
    }

    /// log2 of the statistical distance bound N R 2^(B - b - 1) of R replies of N
    /// coefficients, each flooded to 2^b over noise 2^B.
    fn distance_log2(n: usize, r: u64, noise: u32, flood: u32) -> f64 {
        (n as f64).log2() + (r as f64).log2() + noise as f64 - flood as f64 - 1.0
    }

    #[test]
    fn flooding_covers_every_coefficient_of_every_reply_of_a_session() {
        let he = delphi();
        let n = he.degree();
        assert_eq!(ceil_log2(n as u64), 13);
        for (r, extra) in [
            (1u64, 0u32),
            (2, 1),
            (1000, 10),
            (1024, 10),
            (1025, 11),
            (6000, 13),
            (1 << 20, 20),
        ] {
            let budget = FloodBudget::new(r);
            assert_eq!(budget.margin_bits(n), FLOOD_SIGMA + 13 + extra, "R = {r}");
            for noise in [20, 67, 100] {
                let b = flood_bits(&he, noise, &budget).unwrap();
                assert_eq!(b, noise + FLOOD_SIGMA + 13 + extra);
                // N R 2^(B - b - 1) <= 2^-(sigma + 1): the session's distance, all replies.
                let d = distance_log2(n, r, noise, b);
                assert!(d <= -(FLOOD_SIGMA as f64) - 1.0, "R = {r}: 2^{d}");
            }
        }
        // The width a single reply's 40 bits would give falls short over a session: full
        // C3D's thousands of replies of 8192 coefficients leave about 2^-16.
        let d = distance_log2(n, 6000, 67, 67 + FLOOD_SIGMA);
        assert!(d > -17.0 && d < -15.0, "2^{d}");
        // No replies still floods as for one.
        assert_eq!(FloodBudget::new(0), FloodBudget::new(1));
    }

    #[test]
    fn flooding_the_modulus_cannot_carry_is_refused_with_the_bits() {
        let he = delphi();
        // b + 3 + 41 <= 217: b <= 173, so B <= 173 - 53 - ceil(log2 R).
        let one = FloodBudget::new(1);
        assert_eq!(flood_bits(&he, 120, &one), Ok(173));
        let e = flood_bits(&he, 121, &one).unwrap_err().to_string();
        assert!(
            e.contains("noise 2^121 flooded to 2^174")
                && e.contains("needs a 218-bit ciphertext modulus")
                && e.contains("the parameters have 217 bits"),
            "{e}"
        );
        let many = FloodBudget::new(4096);
        assert_eq!(flood_bits(&he, 108, &many), Ok(173));
        let e = flood_bits(&he, 109, &many).unwrap_err().to_string();
        assert!(e.contains("R = 4096 replies per session"), "{e}");
    }

    #[test]
    fn packings_are_chosen_for_the_session_and_refused_naming_what_they_need() {
        let he = delphi();
        let s = ConvShape::same_3x3x3(64, 128, [8, 28, 28]);
        for r in [1u64, 1 << 10, 1 << 20] {
            let budget = FloodBudget::new(r);
            let pk = Packing::choose(&s, &he, 12, &budget).unwrap();
            let b = pk.check(&s, &he, 12, &budget).unwrap();
            assert_eq!(
                b,
                pk.noise_bits(&s, &he, 12) + budget.margin_bits(he.degree())
            );
        }
        // Weights so wide that no packing's flooding fits: the error says what the least
        // noisy packing would need.
        let e = Packing::choose(&s, &he, 60, &FloodBudget::new(1 << 10))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no packing fits with 60-bit weights")
                && e.contains("flooded to")
                && e.contains("the parameters have 217 bits"),
            "{e}"
        );
    }
}
