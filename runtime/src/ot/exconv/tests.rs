//! The encoder against cryprot-codes' recorded outputs and against dense matrices built from
//! the code's description.

use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const CODES: [DualCode; 2] = [DualCode::ExConv7x24, DualCode::ExConv21x24];

fn random_bits(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.random::<u8>() & 1).collect()
}

fn encode_bits(code: &ExConvCode, v: &[u8]) -> Vec<u8> {
    let mut e = v.to_vec();
    code.dual_encode_bits(&mut e).unwrap();
    e.truncate(code.message_size());
    e
}

/// H (n rows, N columns) from the encodings of the unit vectors, column by column.
fn matrix_from_unit_vectors(code: &ExConvCode) -> Vec<Vec<u8>> {
    let (n, big_n) = (code.message_size(), code.code_size());
    let mut h = vec![vec![0u8; big_n]; n];
    for c in 0..big_n {
        let mut unit = vec![0u8; big_n];
        unit[c] = 1;
        for (r, bit) in encode_bits(code, &unit).into_iter().enumerate() {
            h[r][c] = bit;
        }
    }
    h
}

fn mat_vec(h: &[Vec<u8>], v: &[u8]) -> Vec<u8> {
    h.iter()
        .map(|row| {
            let mut acc = 0u8;
            for (a, b) in row.iter().zip(v) {
                acc ^= a & b;
            }
            acc
        })
        .collect()
}

fn mat_mul(a: &[Vec<u8>], b: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let cols = b[0].len();
    a.iter()
        .map(|row| {
            (0..cols)
                .map(|c| {
                    let mut acc = 0u8;
                    for (k, &x) in row.iter().enumerate() {
                        acc ^= x & b[k][c];
                    }
                    acc
                })
                .collect()
        })
        .collect()
}

fn identity(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|r| (0..n).map(|c| u8::from(r == c)).collect())
        .collect()
}

/// The targets of each accumulator step, read off the seed's buffer from the description:
/// step i takes the bits of bytes i, i+1, i+2 of the current buffer (refilled when fewer
/// than 3 are left), bit k for position i + 1 + k, and always position i + 25, mod size.
fn accumulator_targets(seed: u128, size: usize) -> Vec<Vec<usize>> {
    let mut rng = AesBuf::new(seed);
    let mut offset = 0;
    let mut steps = Vec::new();
    for i in 0..size {
        if offset + 3 > 4096 {
            rng.refill();
            offset = 0;
        }
        let window = u32::from_le_bytes([
            rng.bytes[offset],
            rng.bytes[offset + 1],
            rng.bytes[offset + 2],
            0,
        ]);
        let mut t: Vec<usize> = (0..24)
            .filter(|k| window >> k & 1 == 1)
            .map(|k| (i + 1 + k) % size)
            .collect();
        t.push((i + 25) % size);
        steps.push(t);
        offset += 1;
    }
    steps
}

/// One accumulator run as a dense matrix: the product E_{size-1} ... E_0 with
/// E_i = I + sum over targets j of e_j e_i^T.
fn accumulator_matrix(seed: u128, size: usize) -> Vec<Vec<u8>> {
    let mut a = identity(size);
    for (i, targets) in accumulator_targets(seed, size).into_iter().enumerate() {
        let mut e = identity(size);
        for j in targets {
            assert_ne!(j, i);
            e[j][i] ^= 1;
        }
        a = mat_mul(&e, &a);
    }
    a
}

/// The expander's draws per row: (regular draws, uniform draws).
fn expander_draws(n: usize, weight: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
    let seed = CODE_SEED ^ EXPANDER_SEED_MASK;
    let uni = weight / 2;
    let reg = weight - uni;
    let step = n / reg;
    let mut ug = IndexGen::new(seed, n);
    let mut rg = IndexGen::new(seed ^ REGULAR_SEED_MASK, step);
    (0..n)
        .map(|_| {
            let r = (0..reg).map(|j| rg.get() + j * step).collect();
            let u = (0..uni).map(|_| ug.get()).collect();
            (r, u)
        })
        .collect()
}

fn expander_matrix(n: usize, weight: usize) -> Vec<Vec<u8>> {
    expander_draws(n, weight)
        .into_iter()
        .map(|(r, u)| {
            let mut row = vec![0u8; n];
            for c in r.into_iter().chain(u) {
                row[c] ^= 1;
            }
            row
        })
        .collect()
}

#[test]
fn the_division_free_reduction_is_the_remainder() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    for m in [
        1u64,
        2,
        3,
        7,
        64,
        1000,
        (1 << 21) / 4,
        (1 << 21) / 11,
        u64::MAX,
        1 << 63,
    ] {
        let md = Modulus::new(m);
        for v in [0, 1, m - 1, m, m.wrapping_add(1), u64::MAX, u64::MAX - 1] {
            assert_eq!(md.reduce(v), v % m, "{v} mod {m}");
        }
        for _ in 0..10_000 {
            let v: u64 = rng.random();
            assert_eq!(md.reduce(v), v % m, "{v} mod {m}");
        }
    }
}

