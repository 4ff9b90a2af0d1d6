//! Folding of BatchNormalization into the preceding convolution or fully connected layer.

/// Why a BatchNorm cannot be folded into its layer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    /// Parameters for another channel count.
    #[error(
        "BatchNormalization has parameters for a different channel count than the layer's {0}"
    )]
    Channels(usize),
    /// Weights that do not split into the bias's output channels.
    #[error("layer weights do not split into output channels")]
    Split,
    /// A negative or non-finite variance.
    #[error("BatchNormalization variance of channel {0} is negative or not finite")]
    Variance(usize),
}

/// Inference-time BatchNorm parameters, one value per channel.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// Scale (gamma).
    pub gamma: Vec<f32>,
    /// Shift (beta).
    pub beta: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
    /// Epsilon added to the variance.
    pub eps: f32,
}

/// Rewrites `w` (out-channel major) and `b` so that the layer computes bn(layer(x)):
/// w' = w * g / sqrt(var + eps), b' = (b - mean) * g / sqrt(var + eps) + beta.
pub fn fold_batchnorm(w: &mut [f32], b: &mut [f32], bn: &BatchNorm) -> Result<(), FoldError> {
    let c = b.len();
    if [bn.gamma.len(), bn.beta.len(), bn.mean.len(), bn.var.len()] != [c; 4] {
        return Err(FoldError::Channels(c));
    }
    if c == 0 || !w.len().is_multiple_of(c) {
        return Err(FoldError::Split);
    }
    let per = w.len() / c;
    for o in 0..c {
        let denom = (bn.var[o] as f64 + bn.eps as f64).sqrt();
        if !(denom.is_finite() && denom > 0.0) {
            return Err(FoldError::Variance(o));
        }
        let k = bn.gamma[o] as f64 / denom;
        for v in &mut w[o * per..(o + 1) * per] {
            *v = (*v as f64 * k) as f32;
        }
        b[o] = ((b[o] as f64 - bn.mean[o] as f64) * k + bn.beta[o] as f64) as f32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_layer_equals_layer_then_batchnorm() {
        // A 2-output, 3-input dense layer; brute-force bn(Wx + b) against the folded W'x + b'.
        let w = vec![0.5, -1.0, 2.0, 1.5, 0.25, -0.75];
        let b = vec![0.1, -0.2];
        let bn = BatchNorm {
            gamma: vec![1.3, 0.7],
            beta: vec![0.05, -0.4],
            mean: vec![0.2, -0.1],
            var: vec![0.9, 1.6],
            eps: 1e-5,
        };
        let x = [0.3f32, -1.2, 0.8];
        let (mut wf, mut bf) = (w.clone(), b.clone());
        fold_batchnorm(&mut wf, &mut bf, &bn).unwrap();
        for o in 0..2 {
            let y: f32 = (0..3).map(|i| w[o * 3 + i] * x[i]).sum::<f32>() + b[o];
            let want = (y - bn.mean[o]) / (bn.var[o] + bn.eps).sqrt() * bn.gamma[o] + bn.beta[o];
            let got: f32 = (0..3).map(|i| wf[o * 3 + i] * x[i]).sum::<f32>() + bf[o];
            assert!((want - got).abs() < 1e-5, "{want} vs {got}");
        }
    }

    #[test]
    fn rejects_bad_variance_and_sizes() {
        let bn = BatchNorm {
            gamma: vec![1.0],
            beta: vec![0.0],
            mean: vec![0.0],
            var: vec![-2.0],
            eps: 1e-5,
        };
        assert_eq!(
            fold_batchnorm(&mut [1.0], &mut [0.0], &bn),
            Err(FoldError::Variance(0))
        );
        let bn2 = BatchNorm {
            var: vec![1.0, 1.0],
            ..bn
        };
        assert_eq!(
            fold_batchnorm(&mut [1.0], &mut [0.0], &bn2),
            Err(FoldError::Channels(1))
        );
    }
}
