//! The GGM punctured PRF of silent OT (Boyle, Couteau, Gilboa, Ishai, Kohl, Scholl, "Efficient
//! pseudorandom correlation generators: silent OT extension and more", CCS 2019; Yang et al.,
//! "Ferret", CCS 2020, section 4): one tree is a single-point correlated OT.
//!
//! The sender expands a random seed through a binary tree of depth h (Goldreich, Goldwasser,
//! Micali) into 2^h leaves v_i, and publishes, for every level l, the XOR of its left children
//! K_0^l and of its right children K_1^l, each masked by one message of a base OT. The receiver,
//! whose base-OT choices are the complement of the bits of its point alpha, learns exactly the
//! sums of the siblings off its path, so it rebuilds every node but the ones on the path to alpha;
//! with the correction C = Delta xor (xor of all v_i) it sets w_alpha = v_alpha xor Delta. Hence
//!
//! ```text
//! w_i = v_i xor [i == alpha] * Delta   for every i < 2^h,
//! ```
//!
//! the single-point COT. The sender clears the least significant bit of every leaf and Delta has
//! it set, so after any linear compression the receiver's choice bit is the lsb of its block.
//!
//! This module is the crypto core only: no IO. The base OTs come from the caller (IKNP random
//! OTs in the session) and the messages travel in the caller's frames.
//!
//! PRG: G_b(x) = pi_b(x) xor x with pi_0, pi_1 fixed-key AES under two public keys distinct from
//! the TCCR hash's, the length-doubling PRG of libOTe and emp-ot, secure for random seeds in the
//! random-permutation model.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;

/// The public keys of the two permutations of the tree's PRG.
const PRG_KEYS: [[u8; 16]; 2] = [*b"c3d-ggm-left-key", *b"c3d-ggm-rightkey"];

/// The deepest tree accepted: 2^24 leaves (256 MiB of blocks) per tree.
pub const MAX_DEPTH: u32 = 24;

/// Why a tree's messages cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PprfError {
    /// A depth of 0 or beyond [`MAX_DEPTH`].
    #[error("tree depth {0} is outside 1..={max}", max = MAX_DEPTH)]
    Depth(u32),
    /// The punctured point is not a leaf of the tree.
    #[error("punctured point {point} is outside a tree of {leaves} leaves")]
    Point {
        /// The point.
        point: u64,
        /// Leaves of the tree.
        leaves: u64,
    },
    /// Not one base OT (or one masked level pair) per level.
    #[error("{got} base OTs or level pairs for a tree of depth {depth}")]
    Levels {
        /// What was given.
        got: usize,
        /// The tree's depth.
        depth: u32,
    },
}

/// The tree's length-doubling PRG.
#[derive(Clone)]
pub struct Prg {
    aes: [Aes128; 2],
}

impl Default for Prg {
    fn default() -> Self {
        Prg {
            aes: PRG_KEYS.map(|k| Aes128::new(&k.into())),
        }
    }
}

impl Prg {
    /// Children of every node of `level`, left then right for each, in order.
    fn expand(&self, level: &[u128], next: &mut Vec<u128>) {
        next.clear();
        next.resize(level.len() * 2, 0);
        for (side, aes) in self.aes.iter().enumerate() {
            let mut blocks: Vec<aes::Block> =
                level.iter().map(|x| x.to_le_bytes().into()).collect();
            aes.encrypt_blocks(&mut blocks);
            for (k, (b, x)) in blocks.iter().zip(level).enumerate() {
                next[2 * k + side] = u128::from_le_bytes((*b).into()) ^ x;
            }
        }
    }
}

fn check_depth(h: u32) -> Result<(), PprfError> {
    if h == 0 || h > MAX_DEPTH {
        return Err(PprfError::Depth(h));
    }
    Ok(())
}

/// What the sender sends for one tree: per level the two sums, each masked by one message of
/// that level's base OT, and the correction block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeMessage {
    /// (K_0^l xor m_0^l, K_1^l xor m_1^l) for levels 1..=h, top first.
    pub levels: Vec<[u128; 2]>,
    /// Delta xor the XOR of all leaves.
    pub correction: u128,
}

impl TreeMessage {
    /// Its size on the wire: (2h + 1) blocks of 16 bytes.
    pub fn bytes(&self) -> usize {
        (2 * self.levels.len() + 1) * 16
    }
}

/// The sender's side of one tree: its leaves (lsb cleared) and the message for the receiver.
pub struct SenderTree {
    /// v_0 .. v_{2^h - 1}.
    pub leaves: Vec<u128>,
    /// For the receiver.
    pub message: TreeMessage,
}

