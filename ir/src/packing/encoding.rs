//! The coefficient encoding of a packed layer: which input values go to which coefficients
//! of the client's plaintexts, where the kernels sit in the server's, and where each output
//! lands in their product. Counts of tiles, blocks, groups and ciphertexts follow from it.

use super::geometry::ConvShape;
use serde::{Deserialize, Serialize};

/// Most bytes of the client's input ciphertexts one batch of tiles takes on the server.
pub const BATCH_INPUT_BYTES: usize = 1 << 30;
/// A ciphertext's size in memory per polynomial coefficient, an upper bound: two polynomials
/// of four RNS limbs of 8 bytes.
pub const CT_BYTES_PER_COEFF: usize = 64;

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

    /// Tiles per batch of the protocol: as many as [`BATCH_INPUT_BYTES`] of the client's
    /// ciphertexts hold in memory, at least one. The server holds a batch whole and prepares
    /// each kernel once for all of its tiles; both sides derive the batch from the packing,
    /// so they agree on the order of the messages.
    pub fn tile_batch(&self, s: &ConvShape) -> usize {
        let per_tile = self.in_blocks(s).max(1) * CT_BYTES_PER_COEFF * self.degree;
        (BATCH_INPUT_BYTES / per_tile).clamp(1, self.tile_count(s).max(1))
    }

    /// Kernel plaintexts the server prepares: each (block, group) pair once per batch of tiles
    /// (an upper bound: pruned kernels are skipped).
    pub fn kernel_preparations(&self, s: &ConvShape) -> usize {
        let per_batch = if s.depthwise {
            self.in_blocks(s)
        } else {
            self.in_blocks(s) * self.out_groups(s)
        };
        per_batch * self.tile_count(s).div_ceil(self.tile_batch(s))
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

    /// [`Packing::outputs`] sorted by coefficient: the coefficients of its first polynomial a
    /// reply carries (the runtime's `Backend::serialize_reply`), which both parties derive
    /// from the plan alone.
    pub fn reply_outputs(
        &self,
        s: &ConvShape,
        origin: [usize; 3],
        g: usize,
    ) -> Vec<(usize, usize)> {
        let mut held = self.outputs(s, origin, g);
        held.sort_unstable();
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_tiles_blocks_and_groups() {
        let s = ConvShape::same_3x3x3(5, 7, [4, 6, 6]);
        let pk = Packing {
            tile: [2, 4, 3],
            c_t: 2,
            m_o: 3,
            degree: 8192,
        };
        // Dense outputs (4, 6, 6): tiles 2 x 2 x 2; blocks ceil(5/2) = 3; groups ceil(7/3) = 3.
        assert_eq!(pk.tiles(&s).len(), 8);
        assert_eq!(pk.tile_count(&s), 8);
        assert_eq!((pk.in_blocks(&s), pk.out_groups(&s)), (3, 3));
        assert_eq!(pk.cts_in(&s), 24);
        assert_eq!(pk.cts_out(&s), 24);
        assert_eq!(pk.products(&s), 72);
        assert_eq!(pk.vin(&s), 4 * 6 * 5);
        // Every output lands once over all tiles and groups.
        let mut seen = vec![0; s.output_len()];
        for t in pk.tiles(&s) {
            for g in 0..pk.out_groups(&s) {
                for (_, i) in pk.outputs(&s, t, g) {
                    seen[i] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }
}
