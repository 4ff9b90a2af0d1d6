//! Seeded initialisation of generated models: He-normal weights, small biases, and
//! BatchNorm statistics that are far from the identity so folding is really exercised.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// Draws parameters from one seeded stream, in a fixed order.
pub struct Init {
    rng: ChaCha8Rng,
}

impl Init {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Self {
        use rand::SeedableRng;
        Init {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// He-normal weights: std sqrt(2 / fan_in).
    pub fn he(&mut self, n: usize, fan_in: usize) -> Vec<f32> {
        let d = Normal::new(0.0f32, (2.0 / fan_in as f32).sqrt()).expect("valid std");
        (0..n).map(|_| d.sample(&mut self.rng)).collect()
    }

    /// Small biases.
    pub fn bias(&mut self, n: usize) -> Vec<f32> {
        let d = Normal::new(0.0f32, 0.05).expect("valid std");
        (0..n).map(|_| d.sample(&mut self.rng)).collect()
    }

    /// BatchNorm (gamma, beta, running mean, running var).
    pub fn batchnorm(&mut self, c: usize) -> [Vec<f32>; 4] {
        let g = Uniform::new(0.6f32, 1.4).expect("range");
        let b = Normal::new(0.0f32, 0.1).expect("std");
        let m = Normal::new(0.0f32, 0.2).expect("std");
        let v = Uniform::new(0.5f32, 2.0).expect("range");
        [
            (0..c).map(|_| g.sample(&mut self.rng)).collect(),
            (0..c).map(|_| b.sample(&mut self.rng)).collect(),
            (0..c).map(|_| m.sample(&mut self.rng)).collect(),
            (0..c).map(|_| v.sample(&mut self.rng)).collect(),
        ]
    }

    /// A uniform float, for tests that need one.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.rng.random_range(lo..hi)
    }
}
