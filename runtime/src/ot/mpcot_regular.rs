//! Multi-point correlated OT with regular noise (Yang et al., "Ferret", CCS 2020, section 4):
//! t GGM punctured-PRF trees ([`super::ggm_pprf`]) side by side, tree j covering the block of
//! positions [j b, (j + 1) b) with its own punctured point alpha_j, so that
//!
//! ```text
//! W' = V' xor e * Delta,   e the weight-t indicator of { j b + alpha_j },
//! ```
//!
//! exactly one noise position per block: the regular noise the dual-LPN compression and the
//! parameter rule ([`super::lpn_params`]) assume. Crypto core only, no IO: the t h base random
//! OTs come from the caller, in tree order then level order, and the tree messages travel in
//! the caller's frames. Trees are independent, so both sides expand them in parallel.

use super::ggm_pprf::{
    receiver_choices, receiver_tree, sender_leaves, sender_tree, PprfError, Prg, TreeMessage,
};
use super::lpn_params::SilentParams;
use rand::{CryptoRng, Rng};
use rayon::prelude::*;

/// The sender's side of one round: the noisy vector's sender half and the tree messages.
pub struct SenderRound {
    /// V', N blocks with lsb 0.
    pub v: Vec<u128>,
    /// One message per tree, for the receiver.
    pub messages: Vec<TreeMessage>,
}

/// Why a round cannot be put together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MpcotError {
    /// A tree's inputs are malformed.
    #[error(transparent)]
    Tree(#[from] PprfError),
    /// Not t trees' worth of base OTs, points or messages.
    #[error("{got} {what} for {want} trees")]
    Count {
        /// What was counted.
        what: &'static str,
        /// How many were given.
        got: usize,
        /// How many the round needs.
        want: usize,
    },
}

fn expect(what: &'static str, got: usize, want: usize) -> Result<(), MpcotError> {
    if got != want {
        return Err(MpcotError::Count { what, got, want });
    }
    Ok(())
}

/// The sender's round: fresh tree seeds from `rng`, `base` the t h random-OT pairs (tree j's
/// levels at `base[j h..(j + 1) h]`), `delta` with lsb 1.
pub fn sender_round<R: Rng + CryptoRng>(
    prg: &Prg,
    params: &SilentParams,
    delta: u128,
    base: &[(u128, u128)],
    rng: &mut R,
) -> Result<SenderRound, MpcotError> {
    let seeds = sender_seeds(params, rng);
    sender_round_of(prg, params, delta, base, &seeds)
}

/// Fresh tree seeds for one round, t of them.
pub fn sender_seeds<R: Rng + CryptoRng>(params: &SilentParams, rng: &mut R) -> Vec<u128> {
    (0..params.t).map(|_| rng.random()).collect()
}

/// The sender's round from its tree seeds (see [`sender_round`]).
pub fn sender_round_of(
    prg: &Prg,
    params: &SilentParams,
    delta: u128,
    base: &[(u128, u128)],
    seeds: &[u128],
) -> Result<SenderRound, MpcotError> {
    let (t, h) = (params.t as usize, params.depth());
    expect("base OT pairs", base.len(), t * h as usize)?;
    expect("seeds", seeds.len(), t)?;
    let trees = seeds
        .par_iter()
        .zip(base.par_chunks(h as usize))
        .map(|(&seed, levels)| sender_tree(prg, seed, h, delta, levels))
        .collect::<Result<Vec<_>, _>>()?;
    let mut v = Vec::with_capacity(params.big_n as usize);
    let mut messages = Vec::with_capacity(t);
    for tree in trees {
        v.extend_from_slice(&tree.leaves);
        messages.push(tree.message);
    }
    Ok(SenderRound { v, messages })
}

/// The sender's half of the noisy vector, V', from the round's seeds alone (the online
/// re-expansion of a round prepared offline).
pub fn sender_vector(
    prg: &Prg,
    params: &SilentParams,
    seeds: &[u128],
) -> Result<Vec<u128>, MpcotError> {
    expect("seeds", seeds.len(), params.t as usize)?;
    let h = params.depth();
    // Each tree straight into its block of the vector (no copy of the whole).
    let mut v = vec![0u128; params.big_n as usize];
    v.par_chunks_mut(params.block() as usize)
        .zip(seeds.par_iter())
        .try_for_each(|(block, &seed)| {
            block.copy_from_slice(&sender_leaves(prg, seed, h)?);
            Ok::<_, MpcotError>(())
        })?;
    Ok(v)
}