/// Expands the sender's tree from `seed` (uniformly random, fresh per tree) and masks its
/// level sums with the base-OT pairs `base` (one (m_0, m_1) per level, top first).
pub fn sender_tree(
    prg: &Prg,
    seed: u128,
    depth: u32,
    delta: u128,
    base: &[(u128, u128)],
) -> Result<SenderTree, PprfError> {
    check_depth(depth)?;
    if base.len() != depth as usize {
        return Err(PprfError::Levels {
            got: base.len(),
            depth,
        });
    }
    let mut level = vec![seed];
    let mut next = Vec::new();
    let mut levels = Vec::with_capacity(depth as usize);
    for &(m0, m1) in base {
        prg.expand(&level, &mut next);
        let (mut k0, mut k1) = (0u128, 0u128);
        for pair in next.chunks_exact(2) {
            k0 ^= pair[0];
            k1 ^= pair[1];
        }
        levels.push([k0 ^ m0, k1 ^ m1]);
        std::mem::swap(&mut level, &mut next);
    }
    for v in &mut level {
        *v &= !1;
    }
    let correction = level.iter().fold(delta, |acc, v| acc ^ v);
    Ok(SenderTree {
        leaves: level,
        message: TreeMessage { levels, correction },
    })
}

/// The sender's leaves alone (lsb cleared), as [`sender_tree`] makes them from `seed`: what
/// the sender re-expands in the online phase from the seed it kept.
pub fn sender_leaves(prg: &Prg, seed: u128, depth: u32) -> Result<Vec<u128>, PprfError> {
    check_depth(depth)?;
    let mut level = vec![seed];
    let mut next = Vec::new();
    for _ in 0..depth {
        prg.expand(&level, &mut next);
        std::mem::swap(&mut level, &mut next);
    }
    for v in &mut level {
        *v &= !1;
    }
    Ok(level)
}

/// The receiver's base-OT choice bits for punctured point `alpha`: at level l (top first) the
/// complement of alpha's bit l, most significant first.
pub fn receiver_choices(alpha: u64, depth: u32) -> Result<Vec<bool>, PprfError> {
    check_point(alpha, depth)?;
    Ok((0..depth)
        .map(|l| (alpha >> (depth - 1 - l)) & 1 == 0)
        .collect())
}

fn check_point(alpha: u64, depth: u32) -> Result<(), PprfError> {
    check_depth(depth)?;
    if alpha >> depth != 0 {
        return Err(PprfError::Point {
            point: alpha,
            leaves: 1 << depth,
        });
    }
    Ok(())
}

