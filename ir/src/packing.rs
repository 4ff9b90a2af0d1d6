//! HE packing of linear layers: the geometry of a 3-D convolution, how it is cut into
//! coefficient-encoded plaintexts (which input values go to which coefficients, where the
//! kernels sit, where each output lands), the noise each cut leaves, and the choice of the
//! cheapest cut. Pure arithmetic on public shapes and bounds; the encryption itself lives
//! in the runtime, whose backends describe their parameters through [`NoiseBudget`].

use crate::graph::{Graph, NodeId};
use crate::op::Op;
use crate::plan::{Plan, Protocol};
use serde::{Deserialize, Serialize};

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
    pub fn of_plan(plan: &Plan) -> Result<Self, String> {
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
pub fn session_replies(plan: &Plan) -> Result<u64, String> {
    let mut r = 0u64;
    for l in &plan.layers {
        if l.protocol != Protocol::HeLinear {
            continue;
        }
        let name = &plan.graph.node(l.node).name;
        let pk = l
            .packing
            .as_ref()
            .ok_or_else(|| format!("`{name}`: no HE packing in the plan (recompile it)"))?;
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
) -> Result<u32, String> {
    let flood = noise_bits + budget.margin_bits(be.degree());
    let t_bits = 64 - be.plain_modulus().leading_zeros();
    let need = flood + 2 + t_bits + 1;
    if need > be.modulus_bits() {
        return Err(format!(
            "noise 2^{noise_bits} flooded to 2^{flood} ({FLOOD_SIGMA} bits of statistical \
             security over N = {} coefficients of R = {} replies per session) needs a \
             {need}-bit ciphertext modulus with a {t_bits}-bit p, the parameters have {} bits",
            be.degree(),
            budget.replies(),
            be.modulus_bits()
        ));
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

/// A 3-D convolution over (C, D, H, W) tensors, without bias (the server adds its bias to
/// its own share online).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvShape {
    /// Input channels.
    pub c_in: usize,
    /// Output channels (equal to `c_in` when depthwise).
    pub c_out: usize,
    /// Input volume (D, H, W), before padding.
    pub input: [usize; 3],
    /// Kernel extent.
    pub kernel: [usize; 3],
    /// Stride.
    pub stride: [usize; 3],
    /// Dilation.
    pub dilation: [usize; 3],
    /// Zero padding before each axis.
    pub pad_begin: [usize; 3],
    /// Zero padding after each axis.
    pub pad_end: [usize; 3],
    /// Each output channel reads only its own input channel (average pooling).
    pub depthwise: bool,
}

impl ConvShape {
    /// A fully connected layer y = W x with W of shape (outputs, inputs).
    pub fn fully_connected(inputs: usize, outputs: usize) -> Self {
        ConvShape {
            c_in: inputs,
            c_out: outputs,
            input: [1, 1, 1],
            kernel: [1, 1, 1],
            stride: [1, 1, 1],
            dilation: [1, 1, 1],
            pad_begin: [0; 3],
            pad_end: [0; 3],
            depthwise: false,
        }
    }

    /// The linear map of a node with secret weights (Conv3d, or Linear as a 1x1x1 convolution
    /// over a 1x1x1 volume), for one clip (N = 1).
    pub fn of_node(g: &Graph, id: NodeId) -> Result<ConvShape, String> {
        let node = g.node(id);
        let one = |sh: &crate::Shape| match sh.ncdhw() {
            Some((1, c, d, h, w)) => Ok((c, [d, h, w])),
            _ => Err(format!(
                "`{}`: one clip at a time (N = 1, rank 5), got {sh}",
                node.name
            )),
        };
        let inputs = g.inputs_of(id);
        let shape = match &node.op {
            Op::Conv3d(cp) => {
                let (c_in, input) = one(&g.node(inputs[0]).shape)?;
                let (c_out, out) = one(&node.shape)?;
                let w = &cp.window;
                if w.ceil_mode || c_in != cp.in_channels || c_out != cp.out_channels {
                    return Err(format!(
                        "`{}`: convolution geometry does not match its tensors",
                        node.name
                    ));
                }
                let shape = ConvShape {
                    c_in,
                    c_out,
                    input,
                    kernel: w.kernel,
                    stride: w.stride,
                    dilation: w.dilation,
                    pad_begin: std::array::from_fn(|a| w.pads[a].0),
                    pad_end: std::array::from_fn(|a| w.pads[a].1),
                    depthwise: false,
                };
                shape.validate()?;
                if shape.output() != out {
                    return Err(format!(
                        "`{}`: convolution output {:?} is not the tensor's {out:?}",
                        node.name,
                        shape.output()
                    ));
                }
                shape
            }
            Op::Linear {
                in_features,
                out_features,
            } => {
                if node.shape.dims().first() != Some(&1) {
                    return Err(format!("`{}`: one clip at a time (N = 1)", node.name));
                }
                ConvShape::fully_connected(*in_features, *out_features)
            }
            op => {
                return Err(format!(
                    "`{}`: {} has no secret weights",
                    node.name,
                    op.name()
                ))
            }
        };
        Ok(shape)
    }

    fn padded(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.input[a] + self.pad_begin[a] + self.pad_end[a])
    }

    /// Extent of the dilated kernel.
    fn span(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.dilation[a] * (self.kernel[a] - 1) + 1)
    }

    /// Outputs at stride 1 over the padded volume.
    fn dense(&self) -> [usize; 3] {
        let (p, s) = (self.padded(), self.span());
        std::array::from_fn(|a| p[a] + 1 - s[a])
    }

    /// Output volume.
    pub fn output(&self) -> [usize; 3] {
        let d = self.dense();
        std::array::from_fn(|a| (d[a] - 1) / self.stride[a] + 1)
    }

    /// Input values (C * D * H * W).
    pub fn input_len(&self) -> usize {
        self.c_in * self.input.iter().product::<usize>()
    }

    /// Output values.
    pub fn output_len(&self) -> usize {
        self.c_out * self.output().iter().product::<usize>()
    }

    /// Weights, laid out (C_out, C_in or 1, kd, kh, kw).
    pub fn weight_len(&self) -> usize {
        self.c_out
            * if self.depthwise { 1 } else { self.c_in }
            * self.kernel.iter().product::<usize>()
    }

    /// Checks the shape is a well-formed convolution.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |m: String| Err(m);
        if self.c_in == 0 || self.c_out == 0 {
            return bad("no channels".into());
        }
        if self.depthwise && self.c_in != self.c_out {
            return bad(format!(
                "a depthwise layer maps {} channels to {}",
                self.c_in, self.c_out
            ));
        }
        for a in 0..3 {
            if self.input[a] == 0
                || self.kernel[a] == 0
                || self.stride[a] == 0
                || self.dilation[a] == 0
            {
                return bad(format!("a zero extent, stride or dilation on axis {a}"));
            }
            if self.padded()[a] < self.span()[a] {
                return bad(format!(
                    "kernel span {} exceeds the padded input {} on axis {a}",
                    self.span()[a],
                    self.padded()[a]
                ));
            }
        }
        Ok(())
    }

    /// The layer in the clear, mod p: the reference the protocol must meet.
    pub fn apply(&self, x: &[u64], w: &[u64], p: u64) -> Vec<u64> {
        let [id, ih, iw] = self.input;
        let [od, oh, ow] = self.output();
        let [kd, kh, kw] = self.kernel;
        let mut out = vec![0u64; self.output_len()];
        for o in 0..self.c_out {
            let chans: Vec<usize> = if self.depthwise {
                vec![o]
            } else {
                (0..self.c_in).collect()
            };
            for z in 0..od {
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut acc = 0u128;
                        for (ci, &c) in chans.iter().enumerate() {
                            for i in 0..kd {
                                for j in 0..kh {
                                    for l in 0..kw {
                                        let pos = [
                                            (z * self.stride[0] + i * self.dilation[0]) as isize
                                                - self.pad_begin[0] as isize,
                                            (y * self.stride[1] + j * self.dilation[1]) as isize
                                                - self.pad_begin[1] as isize,
                                            (xx * self.stride[2] + l * self.dilation[2]) as isize
                                                - self.pad_begin[2] as isize,
                                        ];
                                        if pos[0] < 0
                                            || pos[1] < 0
                                            || pos[2] < 0
                                            || pos[0] >= id as isize
                                            || pos[1] >= ih as isize
                                            || pos[2] >= iw as isize
                                        {
                                            continue;
                                        }
                                        let xv = x[((c * id + pos[0] as usize) * ih
                                            + pos[1] as usize)
                                            * iw
                                            + pos[2] as usize];
                                        let cw = if self.depthwise { 0 } else { ci };
                                        let per_o = if self.depthwise { 1 } else { self.c_in };
                                        let wv = w[(((o * per_o + cw) * kd + i) * kh + j) * kw + l];
                                        acc = (acc + xv as u128 * wv as u128) % p as u128;
                                    }
                                }
                            }
                        }
                        out[((o * od + z) * oh + y) * ow + xx] = acc as u64;
                    }
                }
            }
        }
        out
    }
}