#[test]
fn encoding_is_linear_over_xor() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for code in CODES {
        let c = ExConvCode::new(300, code).unwrap();
        for _ in 0..4 {
            let a: Vec<u128> = (0..c.code_size()).map(|_| rng.random()).collect();
            let b: Vec<u128> = (0..c.code_size()).map(|_| rng.random()).collect();
            let mut ab: Vec<u128> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
            let (mut ea, mut eb) = (a.clone(), b.clone());
            c.dual_encode(&mut ea).unwrap();
            c.dual_encode(&mut eb).unwrap();
            c.dual_encode(&mut ab).unwrap();
            for i in 0..c.message_size() {
                assert_eq!(ab[i], ea[i] ^ eb[i]);
            }
            assert_ne!(ea[..c.message_size()], a[..c.message_size()]);
        }
    }
}

#[test]
fn the_matrix_from_unit_vectors_gives_every_encoding() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for code in CODES {
        let c = ExConvCode::new(64, code).unwrap();
        let h = matrix_from_unit_vectors(&c);
        for _ in 0..32 {
            let v = random_bits(&mut rng, c.code_size());
            assert_eq!(encode_bits(&c, &v), mat_vec(&h, &v));
        }
    }
}

#[test]
fn the_matrix_from_unit_vectors_is_identity_beside_expander_times_accumulators() {
    let n = 64;
    for code in CODES {
        let c = ExConvCode::new(n, code).unwrap();
        let a = mat_mul(
            &accumulator_matrix(!CODE_SEED, n),
            &accumulator_matrix(CODE_SEED, n),
        );
        let ba = mat_mul(&expander_matrix(n, c.expander_weight()), &a);
        let expected: Vec<Vec<u8>> = identity(n)
            .into_iter()
            .zip(ba)
            .map(|(mut left, right)| {
                left.extend(right);
                left
            })
            .collect();
        assert_eq!(matrix_from_unit_vectors(&c), expected, "{code:?}");
    }
}

#[test]
fn the_block_path_is_128_bit_paths_side_by_side() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let c = ExConvCode::new(200, DualCode::ExConv7x24).unwrap();
    let lanes: Vec<Vec<u8>> = (0..128)
        .map(|_| random_bits(&mut rng, c.code_size()))
        .collect();
    let mut blocks: Vec<u128> = (0..c.code_size())
        .map(|i| (0..128).fold(0u128, |acc, l| acc | (u128::from(lanes[l][i]) << l)))
        .collect();
    c.dual_encode(&mut blocks).unwrap();
    for (l, lane) in lanes.iter().enumerate() {
        let bits = encode_bits(&c, lane);
        for i in 0..c.message_size() {
            assert_eq!((blocks[i] >> l) as u8 & 1, bits[i], "lane {l} entry {i}");
        }
    }
}

#[test]
fn a_vector_zero_on_the_suffix_keeps_its_prefix() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    for code in CODES {
        let c = ExConvCode::new(500, code).unwrap();
        let mut e: Vec<u128> = (0..c.code_size()).map(|_| rng.random()).collect();
        e[c.message_size()..].fill(0);
        let before = e.clone();
        c.dual_encode(&mut e).unwrap();
        assert_eq!(e, before);
    }
}

#[test]
fn a_wrong_length_or_too_short_a_code_is_refused() {
    let c = ExConvCode::new(100, DualCode::ExConv7x24).unwrap();
    for len in [0, 100, 199, 201] {
        let mut e = vec![0u128; len];
        assert_eq!(
            c.dual_encode(&mut e),
            Err(ExConvError::Length {
                got: len,
                expected: 200
            })
        );
        let mut b = vec![0u8; len];
        assert!(c.dual_encode_bits(&mut b).is_err());
    }
    assert_eq!(
        ExConvCode::new(MIN_MESSAGE_SIZE - 1, DualCode::ExConv21x24),
        Err(ExConvError::TooSmall(MIN_MESSAGE_SIZE - 1))
    );
    assert!(ExConvCode::new(MIN_MESSAGE_SIZE, DualCode::ExConv21x24).is_ok());
}

/// cryprot allows repeated indices in a row (a uniform draw may equal another uniform one or
/// a regular one), so a row has weight w - 2 * (cancelled pairs): at most w, of w's parity,
/// and exactly the positions drawn an odd number of times. Regular draws fall one per band.
#[test]
fn every_expander_row_has_the_expander_weight_less_cancelled_repeats() {
    let n = 256;
    for code in CODES {
        let c = ExConvCode::new(n, code).unwrap();
        let w = c.expander_weight();
        let reg = w - w / 2;
        let step = n / reg;
        // B from the expander alone on unit vectors, 128 columns at a time in u128 lanes.
        let mut b = vec![vec![0u8; n]; n];
        for base in (0..n).step_by(128) {
            let inp: Vec<u128> = (0..n)
                .map(|col| {
                    if (base..base + 128).contains(&col) {
                        1u128 << (col - base)
                    } else {
                        0
                    }
                })
                .collect();
            let mut out = vec![0u128; n];
            c.expand(&inp, &mut out);
            for (r, o) in out.iter().enumerate() {
                for l in 0..128 {
                    b[r][base + l] = (o >> l) as u8 & 1;
                }
            }
        }
        let draws = expander_draws(n, w);
        let mut full = 0;
        for (row, (regular, uniform)) in b.iter().zip(&draws) {
            let weight: usize = row.iter().map(|&x| usize::from(x)).sum();
            assert!(weight <= w && weight % 2 == w % 2, "weight {weight} of {w}");
            for (j, &r) in regular.iter().enumerate() {
                assert!((j * step..(j + 1) * step).contains(&r));
            }
            let mut odd = vec![0u8; n];
            for &x in regular.iter().chain(uniform) {
                odd[x] ^= 1;
            }
            assert_eq!(row, &odd);
            full += usize::from(weight == w);
        }
        assert!(full > n / 2, "{full} rows of full weight out of {n}");
    }
}

