//! The GPU's online linear layers against the CPU's, bit for bit (feature `cuda`). Runs only
//! where a GPU is usable; elsewhere it says so and passes, since the default build and CI
//! have none.
#![cfg(feature = "cuda")]

use c3d_runtime::linear::gpu::Gpu;
use c3d_runtime::linear::{online, ConvShape};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn conv(
    c_in: usize,
    c_out: usize,
    input: [usize; 3],
    k: usize,
    stride: usize,
    pad: usize,
) -> ConvShape {
    ConvShape {
        c_in,
        c_out,
        input,
        kernel: [k; 3],
        stride: [stride; 3],
        dilation: [1; 3],
        pad_begin: [pad; 3],
        pad_end: [pad; 3],
        depthwise: false,
    }
}

#[test]
fn gpu_equals_cpu() {
    let gpu = match Gpu::open() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("no usable GPU ({e}); GPU == CPU not checked here");
            return;
        }
    };
    eprintln!("checking on {}", gpu.name());
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut pool = conv(16, 16, [4, 9, 9], 2, 2, 0);
    pool.depthwise = true;
    let mut dilated = conv(4, 6, [5, 7, 7], 3, 1, 2);
    dilated.dilation = [2; 3];
    let shapes = [
        conv(3, 8, [4, 12, 12], 3, 1, 1),
        conv(64, 32, [4, 14, 14], 3, 1, 1),
        conv(8, 8, [6, 10, 10], 7, 2, 3),
        ConvShape::fully_connected(8192, 64),
        pool,
        dilated,
    ];
    // Delphi's 41-bit prime, and a wider 57-bit one with smaller weights.
    for (p, wbits) in [(2061584302081u64, 20u32), ((1u64 << 57) - 13, 12)] {
        for s in &shapes {
            let x: Vec<u64> = (0..s.input_len()).map(|_| rng.random_range(0..p)).collect();
            let w: Vec<u64> = (0..s.weight_len())
                .map(|_| {
                    let v: i64 = rng.random_range(-(1i64 << wbits) + 1..1i64 << wbits);
                    // Some pruned weights, as --prune leaves.
                    let v = if rng.random_range(0..4) == 0 { 0 } else { v };
                    v.rem_euclid(p as i64) as u64
                })
                .collect();
            let b: Vec<u64> = (0..s.c_out).map(|_| rng.random_range(0..p)).collect();
            let cpu = online::apply(s, &x, &w, &b, p);
            let got = gpu
                .apply(s, &x, &w, &b, p, wbits)
                .expect("the GPU runs the layer");
            assert_eq!(got, cpu, "{s:?} at p = {p}");
        }
    }
}
