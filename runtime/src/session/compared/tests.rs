//! Both parties of compared layers over an in-process channel, against the clear reference
//! f(max_j floor(y_j / 2^t)) the simulator computes.

use super::*;
use crate::ot::{OtReceiver, OtSender};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const P: u64 = 2061584302081; // 15 * 2^37 + 1

fn floor_shift(v: i64, t: u32) -> i64 {
    v >> t
}

fn clear(layer: &ComparedLayer, y: &[i64]) -> Vec<i64> {
    (0..layer.windows.len())
        .map(|u| {
            let m = layer
                .windows
                .of(u)
                .iter()
                .map(|&i| floor_shift(y[i as usize], layer.truncate))
                .max()
                .unwrap();
            if layer.relu {
                m.max(0)
            } else {
                m
            }
        })
        .collect()
}

/// Runs the layers in order in one session: offline supply, then each layer online.
/// Returns the reconstructed outputs and the COTs left on each side.
type Left = Vec<(u64, u64)>;

fn run(layers: Vec<ComparedLayer>, inputs: Vec<Vec<i64>>) -> (Vec<Vec<i64>>, Left, Left) {
    let f = Field::new(P).unwrap();
    let enc = |v: i64| v.rem_euclid(P as i64) as u64;
    let mut rng = ChaCha20Rng::seed_from_u64(50);
    let mut shares = Vec::new();
    for y in &inputs {
        let c: Vec<u64> = f.random_vec(&mut rng, y.len());
        let s: Vec<u64> = y.iter().zip(&c).map(|(&v, &c)| f.sub(enc(v), c)).collect();
        let r: Vec<u64> = f.random_vec(&mut rng, layers[shares.len()].windows.len());
        shares.push((s, c, r));
    }
    let (mut a, mut b) = Channel::pair().unwrap();
    let (l2, sh2) = (layers.clone(), shares.clone());
    let server = std::thread::spawn(move || {
        let mut rng = ChaCha20Rng::seed_from_u64(51);
        let mut ot = OtSender::setup(&mut a, &mut rng).unwrap();
        let mut state = SupplyState::default();
        let mut supplies: Vec<CotSupply> = l2
            .iter()
            .map(|l| server_supply(&mut a, &mut ot, &mut state, l, &mut rng).unwrap())
            .collect();
        let outs: Vec<Vec<u64>> = l2
            .iter()
            .zip(&sh2)
            .zip(&mut supplies)
            .map(|((l, (s, _, _)), cots)| {
                server_layer(&mut a, cots, l, s, &mut rng, &mut |_, _| {}).unwrap()
            })
            .collect();
        (
            outs,
            supplies.iter().map(CotSupply::left).collect::<Vec<_>>(),
        )
    });
    let mut rng = ChaCha20Rng::seed_from_u64(52);
    let mut ot = OtReceiver::setup(&mut b, &mut rng).unwrap();
    let mut state = SupplyState::default();
    let mut supplies: Vec<CotSupply> = layers
        .iter()
        .map(|l| client_supply(&mut b, &mut ot, &mut state, l, &mut rng).unwrap())
        .collect();
    for ((l, (_, c, r)), cots) in layers.iter().zip(&shares).zip(&mut supplies) {
        client_layer(&mut b, cots, l, c, r, &mut |_, _| {}).unwrap();
    }
    let (outs, left_s) = server.join().unwrap();
    let got = outs
        .iter()
        .zip(&shares)
        .map(|(y0, (_, _, r))| {
            f.reconstruct(y0, r)
                .into_iter()
                .map(|v| {
                    if v > (P - 1) / 2 {
                        v as i64 - P as i64
                    } else {
                        v as i64
                    }
                })
                .collect()
        })
        .collect();
    (got, left_s, supplies.iter().map(CotSupply::left).collect())
}

