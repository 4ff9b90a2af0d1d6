//! "The simplest protocol for oblivious transfer" (Chou and Orlandi, 2015) over the Ristretto
//! group, batched: one sender point A for all transfers, one receiver point B_i each. Both
//! sides hash the shared point together with the index and the transcript (A, B_i), so keys
//! of different transfers and sessions are independent. Outputs are 32-byte keys that seed
//! the extension's PRGs.

use super::{OtError, Result};
use crate::transport::{Channel, Stream};
use crate::wire::Tag;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand::{CryptoRng, Rng};
use sha2::{Digest, Sha256};

/// A 32-byte key produced by a base OT.
pub type Key = [u8; 32];

fn random_scalar<R: Rng + CryptoRng>(rng: &mut R) -> Scalar {
    let mut w = [0u8; 64];
    rng.fill(&mut w[..]);
    Scalar::from_bytes_mod_order_wide(&w)
}

fn kdf(i: usize, a: &CompressedRistretto, b: &[u8], shared: &RistrettoPoint) -> Key {
    let mut h = Sha256::new();
    h.update(b"c3d-base-ot-v1");
    h.update((i as u64).to_le_bytes());
    h.update(a.as_bytes());
    h.update(b);
    h.update(shared.compress().as_bytes());
    h.finalize().into()
}

fn decode_point(bytes: &[u8]) -> Result<RistrettoPoint> {
    let c =
        CompressedRistretto::from_slice(bytes).map_err(|_| OtError::BadPoint("not 32 bytes"))?;
    let p = c
        .decompress()
        .ok_or(OtError::BadPoint("not a Ristretto encoding"))?;
    if p == RistrettoPoint::identity() {
        return Err(OtError::BadPoint("the identity"));
    }
    Ok(p)
}

/// Sender side of `n` base OTs: returns the key pairs (k0_i, k1_i).
pub fn send<S: Stream, R: Rng + CryptoRng>(
    ch: &mut Channel<S>,
    n: usize,
    rng: &mut R,
) -> Result<Vec<(Key, Key)>> {
    let a = random_scalar(rng);
    let big_a = RistrettoPoint::mul_base(&a);
    let ca = big_a.compress();
    ch.send(Tag::OtBaseA, ca.as_bytes())?;
    let bs = ch.recv(Tag::OtBaseB)?;
    if bs.len() != 32 * n {
        return Err(OtError::Malformed(format!(
            "expected {n} receiver points ({} bytes), got {} bytes",
            32 * n,
            bs.len()
        )));
    }
    let a_a = a * big_a;
    bs.chunks_exact(32)
        .enumerate()
        .map(|(i, b)| {
            let big_b = decode_point(b)?;
            let ab = a * big_b;
            Ok((kdf(i, &ca, b, &ab), kdf(i, &ca, b, &(ab - a_a))))
        })
        .collect()
}

/// Receiver side of base OTs, one per choice bit: returns k_{c_i}.
pub fn receive<S: Stream, R: Rng + CryptoRng>(
    ch: &mut Channel<S>,
    choices: &[bool],
    rng: &mut R,
) -> Result<Vec<Key>> {
    let a_bytes = ch.recv(Tag::OtBaseA)?;
    let big_a = decode_point(&a_bytes)?;
    let ca = big_a.compress();
    let mut msg = Vec::with_capacity(32 * choices.len());
    let mut secrets = Vec::with_capacity(choices.len());
    for &c in choices {
        let b = random_scalar(rng);
        let mut big_b = RistrettoPoint::mul_base(&b);
        if c {
            big_b += big_a;
        }
        msg.extend_from_slice(big_b.compress().as_bytes());
        secrets.push(b);
    }
    ch.send(Tag::OtBaseB, &msg)?;
    Ok(secrets
        .iter()
        .zip(msg.chunks_exact(32))
        .enumerate()
        .map(|(i, (b, bb))| kdf(i, &ca, bb, &(b * big_a)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn receiver_gets_exactly_the_chosen_key() {
        let (mut a, mut b) = Channel::pair().unwrap();
        let choices: Vec<bool> = (0..64).map(|i| (i * 7) % 3 == 0).collect();
        let c2 = choices.clone();
        let t = std::thread::spawn(move || {
            send(&mut a, 64, &mut ChaCha20Rng::seed_from_u64(1)).unwrap()
        });
        let got = receive(&mut b, &c2, &mut ChaCha20Rng::seed_from_u64(2)).unwrap();
        let pairs = t.join().unwrap();
        for ((k, (k0, k1)), c) in got.iter().zip(&pairs).zip(&choices) {
            assert_ne!(k0, k1);
            assert_eq!(k, if *c { k1 } else { k0 });
            assert_ne!(k, if *c { k0 } else { k1 }, "the other key differs");
        }
    }

    #[test]
    fn invalid_points_are_refused() {
        let (mut a, mut b) = Channel::pair().unwrap();
        // The identity and a non-canonical encoding, as the sender's point.
        a.send(Tag::OtBaseA, &[0u8; 32]).unwrap();
        let e = receive(&mut b, &[true], &mut ChaCha20Rng::seed_from_u64(3)).unwrap_err();
        assert!(e.to_string().contains("identity"), "{e}");
        a.send(Tag::OtBaseA, &[0xffu8; 32]).unwrap();
        let e = receive(&mut b, &[true], &mut ChaCha20Rng::seed_from_u64(3)).unwrap_err();
        assert!(e.to_string().contains("Ristretto"), "{e}");
        a.send(Tag::OtBaseA, &[1u8; 5]).unwrap();
        let e = receive(&mut b, &[true], &mut ChaCha20Rng::seed_from_u64(3)).unwrap_err();
        assert!(e.to_string().contains("32 bytes"), "{e}");
    }
}
