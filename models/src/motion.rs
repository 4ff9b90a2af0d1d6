//! The synthetic action data set the bundled trained model learns: short RGB clips of a
//! shape that moves right, left, up or down, grows or shrinks, over a noisy background with
//! an optional static distractor. Shape, colour, size, speed and start are drawn at random,
//! so no single frame tells the class: only the motion does, and the network has to use its
//! temporal kernels.
//!
//! Every clip is a pure function of (split seed, index): the train and test splits are the
//! seeds [`TRAIN_SEED`] and [`TEST_SEED`], so the data set is regenerated, never stored.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Frames per clip.
pub const FRAMES: usize = 8;
/// Height and width of a frame.
pub const SIZE: usize = 16;
/// Class names, in label order.
pub const CLASSES: [&str; 6] = ["right", "left", "up", "down", "grow", "shrink"];
/// Seed of the training split.
pub const TRAIN_SEED: u64 = 1;
/// Seed of the test split.
pub const TEST_SEED: u64 = 2;
/// Preprocessing: pixels scaled by 1/255...
pub const PIXEL_SCALE: f32 = 1.0 / 255.0;
/// ...centred on this mean...
pub const MEAN: f32 = 0.5;
/// ...and divided by this std (inputs then lie in [-2, 2]).
pub const STD: f32 = 0.25;

/// Values in one clip tensor (3 x FRAMES x SIZE x SIZE).
pub const CLIP_LEN: usize = 3 * FRAMES * SIZE * SIZE;

/// One labelled clip.
#[derive(Clone, Debug)]
pub struct Clip {
    /// RGB pixels, layout (channel, frame, row, column).
    pub pixels: Vec<u8>,
    /// Index into [`CLASSES`].
    pub label: usize,
}

impl Clip {
    /// The clip as the model's input: (pixel * scale - mean) / std, layout (C, D, H, W).
    pub fn input(&self) -> Vec<f32> {
        self.pixels
            .iter()
            .map(|&p| (p as f32 * PIXEL_SCALE - MEAN) / STD)
            .collect()
    }

