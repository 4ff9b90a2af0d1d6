//! The two sides of the offline linear protocol over a channel. Tiles are processed in
//! lock-step (the client sends a tile's input ciphertexts, the server answers with its output
//! ciphertexts), so neither side ever holds more than a tile's ciphertexts.

use super::packing::{ConvShape, Packing};
use super::{LinearError, Result};
use crate::he::{Backend, CtLevel, Encoding, FloodBudget};
use crate::transport::{Channel, Stream};
use crate::wire::Tag;
use rand::{CryptoRng, Rng, RngCore};
use rayon::prelude::*;
use std::ops::Range;

/// One output group's reply and the server's mask at each output it holds.
type GroupReply = (Vec<u8>, Vec<(usize, u64)>);

/// Work and traffic of one layer on one side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinearStats {
    /// Ciphertexts sent by the client.
    pub cts_in: usize,
    /// Ciphertexts returned by the server.
    pub cts_out: usize,
    /// Plaintext multiplications (server).
    pub products: usize,
    /// Bytes of ciphertexts sent by the client.
    pub bytes_in: u64,
    /// Bytes of ciphertexts returned by the server.
    pub bytes_out: u64,
}

/// The flooding width of a layer in a session of `budget`'s replies, the same on both sides:
/// the packing must fit the parameters with that flooding, and the layer's replies must be
/// among the R the budget covers.
fn layer_flood<B: Backend>(
    be: &B,
    shape: &ConvShape,
    packing: &Packing,
    weight_mag_bits: u32,
    budget: &FloodBudget,
) -> Result<u32> {
    let flood = packing.check(shape, be, weight_mag_bits, budget)?;
    if packing.cts_out(shape) as u64 > budget.replies() {
        return Err(LinearError::Shape(format!(
            "{} replies of one layer, but the session's flooding covers {}",
            packing.cts_out(shape),
            budget.replies()
        )));
    }
    Ok(flood)
}

/// Replies a side works on at once: enough for every thread, few enough to keep memory flat.
fn reply_chunk() -> usize {
    2 * rayon::current_num_threads()
}

/// Client side: encrypts its mask `r` (layout C, D, H, W) and returns M r - s (layout C_out,
/// D', H', W'). The tiles go in batches ([`Packing::tile_batch`]): the client sends a batch's input
/// ciphertexts (tile-major, then block), and the server answers with its replies
/// (group-major, then tile). `budget` is the session's ([`FloodBudget::of_plan`]): the client
/// refuses a layer whose flooding the parameters cannot carry for it.
#[allow(clippy::too_many_arguments)]
pub fn client_linear<B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    be: &B,
    ch: &mut Channel<S>,
    sk: &B::Sk,
    shape: &ConvShape,
    packing: &Packing,
    weight_mag_bits: u32,
    budget: &FloodBudget,
    r: &[u64],
    rng: &mut R,
) -> Result<(Vec<u64>, LinearStats)> {
    let batch = packing.tile_batch(shape);
    client_linear_in(
        be,
        ch,
        sk,
        shape,
        packing,
        weight_mag_bits,
        budget,
        r,
        rng,
        batch,
    )
}