/// The receiver's leaves from the sender's message and its base-OT outputs `base` (the
/// message of choice [`receiver_choices`] at each level): w_i = v_i for i != alpha and
/// w_alpha = v_alpha xor Delta.
pub fn receiver_tree(
    prg: &Prg,
    alpha: u64,
    depth: u32,
    message: &TreeMessage,
    base: &[u128],
) -> Result<Vec<u128>, PprfError> {
    check_point(alpha, depth)?;
    if base.len() != depth as usize || message.levels.len() != depth as usize {
        return Err(PprfError::Levels {
            got: base.len().min(message.levels.len()),
            depth,
        });
    }
    // Nodes of the current level; the one on alpha's path is unknown and held as 0.
    let mut level = vec![0u128];
    let mut next = Vec::new();
    for (l, (pair, &got)) in message.levels.iter().zip(base).enumerate() {
        prg.expand(&level, &mut next);
        let bit = ((alpha >> (depth as usize - 1 - l)) & 1) as usize;
        let on_path = (alpha >> (depth as usize - 1 - l)) as usize; // index at level l + 1
        let parent = on_path >> 1;
        // The expansion of the unknown parent is garbage: clear both of its children.
        next[2 * parent] = 0;
        next[2 * parent + 1] = 0;
        // The sibling off the path: its side's sum, unmasked, less the known nodes of that side.
        let side = 1 - bit;
        let mut s = pair[side] ^ got;
        for pair in next.chunks_exact(2) {
            s ^= pair[side];
        }
        next[2 * parent + side] = s;
        std::mem::swap(&mut level, &mut next);
    }
    let a = alpha as usize;
    for (i, w) in level.iter_mut().enumerate() {
        if i != a {
            *w &= !1;
        }
    }
    let rest = level.iter().fold(0u128, |acc, w| acc ^ w);
    level[a] = message.correction ^ rest;
    Ok(level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// Random base OTs and the receiver's chosen outputs, as IKNP's random OTs give them.
    fn base_ots(rng: &mut ChaCha20Rng, choices: &[bool]) -> (Vec<(u128, u128)>, Vec<u128>) {
        let pairs: Vec<(u128, u128)> = choices
            .iter()
            .map(|_| (rng.random(), rng.random()))
            .collect();
        let got = pairs
            .iter()
            .zip(choices)
            .map(|(&(m0, m1), &c)| if c { m1 } else { m0 })
            .collect();
        (pairs, got)
    }

    fn delta(rng: &mut ChaCha20Rng) -> u128 {
        rng.random::<u128>() | 1
    }

    #[test]
    fn every_leaf_but_the_punctured_one_agrees_and_that_one_differs_by_delta() {
        let prg = Prg::default();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for depth in [1u32, 2, 5] {
            // Every point of the small trees.
            for alpha in 0..(1u64 << depth) {
                let d = delta(&mut rng);
                let choices = receiver_choices(alpha, depth).unwrap();
                let (pairs, got) = base_ots(&mut rng, &choices);
                let s = sender_tree(&prg, rng.random(), depth, d, &pairs).unwrap();
                let w = receiver_tree(&prg, alpha, depth, &s.message, &got).unwrap();
                assert_eq!(w.len(), 1 << depth);
                for (i, (&v, &w)) in s.leaves.iter().zip(&w).enumerate() {
                    let want = if i as u64 == alpha { v ^ d } else { v };
                    assert_eq!(w, want, "depth {depth} alpha {alpha} leaf {i}");
                    assert_eq!(v & 1, 0, "the sender's leaves have lsb 0");
                }
                assert_eq!(
                    w[alpha as usize] & 1,
                    1,
                    "the receiver's choice bit is the lsb"
                );
            }
        }
    }

    #[test]
    fn the_leaves_alone_are_the_trees_leaves() {
        let prg = Prg::default();
        let mut rng = ChaCha20Rng::seed_from_u64(31);
        let base: Vec<(u128, u128)> = (0..6).map(|_| (rng.random(), rng.random())).collect();
        let seed: u128 = rng.random();
        let tree = sender_tree(&prg, seed, 6, 1, &base).unwrap();
        assert_eq!(sender_leaves(&prg, seed, 6).unwrap(), tree.leaves);
        assert_ne!(sender_leaves(&prg, seed ^ 2, 6).unwrap(), tree.leaves);
    }

    #[test]
    fn the_sender_leaves_are_the_ggm_tree_written_out() {
        // An independent evaluation: leaf i is G_{b_h}(...G_{b_1}(seed)) along i's bits.
        let prg = Prg::default();
        let aes = PRG_KEYS.map(|k| Aes128::new(&k.into()));
        let g = |b: usize, x: u128| {
            let mut blk: aes::Block = x.to_le_bytes().into();
            aes[b].encrypt_block(&mut blk);
            u128::from_le_bytes(blk.into()) ^ x
        };
        let depth = 6;
        let seed = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        let pairs = vec![(0, 0); depth as usize];
        let s = sender_tree(&prg, seed, depth, 1, &pairs).unwrap();
        for i in 0..1usize << depth {
            let mut x = seed;
            for l in (0..depth).rev() {
                x = g((i >> l) & 1, x);
            }
            assert_eq!(s.leaves[i], x & !1, "leaf {i}");
        }
        // With zero masks the level messages are the plain sums of each side's children.
        let mut level = vec![seed];
        for l in 0..depth as usize {
            let next: Vec<u128> = level.iter().flat_map(|&x| [g(0, x), g(1, x)]).collect();
            let k0 = next.iter().step_by(2).fold(0, |a, x| a ^ x);
            let k1 = next.iter().skip(1).step_by(2).fold(0, |a, x| a ^ x);
            assert_eq!(s.message.levels[l], [k0, k1], "level {l}");
            level = next;
        }
    }

    #[test]
    fn a_wrong_base_ot_output_breaks_the_correlation() {
        // The receiver's leaves depend on the base OTs: with another level message it does not
        // rebuild the sender's tree (so the test above can fail).
        let prg = Prg::default();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (depth, alpha) = (4, 9);
        let choices = receiver_choices(alpha, depth).unwrap();
        let (pairs, mut got) = base_ots(&mut rng, &choices);
        let s = sender_tree(&prg, rng.random(), depth, delta(&mut rng), &pairs).unwrap();
        got[2] ^= 1 << 7;
        let w = receiver_tree(&prg, alpha, depth, &s.message, &got).unwrap();
        let agree = (0..16)
            .filter(|&i| i != alpha as usize && w[i] == s.leaves[i])
            .count();
        assert!(agree < 15, "{agree} of 15 leaves still agree");
    }

    #[test]
    fn the_message_is_two_blocks_a_level_and_a_correction() {
        let prg = Prg::default();
        let s = sender_tree(&prg, 7, 14, 1, &vec![(1, 2); 14]).unwrap();
        assert_eq!(s.message.bytes(), (2 * 14 + 1) * 16);
        assert_eq!(s.leaves.len(), 1 << 14);
    }

    #[test]
    fn bad_depths_points_and_level_counts_are_refused() {
        let prg = Prg::default();
        assert_eq!(
            sender_tree(&prg, 0, 0, 1, &[]).err(),
            Some(PprfError::Depth(0))
        );
        assert_eq!(
            receiver_choices(16, 4).err(),
            Some(PprfError::Point {
                point: 16,
                leaves: 16
            })
        );
        assert!(matches!(
            sender_tree(&prg, 0, 3, 1, &[(0, 0); 2]),
            Err(PprfError::Levels { got: 2, depth: 3 })
        ));
        let m = TreeMessage {
            levels: vec![[0, 0]; 3],
            correction: 0,
        };
        assert!(matches!(
            receiver_tree(&prg, 1, 3, &m, &[0; 2]),
            Err(PprfError::Levels { .. })
        ));
        assert_eq!(
            receiver_choices(1, MAX_DEPTH + 1).err(),
            Some(PprfError::Depth(25))
        );
    }
}