/// The receiver's punctured points for a round, one uniform point per block.
pub fn receiver_points<R: Rng + CryptoRng>(params: &SilentParams, rng: &mut R) -> Vec<u64> {
    (0..params.t)
        .map(|_| rng.random_range(0..params.block()))
        .collect()
}

/// The receiver's base-OT choices for its points, tree after tree.
pub fn receiver_choices_of(params: &SilentParams, points: &[u64]) -> Result<Vec<bool>, MpcotError> {
    expect("points", points.len(), params.t as usize)?;
    let mut out = Vec::with_capacity(points.len() * params.depth() as usize);
    for &a in points {
        out.extend(receiver_choices(a, params.depth())?);
    }
    Ok(out)
}

/// The receiver's half W' of the noisy vector from the sender's messages and its base-OT
/// outputs (tree j's at `base[j h..(j + 1) h]`).
pub fn receiver_round(
    prg: &Prg,
    params: &SilentParams,
    points: &[u64],
    messages: &[TreeMessage],
    base: &[u128],
) -> Result<Vec<u128>, MpcotError> {
    let (t, h) = (params.t as usize, params.depth());
    expect("points", points.len(), t)?;
    expect("tree messages", messages.len(), t)?;
    expect("base OT outputs", base.len(), t * h as usize)?;
    let mut w = vec![0u128; params.big_n as usize];
    w.par_chunks_mut(params.block() as usize)
        .zip(
            points
                .par_iter()
                .zip(messages)
                .zip(base.par_chunks(h as usize)),
        )
        .try_for_each(|(block, ((&a, m), levels))| {
            block.copy_from_slice(&receiver_tree(prg, a, h, m, levels)?);
            Ok::<_, MpcotError>(())
        })?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ot::lpn_params::DualCode;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// The smallest set the rule accepts: t = 256 blocks of 32 (N = 2^13, n = 2^12).
    fn small() -> SilentParams {
        let p = SilentParams {
            code: DualCode::ExConv7x24,
            n: 1 << 12,
            big_n: 1 << 13,
            t: 256,
        };
        p.check().unwrap();
        p
    }

    #[test]
    fn the_round_is_a_regular_noise_correlation_at_every_position() {
        let (prg, params) = (Prg::default(), small());
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let delta = rng.random::<u128>() | 1;
        let points = receiver_points(&params, &mut rng);
        let choices = receiver_choices_of(&params, &points).unwrap();
        // Random base OTs as IKNP gives them: pairs for the sender, the chosen one for the receiver.
        let pairs: Vec<(u128, u128)> = choices
            .iter()
            .map(|_| (rng.random(), rng.random()))
            .collect();
        let got: Vec<u128> = pairs
            .iter()
            .zip(&choices)
            .map(|(&(a, b), &c)| if c { b } else { a })
            .collect();
        let s = sender_round(&prg, &params, delta, &pairs, &mut rng).unwrap();
        let w = receiver_round(&prg, &params, &points, &s.messages, &got).unwrap();
        let b = params.block() as usize;
        assert_eq!(
            (s.v.len(), w.len()),
            (params.big_n as usize, params.big_n as usize)
        );
        let mut noise = 0;
        for (i, (&v, &w)) in s.v.iter().zip(&w).enumerate() {
            let e = i % b == points[i / b] as usize;
            noise += e as usize;
            assert_eq!(w, if e { v ^ delta } else { v }, "position {i}");
            assert_eq!(w & 1, e as u128, "the choice bit is the lsb at {i}");
        }
        assert_eq!(noise, params.t as usize, "one noise position per block");
        let wire: usize = s.messages.iter().map(TreeMessage::bytes).sum();
        assert_eq!(wire, 256 * (2 * 5 + 1) * 16);
    }

    #[test]
    fn counts_that_do_not_match_the_round_are_refused() {
        let (prg, params) = (Prg::default(), small());
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        assert_eq!(
            sender_round(&prg, &params, 1, &[(0, 0); 3], &mut rng).err(),
            Some(MpcotError::Count {
                what: "base OT pairs",
                got: 3,
                want: 256 * 5
            })
        );
        assert!(matches!(
            receiver_choices_of(&params, &[0; 255]),
            Err(MpcotError::Count { what: "points", .. })
        ));
        let mut points = vec![0u64; 256];
        points[7] = 32;
        assert!(matches!(
            receiver_choices_of(&params, &points),
            Err(MpcotError::Tree(PprfError::Point { point: 32, .. }))
        ));
        assert!(matches!(
            receiver_round(&prg, &params, &[0; 256], &[], &[0; 256 * 5]),
            Err(MpcotError::Count {
                what: "tree messages",
                ..
            })
        ));
    }
}