/// [`client_linear`] with `batch` tiles per batch (the server must use the same).
#[allow(clippy::too_many_arguments)]
pub(crate) fn client_linear_in<B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    be: &B,
    ch: &mut Channel<S>,
    sk: &B::Sk,
    shape: &ConvShape,
    packing: &Packing,
    weight_mag_bits: u32,
    budget: &FloodBudget,
    r: &[u64],
    rng: &mut R,
    batch: usize,
) -> Result<(Vec<u64>, LinearStats)> {
    layer_flood(be, shape, packing, weight_mag_bits, budget)?;
    if r.len() != shape.input_len() {
        return Err(LinearError::Shape(format!(
            "mask of {} values for an input of {}",
            r.len(),
            shape.input_len()
        )));
    }
    let mut out = vec![0u64; shape.output_len()];
    let mut st = LinearStats::default();
    let blocks = packing.in_blocks(shape);
    let groups = packing.out_groups(shape);
    let tiles = packing.tiles(shape);
    for batch in tiles.chunks(batch.max(1)) {
        // Encrypted in parallel, each with its own seed drawn from the session RNG.
        let jobs: Vec<([usize; 3], usize, [u8; 32])> = batch
            .iter()
            .flat_map(|&o| (0..blocks).map(move |b| (o, b)))
            .map(|(o, b)| (o, b, rng.random()))
            .collect();
        for chunk in jobs.chunks(reply_chunk()) {
            let cts: Vec<Result<Vec<u8>>> = chunk
                .par_iter()
                .map(|&(origin, b, seed)| {
                    use rand::SeedableRng;
                    let mut crng = rand_chacha::ChaCha20Rng::from_seed(seed);
                    let v = packing.encode_input(shape, origin, b, r);
                    let ct = be.encrypt(sk, &v, Encoding::Coeff, &mut crng)?;
                    Ok(be.serialize(&ct)?)
                })
                .collect();
            for bytes in cts {
                let bytes = bytes?;
                st.bytes_in += bytes.len() as u64;
                st.cts_in += 1;
                ch.send(Tag::LinearIn, &bytes)?;
            }
        }
        // Replies group-major, decrypted a chunk at a time as they arrive.
        let order: Vec<(usize, [usize; 3])> = (0..groups)
            .flat_map(|g| batch.iter().map(move |&o| (g, o)))
            .collect();
        for chunk in order.chunks(reply_chunk()) {
            let mut raw = Vec::with_capacity(chunk.len());
            for _ in chunk {
                let bytes = ch.recv(Tag::LinearOut)?;
                st.bytes_out += bytes.len() as u64;
                st.cts_out += 1;
                raw.push(bytes);
            }
            let decs: Vec<Result<Vec<(usize, u64)>>> = raw
                .par_iter()
                .zip(chunk)
                .map(|(bytes, &(g, origin))| {
                    let held = packing.reply_outputs(shape, origin, g);
                    let keep: Vec<usize> = held.iter().map(|&(coeff, _)| coeff).collect();
                    let dec = be.decrypt_reply(sk, bytes, &keep)?;
                    Ok(held.iter().map(|&(_, idx)| idx).zip(dec).collect())
                })
                .collect();
            for dec in decs {
                for (idx, v) in dec? {
                    out[idx] = v;
                }
            }
        }
    }
    Ok((out, st))
}

/// Most bytes of prepared kernels the server holds at once (the groups it works on together).
const KERNEL_BYTES: usize = 1 << 30;
/// Most sums (output groups times tiles) the server computes in one pass over the batch's
/// ciphertexts: their chunks of coefficients stay in cache.
const MAX_SUMS: usize = 64;
/// A prepared kernel's size per polynomial coefficient, an upper bound: four RNS limbs of
/// 8 bytes in NTT form.
const KERNEL_BYTES_PER_COEFF: usize = 32;

/// Server side: multiplies the client's ciphertexts by the weights (layout C_out, C_in or 1,
/// kd, kh, kw; field elements whose centred values are below 2^`weight_mag_bits`), masks every
/// coefficient with fresh randomness, re-randomises with the client's public `key`, floods
/// the noise for a session of `budget`'s replies ([`FloodBudget::of_plan`]) and returns s
/// (layout C_out, D', H', W').
#[allow(clippy::too_many_arguments)]
pub fn server_linear<B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    be: &B,
    ch: &mut Channel<S>,
    shape: &ConvShape,
    packing: &Packing,
    weight_mag_bits: u32,
    budget: &FloodBudget,
    weights: &[u64],
    key: &B::Pk,
    rng: &mut R,
) -> Result<(Vec<u64>, LinearStats)> {
    server_linear_limited(
        be,
        ch,
        shape,
        packing,
        weight_mag_bits,
        budget,
        weights,
        key,
        rng,
        KERNEL_BYTES,
        packing.tile_batch(shape),
    )
}