/// How a layer is cut into plaintexts: chosen by the compiler's packing pass from public data
/// (the shape, the ring degree and the public weight bound) and recorded in the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packing {
    /// Stride-1 output positions per tile on each axis.
    pub tile: [usize; 3],
    /// Input channels per polynomial.
    pub c_t: usize,
    /// Output channels per product.
    pub m_o: usize,
    /// Ring degree.
    pub degree: usize,
}

/// Relative costs for choosing a packing, in units of one plaintext multiplication,
/// measured with the fhe.rs backend on one core: a ciphertext in costs its encryption and
/// upload, one out its flooding, modulus switch, download and decryption.
const COST_IN: usize = 12;
const COST_OUT: usize = 40;

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
    /// Input extents of a tile (output extents plus the kernel's halo).
    pub fn in_ext(&self, s: &ConvShape) -> [usize; 3] {
        let sp = s.span();
        std::array::from_fn(|a| self.tile[a] + sp[a] - 1)
    }

    /// Coefficients per channel of an input tile.
    pub fn vin(&self, s: &ConvShape) -> usize {
        self.in_ext(s).iter().product()
    }

    /// Tile origins in stride-1 output coordinates.
    pub fn tiles(&self, s: &ConvShape) -> Vec<[usize; 3]> {
        let d = s.dense();
        let mut v = Vec::new();
        for z in (0..d[0]).step_by(self.tile[0]) {
            for y in (0..d[1]).step_by(self.tile[1]) {
                for x in (0..d[2]).step_by(self.tile[2]) {
                    v.push([z, y, x]);
                }
            }
        }
        v
    }

    /// Number of tiles (what [`Packing::tiles`] lists), without listing them.
    pub fn tile_count(&self, s: &ConvShape) -> usize {
        let d = s.dense();
        (0..3).map(|a| d[a].div_ceil(self.tile[a])).product()
    }

    /// Input channel blocks.
    pub fn in_blocks(&self, s: &ConvShape) -> usize {
        s.c_in.div_ceil(self.c_t)
    }

    /// Output channel groups (for depthwise, one per input block).
    pub fn out_groups(&self, s: &ConvShape) -> usize {
        if s.depthwise {
            self.in_blocks(s)
        } else {
            s.c_out.div_ceil(self.m_o)
        }
    }

    /// Plaintext multiplications the server does.
    pub fn products(&self, s: &ConvShape) -> usize {
        let per_tile = if s.depthwise {
            self.in_blocks(s)
        } else {
            self.in_blocks(s) * self.out_groups(s)
        };
        self.tile_count(s) * per_tile
    }

    /// Ciphertexts the client sends.
    pub fn cts_in(&self, s: &ConvShape) -> usize {
        self.tile_count(s) * self.in_blocks(s)
    }

    /// Ciphertexts the server returns.
    pub fn cts_out(&self, s: &ConvShape) -> usize {
        self.tile_count(s) * self.out_groups(s)
    }

    /// log2 of the noise bound after a tile's products, from the public weight bound.
    pub fn noise_bits<B: NoiseBudget + ?Sized>(
        &self,
        s: &ConvShape,
        be: &B,
        weight_bits: u32,
    ) -> u32 {
        let kvol = s.kernel.iter().product::<usize>() as u64;
        let per_out = if s.depthwise { 1 } else { self.c_t as u64 };
        let l1 = self.m_o as u64 * per_out * kvol;
        let l1_bits = 64 - l1.leading_zeros() + weight_bits;
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
        weight_bits: u32,
        budget: &FloodBudget,
    ) -> Result<u32, String> {
        if self.degree != be.degree() {
            return Err("packing for another ring degree".into());
        }
        if self.m_o * self.c_t * self.vin(s) > self.degree || self.c_t == 0 || self.m_o == 0 {
            return Err(format!(
                "{} x {} x {} coefficients exceed the ring degree {}",
                self.m_o,
                self.c_t,
                self.vin(s),
                self.degree
            ));
        }
        if s.depthwise && self.m_o != self.c_t {
            return Err("a depthwise packing needs M_o = C_t".into());
        }
        flood_bits(be, self.noise_bits(s, be, weight_bits), budget)
    }

    /// Relative cost of the layer under this packing, in units of one plaintext
    /// multiplication (what [`Packing::choose`] minimises).
    pub fn cost(&self, s: &ConvShape) -> usize {
        self.products(s) + COST_IN * self.cts_in(s) + COST_OUT * self.cts_out(s)
    }

    /// The cheapest packing by the cost model among those that fit a session of `budget`'s
    /// replies. When none does, the error gives the least noisy packing that fits the ring
    /// and what its flooding would need.
    pub fn choose<B: NoiseBudget + ?Sized>(
        s: &ConvShape,
        be: &B,
        weight_bits: u32,
        budget: &FloodBudget,
    ) -> Result<Packing, String> {
        s.validate()?;
        let n = be.degree();
        let d = s.dense();
        let mut best: Option<(usize, Packing)> = None;
        // The least noisy packing that fits the ring, and why it does not fit the modulus.
        let mut quietest: Option<(u32, String)> = None;
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
                        if let Err(e) = pk.check(s, be, weight_bits, budget) {
                            let noise = pk.noise_bits(s, be, weight_bits);
                            if quietest.as_ref().is_none_or(|(b, _)| noise < *b) {
                                quietest = Some((noise, e));
                            }
                            continue;
                        }
                        let cost = pk.cost(s);
                        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                            best = Some((cost, pk));
                        }
                    }
                }
            }
        }
        best.map(|(_, p)| p).ok_or_else(|| match quietest {
            Some((_, e)) => format!(
                "no packing fits with {weight_bits}-bit weights: the least noisy one leaves {e}"
            ),
            None => format!(
                "no packing of this layer fits N = {n} with {weight_bits}-bit weights in a {}-bit \
                 ciphertext modulus",
                be.modulus_bits()
            ),
        })
    }

    /// The client's plaintext for input block `b` of the tile at `origin`: its mask values,
    /// zero in the padding and beyond the volume.
    pub fn encode_input(&self, s: &ConvShape, origin: [usize; 3], b: usize, r: &[u64]) -> Vec<u64> {
        let e = self.in_ext(s);
        let vin = self.vin(s);
        let mut v = vec![0u64; self.degree];
        let [id, ih, iw] = s.input;
        for cl in 0..self.c_t {
            let c = b * self.c_t + cl;
            if c >= s.c_in {
                break;
            }
            for z in 0..e[0] {
                let gz = (origin[0] + z) as isize - s.pad_begin[0] as isize;
                if gz < 0 || gz >= id as isize {
                    continue;
                }
                for y in 0..e[1] {
                    let gy = (origin[1] + y) as isize - s.pad_begin[1] as isize;
                    if gy < 0 || gy >= ih as isize {
                        continue;
                    }
                    for x in 0..e[2] {
                        let gx = (origin[2] + x) as isize - s.pad_begin[2] as isize;
                        if gx < 0 || gx >= iw as isize {
                            continue;
                        }
                        v[cl * vin + (z * e[1] + y) * e[2] + x] =
                            r[((c * id + gz as usize) * ih + gy as usize) * iw + gx as usize];
                    }
                }
            }
        }
        v
    }

    /// Offset of the kernel's last tap in a tile's coefficient layout.
    fn tap_max(&self, s: &ConvShape) -> usize {
        let e = self.in_ext(s);
        let sp = s.span();
        ((sp[0] - 1) * e[1] + (sp[1] - 1)) * e[2] + (sp[2] - 1)
    }

    /// The server's plaintext for input block `b` and output group `g`.
    pub fn encode_kernel(&self, s: &ConvShape, b: usize, g: usize, w: &[u64]) -> Vec<u64> {
        let e = self.in_ext(s);
        let vin = self.vin(s);
        let big_s = self.c_t * vin;
        let big_o = (self.c_t - 1) * vin + self.tap_max(s);
        let [kd, kh, kw] = s.kernel;
        let mut v = vec![0u64; self.degree];
        for ol in 0..self.m_o {
            let o = g * self.m_o + ol;
            if o >= s.c_out {
                break;
            }
            for cl in 0..self.c_t {
                let c = b * self.c_t + cl;
                if c >= s.c_in || (s.depthwise && c != o) {
                    continue;
                }
                let wc = if s.depthwise { 0 } else { c };
                let per_o = if s.depthwise { 1 } else { s.c_in };
                for i in 0..kd {
                    for j in 0..kh {
                        for l in 0..kw {
                            let off = cl * vin
                                + (i * s.dilation[0] * e[1] + j * s.dilation[1]) * e[2]
                                + l * s.dilation[2];
                            v[ol * big_s + big_o - off] =
                                w[(((o * per_o + wc) * kd + i) * kh + j) * kw + l];
                        }
                    }
                }
            }
        }
        v
    }

    /// For output group `g` of the tile at `origin`: (coefficient, output index) of every
    /// output the product holds.
    pub fn outputs(&self, s: &ConvShape, origin: [usize; 3], g: usize) -> Vec<(usize, usize)> {
        let e = self.in_ext(s);
        let vin = self.vin(s);
        let big_s = self.c_t * vin;
        let big_o = (self.c_t - 1) * vin + self.tap_max(s);
        let dense = s.dense();
        let out = s.output();
        let mut v = Vec::new();
        for ol in 0..self.m_o {
            let o = g * self.m_o + ol;
            if o >= s.c_out {
                break;
            }
            for z in 0..self.tile[0] {
                let dz = origin[0] + z;
                if dz >= dense[0] || !dz.is_multiple_of(s.stride[0]) {
                    continue;
                }
                for y in 0..self.tile[1] {
                    let dy = origin[1] + y;
                    if dy >= dense[1] || !dy.is_multiple_of(s.stride[1]) {
                        continue;
                    }
                    for x in 0..self.tile[2] {
                        let dx = origin[2] + x;
                        if dx >= dense[2] || !dx.is_multiple_of(s.stride[2]) {
                            continue;
                        }
                        let coeff = ol * big_s + big_o + (z * e[1] + y) * e[2] + x;
                        let idx = ((o * out[0] + dz / s.stride[0]) * out[1] + dy / s.stride[1])
                            * out[2]
                            + dx / s.stride[2];
                        v.push((coeff, idx));
                    }
                }
            }
        }
        v
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
        let e = flood_bits(&he, 121, &one).unwrap_err();
        assert!(
            e.contains("noise 2^121 flooded to 2^174")
                && e.contains("needs a 218-bit ciphertext modulus")
                && e.contains("the parameters have 217 bits"),
            "{e}"
        );
        let many = FloodBudget::new(4096);
        assert_eq!(flood_bits(&he, 108, &many), Ok(173));
        let e = flood_bits(&he, 109, &many).unwrap_err();
        assert!(e.contains("R = 4096 replies per session"), "{e}");
    }

    #[test]
    fn packings_are_chosen_for_the_session_and_refused_naming_what_they_need() {
        let he = delphi();
        let s = ConvShape {
            c_in: 64,
            c_out: 128,
            input: [8, 28, 28],
            kernel: [3; 3],
            stride: [1; 3],
            dilation: [1; 3],
            pad_begin: [1; 3],
            pad_end: [1; 3],
            depthwise: false,
        };
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
        let e = Packing::choose(&s, &he, 60, &FloodBudget::new(1 << 10)).unwrap_err();
        assert!(
            e.contains("no packing fits with 60-bit weights")
                && e.contains("flooded to")
                && e.contains("the parameters have 217 bits"),
            "{e}"
        );
    }
}