fn relu_layer(n: u32, t: u32) -> ComparedLayer {
    ComparedLayer {
        p: P,
        windows: Windows {
            taps: (0..n).collect(),
            offsets: (0..=n).collect(),
        },
        truncate: t,
        relu: true,
        offset: 0,
    }
}

#[test]
fn relu_with_truncation_equals_the_clear_floor_at_every_boundary() {
    let mut rng = ChaCha20Rng::seed_from_u64(53);
    let h = ((P - 1) / 2) as i64;
    let mut layers = Vec::new();
    let mut inputs = Vec::new();
    for t in [0u32, 1, 8, 12] {
        let m = 1i64 << t;
        let mut y: Vec<i64> = vec![
            0,
            1,
            -1,
            m - 1,
            m,
            m + 1,
            -m,
            -m - 1,
            -m + 1,
            h,
            -h,
            h - 1,
            2 * m - 1,
        ];
        y.extend((0..300).map(|_| rng.random_range(-(1i64 << 35)..1i64 << 35)));
        layers.push(relu_layer(y.len() as u32, t));
        inputs.push(y);
    }
    let (got, left_s, left_c) = run(layers.clone(), inputs.clone());
    for ((l, y), g) in layers.iter().zip(&inputs).zip(&got) {
        assert_eq!(g, &clear(l, y), "t = {}", l.truncate);
    }
    // The offline count was exact: every prepared COT of the layers' rounds is used or left
    // over from the last round only, and both sides agree.
    assert_eq!(left_s, left_c);
}

#[test]
fn pools_with_and_without_relu_equal_the_clear_maximum() {
    let mut rng = ChaCha20Rng::seed_from_u64(54);
    let bound = 1i64 << 33; // headroom of at least 2 bits in a 41-bit field
    let mut layers = Vec::new();
    let mut inputs = Vec::new();
    for (relu, t) in [(true, 6u32), (false, 6), (false, 0), (true, 0)] {
        // Windows of 1 to 8 taps over 200 inputs, some overlapping.
        let n = 200u32;
        let mut taps = Vec::new();
        let mut offsets = vec![0u32];
        for u in 0..60u32 {
            let k = 1 + u % 8;
            for j in 0..k {
                taps.push((u * 3 + j * 5) % n);
            }
            offsets.push(taps.len() as u32);
        }
        let mut y: Vec<i64> = (0..n as usize)
            .map(|i| match i % 4 {
                0 => -rng.random_range(1..bound),
                1 => rng.random_range(-3..3),
                _ => rng.random_range(-bound..bound),
            })
            .collect();
        y[5] = y[0]; // equal maxima
        let offset = if relu || t == 0 {
            0
        } else {
            (bound as u64).div_ceil(1 << t) << t
        };
        layers.push(ComparedLayer {
            p: P,
            windows: Windows { taps, offsets },
            truncate: t,
            relu,
            offset,
        });
        inputs.push(y);
    }
    let (got, left_s, left_c) = run(layers.clone(), inputs.clone());
    for ((l, y), g) in layers.iter().zip(&inputs).zip(&got) {
        assert_eq!(g, &clear(l, y), "relu {} t {}", l.relu, l.truncate);
    }
    assert_eq!(left_s, left_c);
}

#[test]
fn the_cot_count_is_what_the_layers_take() {
    // One round exactly: prepare the count the layer claims, and run it to the last COT.
    let layer = relu_layer(50, 8);
    let (fwd, rev) = layer.cots();
    assert!(fwd > 0 && rev > 0);
    let y: Vec<i64> = (0..50).map(|i| i * 1000 - 20000).collect();
    let (got, left_s, _) = run(vec![layer.clone()], vec![y.clone()]);
    assert_eq!(got[0], clear(&layer, &y));
    let pf = round_params(fwd).unwrap();
    let pr = round_params(rev).unwrap();
    assert_eq!(
        left_s,
        vec![(
            rounds_for(&pf, fwd) * pf.n - fwd,
            rounds_for(&pr, rev) * pr.n - rev
        )]
    );
}