/// Vectors printed by cryprot-codes 0.2.5 (default features, x86-64): `ExConvCode` with its
/// default configuration and `expander_weight` 7 or 21, `dual_encode` on u8 entries
/// `(i * 2654435761 mod 2^32) >> 24` and on blocks `(i + 1) * 0x9E37..C835 mod 2^128`.
#[test]
fn the_output_is_cryprot_codes_output_bit_for_bit() {
    let cases: [(usize, DualCode, &str, u64, [u128; 3]); 3] = [
        (
            64,
            DualCode::ExConv7x24,
            "8b11a7899eff86e51aa0cc32db0ef1a6ad4effd94adf720f50c1e8718247820b\
             7ee3febceb0965078704cf93b65c13897a86c472492eaeaa8465943b258f0b04",
            0xb0e6b745a8458525,
            [
                0x0fa0b4960b20c9ace38b409c8b74dfcb,
                0xa640986f9ef8e6a0fa515b6160fc3547,
                0x62ee94ccab08b2a92c3a911741620562,
            ],
        ),
        (
            64,
            DualCode::ExConv21x24,
            "2cb925411b0e5be51a73e18df545b913a23501905f08a7dfd850eb5f447bd58b\
             b372089fef788de4c597ff92e9e93b72a5666e579b63a8d687287d5c385a5852",
            0x1f9dc6578c238dcd,
            [
                0x23953afc3d4038a4fe49399fd58215f8,
                0x5d52373309d16f8e940cb2f858723596,
                0x08aafe64e61b1bd2632e0f4a5a7b3e8e,
            ],
        ),
        (
            5000,
            DualCode::ExConv7x24,
            "82796f70e8b6eec690786ab03400cc1c1d2fd21e1dd8a7c088c6a236e6dd95db\
             752e03d148f9590d3533088285f0c3c31ccfcc5498fc796453a5e99353351385",
            0x3b8e8222e3aa8875,
            [
                0x29365078c55f0abb228f977c2400d1ac,
                0x80e10d694ec793ec92374ed71533d85f,
                0xb2b2c6097f212dfe390d82f7df7c5d17,
            ],
        ),
    ];
    for (m, code, head, fold, [first, last, mix]) in cases {
        let c = ExConvCode::new(m, code).unwrap();
        let mut e: Vec<u8> = (0..2 * m)
            .map(|i| ((i as u32).wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        c.dual_encode_bits(&mut e).unwrap();
        let hex: String = e[..64].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, head, "{m} {code:?}");
        let mut f = 0u64;
        for (i, b) in e[..m].iter().enumerate() {
            f = f
                .wrapping_mul(1099511628211)
                .wrapping_add(u64::from(*b) ^ i as u64);
        }
        assert_eq!(f, fold, "{m} {code:?}");

        let mut eb: Vec<u128> = (0..2 * m)
            .map(|i| ((i as u128) + 1).wrapping_mul(0x9E3779B97F4A7C15F39CC0605CEDC835))
            .collect();
        c.dual_encode(&mut eb).unwrap();
        let mut x = 0u128;
        for b in &eb[..m] {
            x ^= b.rotate_left(1) ^ x.rotate_left(7);
        }
        assert_eq!([eb[0], eb[m - 1], x], [first, last, mix], "{m} {code:?}");
    }
}

/// `cargo test --release -p c3d-runtime --lib exconv -- --ignored --nocapture`
#[test]
#[ignore]
fn encode_throughput_at_two_to_the_21() {
    let c = ExConvCode::new(1 << 21, DualCode::ExConv7x24).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut e: Vec<u128> = (0..c.code_size()).map(|_| rng.random()).collect();
    let t = std::time::Instant::now();
    c.dual_encode(&mut e).unwrap();
    let s = t.elapsed().as_secs_f64();
    let (prefix, suffix) = e.split_at_mut(c.message_size());
    let t = std::time::Instant::now();
    accumulate(suffix, CODE_SEED);
    let acc = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    c.expand(suffix, prefix);
    let exp = t.elapsed().as_secs_f64();
    println!(
        "ExConv7x24 n = 2^21: {:.1} ms, {:.1} M outputs/s (one accumulator run {:.1} ms, \
         expander {:.1} ms)",
        s * 1e3,
        (1u64 << 21) as f64 / s / 1e6,
        acc * 1e3,
        exp * 1e3
    );
}