/// [`server_linear`] holding at most `kernel_bytes` of prepared kernels at once (at least one
/// group's), with `batch` tiles per batch (the client must use the same).
#[allow(clippy::too_many_arguments)]
pub(crate) fn server_linear_limited<B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    be: &B,
    ch: &mut Channel<S>,
    shape: &ConvShape,
    packing: &Packing,
    weight_mag_bits: u32,
    budget: &FloodBudget,
    weights: &[u64],
    key: &B::Pk,
    rng: &mut R,
    kernel_bytes: usize,
    batch: usize,
) -> Result<(Vec<u64>, LinearStats)> {
    let flood = layer_flood(be, shape, packing, weight_mag_bits, budget)?;
    let p = be.plain_modulus();
    if weights.len() != shape.weight_len() {
        return Err(LinearError::Shape(format!(
            "{} weights for a layer of {}",
            weights.len(),
            shape.weight_len()
        )));
    }
    let bound = 1u64 << weight_mag_bits;
    if let Some(w) = weights
        .iter()
        .find(|&&w| w >= p || crate::he::centred(w, p).unsigned_abs() >= bound)
    {
        return Err(LinearError::Shape(format!(
            "weight {w} is outside the public bound of {weight_mag_bits} bits the noise budget assumes"
        )));
    }
    let blocks = packing.in_blocks(shape);
    let groups = packing.out_groups(shape);
    // The input blocks each output group reads: all of them, or its own for depthwise.
    let reads = |g: usize| -> Range<usize> {
        if shape.depthwise {
            g..g + 1
        } else {
            0..blocks
        }
    };
    // Pruned weights: a product whose kernels are all zero adds nothing and is skipped (a
    // group with none left keeps its first, so every output ciphertext exists).
    let live: Vec<Vec<usize>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let bs: Vec<usize> = reads(g)
                .filter(|&b| {
                    packing
                        .encode_kernel(shape, b, g, weights)
                        .iter()
                        .any(|&v| v != 0)
                })
                .collect();
            if bs.is_empty() {
                vec![reads(g).start]
            } else {
                bs
            }
        })
        .collect();
    let products_per_tile: usize = live.iter().map(Vec::len).sum();
    // Groups worked on together: their kernels (prepared once per batch of tiles, for all of
    // its tiles) within `kernel_bytes`, and few enough that the sums of a chunk of
    // coefficients, one per group and tile, stay in cache.
    let per_group = blocks.max(1) * KERNEL_BYTES_PER_COEFF * packing.degree;
    let mut s = vec![0u64; shape.output_len()];
    let mut st = LinearStats::default();
    let tiles = packing.tiles(shape);
    for batch in tiles.chunks(batch.max(1)) {
        let mut raw = Vec::with_capacity(batch.len() * blocks);
        for _ in 0..batch.len() * blocks {
            let bytes = ch.recv(Tag::LinearIn)?;
            st.bytes_in += bytes.len() as u64;
            st.cts_in += 1;
            raw.push(bytes);
        }
        // rows[t][b]: block b of the batch's tile t.
        let cts: Vec<B::Ct> = raw
            .par_iter()
            .map(|bytes| Ok(be.deserialize_at(bytes, CtLevel::Fresh)?))
            .collect::<Result<_>>()?;
        drop(raw);
        let rows: Vec<Vec<&B::Ct>> = cts.chunks(blocks).map(|r| r.iter().collect()).collect();
        // Fresh per-reply seeds from the session RNG keep the parallel work seeded by it.
        let seeds: Vec<[u8; 32]> = (0..groups * batch.len()).map(|_| rng.random()).collect();
        let together = (kernel_bytes / per_group)
            .min(MAX_SUMS / batch.len())
            .clamp(1, groups.max(1));
        for start in (0..groups).step_by(together) {
            let range = start..(start + together).min(groups);
            let pairs: Vec<(usize, usize)> = range
                .clone()
                .flat_map(|g| live[g].iter().map(move |&b| (g, b)))
                .collect();
            let kernels: Vec<B::Pt> = pairs
                .par_iter()
                .map(|&(g, b)| {
                    be.prepare(
                        &packing.encode_kernel(shape, b, g, weights),
                        Encoding::Coeff,
                    )
                })
                .collect::<crate::he::Result<_>>()?;
            let mut cols: Vec<Vec<Option<&B::Pt>>> = vec![vec![None; blocks]; range.len()];
            for (&(g, b), k) in pairs.iter().zip(&kernels) {
                cols[g - start][b] = Some(k);
            }
            // sums[g - start][t]
            let sums = be.dot_matrix(&rows, &cols)?;
            drop(cols);
            drop(kernels);
            let jobs: Vec<(usize, usize, B::Ct)> = sums
                .into_iter()
                .enumerate()
                .flat_map(|(gi, v)| {
                    v.into_iter()
                        .enumerate()
                        .map(move |(t, c)| (start + gi, t, c))
                })
                .collect();
            let results: Vec<Result<GroupReply>> = jobs
                .into_par_iter()
                .map(|(g, t, mut acc)| {
                    use rand::SeedableRng;
                    let mut grng = rand_chacha::ChaCha20Rng::from_seed(seeds[g * batch.len() + t]);
                    // Mask every coefficient: the outputs with s, the rest (partial sums that
                    // would reveal weights) with throw-away randomness.
                    let u: Vec<u64> = (0..packing.degree)
                        .map(|_| grng.random_range(0..p))
                        .collect();
                    let neg: Vec<u64> = u.iter().map(|&x| (p - x) % p).collect();
                    be.finish(&mut acc, &neg, flood, key, &mut grng)?;
                    let held = packing.reply_outputs(shape, batch[t], g);
                    let keep: Vec<usize> = held.iter().map(|&(coeff, _)| coeff).collect();
                    let bytes = be.serialize_reply(&acc, &keep)?;
                    let outs = held
                        .into_iter()
                        .map(|(coeff, idx)| (idx, u[coeff]))
                        .collect();
                    Ok((bytes, outs))
                })
                .collect();
            for r in results {
                let (bytes, outs) = r?;
                for (idx, v) in outs {
                    s[idx] = v;
                }
                st.bytes_out += bytes.len() as u64;
                st.cts_out += 1;
                ch.send(Tag::LinearOut, &bytes)?;
            }
        }
        st.products += products_per_tile * batch.len();
    }
    Ok((s, st))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::he::fhers::FheRs;
    use crate::he::HeError;
    use crate::he::NoiseBudget;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use std::sync::Arc;

    /// The flooding budget the tests run their layers in: a session of 4096 replies.
    pub(crate) const SESSION: FloodBudget = FloodBudget::new(1 << 12);

    fn conv(c_in: usize, c_out: usize, input: [usize; 3], kernel: [usize; 3]) -> ConvShape {
        ConvShape {
            c_in,
            c_out,
            input,
            kernel,
            stride: [1; 3],
            dilation: [1; 3],
            pad_begin: [1; 3],
            pad_end: [1; 3],
            depthwise: false,
        }
    }

    fn run(shape: &ConvShape, packing: Option<Packing>, wbits: u32, seed: u64) -> LinearStats {
        run_with(
            Arc::new(FheRs::new(c3d_ir::fixed::DELPHI_PRIME).unwrap()),
            shape,
            packing,
            wbits,
            seed,
        )
    }

    /// Runs both sides and checks (M r - s) + s = M r, computed in the clear.
    pub(crate) fn run_with<B: Backend + 'static>(
        be: Arc<B>,
        shape: &ConvShape,
        packing: Option<Packing>,
        wbits: u32,
        seed: u64,
    ) -> LinearStats {
        run_cached(be, shape, packing, wbits, seed, KERNEL_BYTES)
    }

    /// [`run_with`] with the server's kernel memory limited to `cache` bytes.
    pub(crate) fn run_cached<B: Backend + 'static>(
        be: Arc<B>,
        shape: &ConvShape,
        packing: Option<Packing>,
        wbits: u32,
        seed: u64,
        cache: usize,
    ) -> LinearStats {
        run_batched(be, shape, packing, wbits, seed, cache, None)
    }

    /// [`run_cached`] with `batch` tiles per batch (the packing's own when `None`).
    pub(crate) fn run_batched<B: Backend + 'static>(
        be: Arc<B>,
        shape: &ConvShape,
        packing: Option<Packing>,
        wbits: u32,
        seed: u64,
        cache: usize,
        batch: Option<usize>,
    ) -> LinearStats {
        let p = be.plain_modulus();
        let packing = packing
            .unwrap_or_else(|| Packing::choose(shape, be.as_ref(), wbits, &SESSION).unwrap());
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let r: Vec<u64> = (0..shape.input_len())
            .map(|_| rng.random_range(0..p))
            .collect();
        // Weights at the bound's edges and in between.
        let w: Vec<u64> = (0..shape.weight_len())
            .map(|i| {
                let m = (1i64 << wbits) - 1;
                let v = match i % 5 {
                    0 => m,
                    1 => -m,
                    _ => rng.random_range(-m..=m),
                };
                v.rem_euclid(p as i64) as u64
            })
            .collect();
        let (mut a, mut b) = Channel::pair().unwrap();
        let sk = be.keygen(&mut rng).unwrap();
        let key = be
            .read_public_key(&be.public_key(&sk, &mut rng).unwrap())
            .unwrap();
        let batch = batch.unwrap_or_else(|| packing.tile_batch(shape));
        let (be2, shape2, packing2, w2) = (be.clone(), shape.clone(), packing.clone(), w.clone());
        let server = std::thread::spawn(move || {
            let mut rng = ChaCha20Rng::seed_from_u64(seed + 1);
            server_linear_limited(
                be2.as_ref(),
                &mut a,
                &shape2,
                &packing2,
                wbits,
                &SESSION,
                &w2,
                &key,
                &mut rng,
                cache,
                batch,
            )
            .unwrap()
        });
        let (c, cst) = client_linear_in(
            be.as_ref(),
            &mut b,
            &sk,
            shape,
            &packing,
            wbits,
            &SESSION,
            &r,
            &mut rng,
            batch,
        )
        .unwrap();
        let (s, sst) = server.join().unwrap();
        let want = shape.apply(&r, &w, p);
        assert_eq!(c.len(), want.len());
        for i in 0..want.len() {
            assert_eq!(
                (c[i] + s[i]) % p,
                want[i],
                "output {i} of {shape:?} with {packing:?}"
            );
        }
        assert!(
            c.iter().zip(&want).filter(|(x, y)| x == y).count() <= 1,
            "client share is masked"
        );
        assert_eq!((cst.cts_in, cst.cts_out), (sst.cts_in, sst.cts_out));
        assert_eq!(sst.cts_in, packing.cts_in(shape));
        assert_eq!(sst.cts_out, packing.cts_out(shape));
        assert_eq!(sst.products, packing.products(shape));
        sst
    }

    #[test]
    fn conv_3x3x3_with_chosen_packing() {
        run(&conv(5, 7, [4, 6, 6], [3, 3, 3]), None, 12, 1);
    }

    #[test]
    fn conv_split_into_tiles_blocks_and_groups() {
        // Small tiles, 2 channels per block and 3 outputs per group force every loop to turn,
        // including ragged last tiles, blocks and groups.
        let s = conv(5, 7, [4, 6, 5], [3, 3, 3]);
        let packing = Packing {
            tile: [3, 4, 2],
            c_t: 2,
            m_o: 3,
            degree: 8192,
        };
        let st = run(&s, Some(packing.clone()), 10, 2);
        assert!(st.cts_out > 10);
        // Kernel memory for one group at a time (and two at a time): the same products, the
        // same result.
        let be = Arc::new(FheRs::new(c3d_ir::fixed::DELPHI_PRIME).unwrap());
        let per_group = 3 * KERNEL_BYTES_PER_COEFF * 8192;
        for cache in [0, 2 * per_group] {
            let batched = run_cached(be.clone(), &s, Some(packing.clone()), 10, 2, cache);
            assert_eq!(batched.products, st.products, "cache {cache}");
            assert_eq!(batched.cts_out, st.cts_out, "cache {cache}");
        }
        // Tiles in batches of one, and of five (a ragged last batch of two of the 12 tiles):
        // the same products and replies, the same result.
        assert_eq!(packing.tile_count(&s), 12);
        for batch in [1, 5] {
            let b = run_batched(
                be.clone(),
                &s,
                Some(packing.clone()),
                10,
                3,
                1 << 30,
                Some(batch),
            );
            assert_eq!(
                (b.products, b.cts_in, b.cts_out),
                (st.products, st.cts_in, st.cts_out)
            );
        }
    }

    #[test]
    fn strides_dilations_and_uneven_padding() {
        let s = ConvShape {
            c_in: 3,
            c_out: 4,
            input: [5, 9, 8],
            kernel: [1, 3, 2],
            stride: [1, 2, 3],
            dilation: [2, 2, 1],
            pad_begin: [0, 2, 1],
            pad_end: [1, 0, 0],
            depthwise: false,
        };
        run(&s, None, 8, 3);
        run(
            &s,
            Some(Packing {
                tile: [2, 3, 5],
                c_t: 1,
                m_o: 2,
                degree: 8192,
            }),
            8,
            4,
        );
    }

    #[test]
    fn fully_connected_layers() {
        run(&ConvShape::fully_connected(300, 50), None, 14, 5);
        run(
            &ConvShape::fully_connected(300, 50),
            Some(Packing {
                tile: [1; 3],
                c_t: 64,
                m_o: 16,
                degree: 8192,
            }),
            14,
            6,
        );
    }

    #[test]
    fn average_pool_as_depthwise() {
        let s = ConvShape {
            c_in: 6,
            c_out: 6,
            input: [4, 6, 6],
            kernel: [2, 2, 2],
            stride: [2, 2, 2],
            dilation: [1; 3],
            pad_begin: [0; 3],
            pad_end: [0; 3],
            depthwise: true,
        };
        run(&s, None, 1, 7);
        run(
            &s,
            Some(Packing {
                tile: [2, 3, 3],
                c_t: 2,
                m_o: 2,
                degree: 8192,
            }),
            1,
            8,
        );
    }

    #[test]
    fn bad_operands_are_refused() {
        let be = FheRs::new(c3d_ir::fixed::DELPHI_PRIME).unwrap();
        let p = be.plain_modulus();
        let s = conv(2, 2, [2, 2, 2], [3, 3, 3]);
        let packing = Packing::choose(&s, &be, 8, &SESSION).unwrap();
        let (mut a, mut b) = Channel::pair().unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let sk = be.keygen(&mut rng).unwrap();
        let key = be
            .read_public_key(&be.public_key(&sk, &mut rng).unwrap())
            .unwrap();
        // A weight beyond the public bound would break the noise budget: refused.
        let mut w = vec![1u64; s.weight_len()];
        w[3] = p - 300;
        let e =
            server_linear(&be, &mut a, &s, &packing, 8, &SESSION, &w, &key, &mut rng).unwrap_err();
        assert!(e.to_string().contains("outside the public bound"), "{e}");
        let e = server_linear(
            &be,
            &mut a,
            &s,
            &packing,
            8,
            &SESSION,
            &w[1..],
            &key,
            &mut rng,
        )
        .unwrap_err();
        assert!(e.to_string().contains("weights for a layer"), "{e}");
        let e = client_linear(
            &be, &mut b, &sk, &s, &packing, 8, &SESSION, &[0; 3], &mut rng,
        )
        .unwrap_err();
        assert!(e.to_string().contains("mask of 3"), "{e}");
        // A packing that overflows the ring, and a kernel larger than the input.
        let big = Packing {
            tile: [2, 2, 2],
            c_t: 2,
            m_o: 2000,
            degree: 8192,
        };
        assert!(big.check(&s, &be, 8, &SESSION).is_err());
        let mut s2 = s.clone();
        s2.pad_begin = [0; 3];
        s2.pad_end = [0; 3];
        assert!(s2.validate().is_err());
        // Garbage instead of a ciphertext: the server says so.
        let w = vec![1u64; s.weight_len()];
        b.send(Tag::LinearIn, b"garbage").unwrap();
        let e =
            server_linear(&be, &mut a, &s, &packing, 8, &SESSION, &w, &key, &mut rng).unwrap_err();
        assert!(matches!(e, LinearError::He(HeError::Malformed(_))), "{e}");
    }
}