    /// The frames as packed RGB24, frame by frame and row by row: what a video encoder takes.
    pub fn rgb_frames(&self) -> Vec<u8> {
        let plane = FRAMES * SIZE * SIZE;
        let mut out = Vec::with_capacity(3 * plane);
        for i in 0..plane {
            for c in 0..3 {
                out.push(self.pixels[c * plane + i]);
            }
        }
        out
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Square,
    Disk,
    Diamond,
}

fn inside(kind: Kind, dx: f32, dy: f32, r: f32) -> bool {
    match kind {
        Kind::Square => dx.abs() <= r && dy.abs() <= r,
        Kind::Disk => dx * dx + dy * dy <= r * r,
        Kind::Diamond => dx.abs() + dy.abs() <= 1.4 * r,
    }
}

fn kind(rng: &mut ChaCha8Rng) -> Kind {
    match rng.random_range(0..3) {
        0 => Kind::Square,
        1 => Kind::Disk,
        _ => Kind::Diamond,
    }
}

fn colour(rng: &mut ChaCha8Rng) -> [f32; 3] {
    [
        rng.random_range(150.0..255.0),
        rng.random_range(150.0..255.0),
        rng.random_range(150.0..255.0),
    ]
}

/// Clip `index` of the split with seed `seed`. Labels cycle through the classes, so every
/// prefix of a split is balanced to within one clip per class.
pub fn clip(seed: u64, index: u64) -> Clip {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    let label = (index % CLASSES.len() as u64) as usize;
    let last = (FRAMES - 1) as f32;
    let hi = SIZE as f32 - 2.0;
    let shape = kind(&mut rng);
    let col = colour(&mut rng);
    // (x, y, r) at frame t.
    let path: Box<dyn Fn(f32) -> (f32, f32, f32)> = if label < 4 {
        let r = rng.random_range(1.8..3.2f32);
        let v = rng.random_range(0.5..1.1f32);
        let drift = rng.random_range(-0.3..0.3f32);
        let along0 = rng.random_range(1.0..(hi - v * last).max(1.5));
        let across0 = rng.random_range(3.0..(SIZE as f32 - 3.0));
        // Right and down move towards larger coordinates; left and up start at the far end.
        let sign = if label.is_multiple_of(2) { 1.0 } else { -1.0 };
        let start = if sign > 0.0 {
            along0
        } else {
            hi + 1.0 - along0
        };
        let horizontal = label < 2;
        Box::new(move |t| {
            let along = start + sign * v * t;
            let across = across0 + drift * t;
            if horizontal {
                (along, across, r)
            } else {
                (across, along, r)
            }
        })
    } else {
        let g = rng.random_range(0.2..0.45f32);
        let r_small = rng.random_range(1.0..2.0f32);
        let cx = rng.random_range(5.0..(SIZE as f32 - 5.0));
        let cy = rng.random_range(5.0..(SIZE as f32 - 5.0));
        let grow = label == 4;
        Box::new(move |t| {
            let r = if grow {
                r_small + g * t
            } else {
                r_small + g * (last - t)
            };
            (cx, cy, r)
        })
    };
    let bg: f32 = rng.random_range(0.0..80.0);
    let distractor = rng.random_bool(0.5).then(|| {
        (
            kind(&mut rng),
            colour(&mut rng),
            rng.random_range(2.0..(SIZE as f32 - 2.0)),
            rng.random_range(2.0..(SIZE as f32 - 2.0)),
            rng.random_range(1.2..2.5f32),
            // It drifts slowly, in any direction.
            rng.random_range(-0.5..0.5f32),
            rng.random_range(-0.5..0.5f32),
        )
    });
    // Camera shake: the whole frame is off by up to a pixel on each axis now and then.
    let shake: Vec<(f32, f32)> = (0..FRAMES)
        .map(|_| {
            let mut axis = || {
                if rng.random_bool(0.25) {
                    if rng.random_bool(0.5) {
                        1.0
                    } else {
                        -1.0
                    }
                } else {
                    0.0
                }
            };
            (axis(), axis())
        })
        .collect();
    let mut pixels = vec![0u8; CLIP_LEN];
    let plane = SIZE * SIZE;
    for t in 0..FRAMES {
        let (x, y, r) = path(t as f32);
        let (sx, sy) = shake[t];
        let (x, y) = (x + sx, y + sy);
        for row in 0..SIZE {
            for c in 0..SIZE {
                let mut px = [bg; 3];
                if let Some((k, dc, dx, dy, dr, vx, vy)) = distractor {
                    let (dx, dy) = (dx + vx * t as f32 + sx, dy + vy * t as f32 + sy);
                    if inside(k, c as f32 - dx, row as f32 - dy, dr) {
                        px = dc;
                    }
                }
                if inside(shape, c as f32 - x, row as f32 - y, r) {
                    px = col;
                }
                for (ch, v) in px.iter().enumerate() {
                    // Sum of uniforms: a cheap, bounded, roughly Gaussian sensor noise.
                    let noise: f32 = (0..3).map(|_| rng.random_range(-18.0..18.0f32)).sum();
                    pixels[ch * FRAMES * plane + t * plane + row * SIZE + c] =
                        (v + noise).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    Clip { pixels, label }
}

/// Clips `0..n` of a split.
pub fn split(seed: u64, n: usize) -> Vec<Clip> {
    (0..n as u64).map(|i| clip(seed, i)).collect()
}

/// The preprocessing record the exported models carry (`c3d.preprocess` metadata).
pub fn preprocess_json() -> String {
    format!(
        "{{\"frames\":{FRAMES},\"resize\":[{SIZE},{SIZE}],\"crop\":[{SIZE},{SIZE}],\"pixel_scale\":{PIXEL_SCALE},\"mean\":[{MEAN},{MEAN},{MEAN}],\"std\":[{STD},{STD},{STD}],\"channel_order\":\"Rgb\"}}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_frames_interleave_the_channel_planes() {
        let c = clip(TEST_SEED, 3);
        let rgb = c.rgb_frames();
        let plane = FRAMES * SIZE * SIZE;
        assert_eq!(rgb.len(), 3 * plane);
        // Pixel (frame 5, row 7, column 2), channel by channel.
        let i = (5 * SIZE + 7) * SIZE + 2;
        for ch in 0..3 {
            assert_eq!(rgb[3 * i + ch], c.pixels[ch * plane + i]);
        }
    }

    #[test]
    fn clips_are_deterministic_and_balanced() {
        let a = split(TRAIN_SEED, 12);
        let b = split(TRAIN_SEED, 12);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.pixels, y.pixels);
        }
        let mut counts = [0; 6];
        a.iter().for_each(|c| counts[c.label] += 1);
        assert_eq!(counts, [2; 6]);
        // Splits differ.
        assert_ne!(clip(TRAIN_SEED, 0).pixels, clip(TEST_SEED, 0).pixels);
    }

    /// Growing clips light up more pixels in their last frame than in their first, shrinking
    /// ones fewer (shapes are at least 450 in channel sum with noise, background at most 330).
    #[test]
    fn size_follows_the_label() {
        let plane = SIZE * SIZE;
        for i in 0..60 {
            let c = clip(TEST_SEED, i);
            let lit = |t: usize| {
                (0..plane)
                    .filter(|&k| {
                        let v: u32 = (0..3)
                            .map(|ch| c.pixels[ch * FRAMES * plane + t * plane + k] as u32)
                            .sum();
                        v > 345
                    })
                    .count()
            };
            let (first, last) = (lit(0), lit(FRAMES - 1));
            match c.label {
                4 => assert!(last > first, "clip {i} grows: {first} -> {last}"),
                5 => assert!(last < first, "clip {i} shrinks: {first} -> {last}"),
                _ => {}
            }
        }
    }
}
