//! The online half of a linear layer on an NVIDIA GPU (feature `cuda`), exact mod p.
//!
//! GPUs multiply 64-bit integers slowly and have no 128-bit accumulator, so each share
//! element x < p is split into two limbs, x = x_hi 2^L + x_lo, and the weights are taken
//! centred (|w| < 2^b, the plan's public bound). Each output accumulates sum w x_lo and
//! sum w x_hi in signed 64-bit integers, which cannot overflow while b + L + log2(terms) <= 62;
//! the two sums are reduced mod p and recombined. The result equals the CPU's
//! [`super::online::apply`] bit for bit (tested on a GPU machine); a layer that does not meet
//! the bound runs on the CPU.
//!
//! The driver and NVRTC are loaded at run time (cudarc's dynamic loading): the build needs no
//! CUDA toolkit, and [`Gpu::open`] reports why there is no usable GPU instead of panicking.

use super::packing::ConvShape;
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use std::sync::Arc;

const KERNEL: &str = r#"
extern "C" __global__ void conv_modp(
    const unsigned long long* x, const long long* w, const unsigned long long* bias,
    unsigned long long* out, unsigned long long p, int limb,
    int c_in, int c_out, int id, int ih, int iw, int kd, int kh, int kw,
    int sd, int sh, int sw, int dd, int dh, int dw, int pd, int ph, int pw,
    int od, int oh, int ow, int depthwise)
{
    long long n = (long long)c_out * od * oh * ow;
    unsigned long long mask = (1ULL << limb) - 1ULL;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < n;
         t += (long long)gridDim.x * blockDim.x) {
        int xo = (int)(t % ow);
        long long r = t / ow;
        int yo = (int)(r % oh);
        r /= oh;
        int zo = (int)(r % od);
        int o = (int)(r / od);
        long long lo = 0, hi = 0;
        int per = depthwise ? 1 : c_in;
        for (int ci = 0; ci < per; ci++) {
            int c = depthwise ? o : ci;
            for (int i = 0; i < kd; i++) {
                int zi = zo * sd + i * dd - pd;
                if (zi < 0 || zi >= id) continue;
                for (int j = 0; j < kh; j++) {
                    int yi = yo * sh + j * dh - ph;
                    if (yi < 0 || yi >= ih) continue;
                    const long long* wr = w + ((((long long)o * per + ci) * kd + i) * kh + j) * kw;
                    const unsigned long long* xr = x + (((long long)c * id + zi) * ih + yi) * iw;
                    for (int l = 0; l < kw; l++) {
                        int xi = xo * sw + l * dw - pw;
                        if (xi < 0 || xi >= iw) continue;
                        long long wv = wr[l];
                        unsigned long long xv = xr[xi];
                        lo += wv * (long long)(xv & mask);
                        hi += wv * (long long)(xv >> limb);
                    }
                }
            }
        }
        long long pl = (long long)p;
        long long h = hi % pl;
        if (h < 0) h += pl;
        long long q = lo % pl;
        if (q < 0) q += pl;
        unsigned long long v = ((unsigned long long)h << limb) % p;
        out[t] = (v + (unsigned long long)q + bias[o]) % p;
    }
}
"#;

/// A GPU ready to run linear layers: a context, a stream and the compiled kernel.
pub struct Gpu {
    name: String,
    stream: Arc<CudaStream>,
    kernel: CudaFunction,
}

/// The limb width L for a layer, or None when the signed 64-bit sums could overflow: the
/// field's width, the weights' bound and the terms per output must leave
/// b + L + ceil(log2 terms) <= 62, with the high limb below 2^L too.
pub fn limb_width(p: u64, weight_mag_bits: u32, terms: usize) -> Option<u32> {
    let bits = 64 - p.leading_zeros();
    let limb = bits.div_ceil(2);
    let log_terms = usize::BITS - terms.max(1).saturating_sub(1).leading_zeros();
    (weight_mag_bits + limb + log_terms <= 62 && bits <= 62).then_some(limb)
}

/// Why there is no usable GPU, or why it cannot run a layer (the caller then runs it on the
/// CPU).
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// The driver library does not load.
    #[error("no CUDA driver library (libcuda) found")]
    NoDriver,
    /// NVRTC does not load.
    #[error("no NVRTC library found (needed to compile the kernel)")]
    NoNvrtc,
    /// The driver failed to count devices.
    #[error("CUDA driver: {0}")]
    Driver(#[source] cudarc::driver::DriverError),
    /// The driver sees no device.
    #[error("the CUDA driver sees no device")]
    NoDevice,
    /// No context on device 0.
    #[error("CUDA context: {0}")]
    Context(#[source] cudarc::driver::DriverError),
    /// NVRTC refused the kernel.
    #[error("compiling the kernel: {0}")]
    Compile(#[source] cudarc::nvrtc::CompileError),
    /// The compiled kernel does not load.
    #[error("loading the kernel: {0}")]
    Load(#[source] cudarc::driver::DriverError),
    /// The driver panicked inside cudarc while opening.
    #[error("the CUDA driver failed to initialise")]
    InitPanic,
    /// Operands of the wrong lengths for the layer.
    #[error("operand lengths do not match the layer")]
    Lengths,
    /// The layer's sums do not fit the GPU's exact limbs.
    #[error("{terms} terms of {weight_mag_bits}-bit weights overflow the GPU's limbs")]
    LimbOverflow {
        /// Products summed per output.
        terms: usize,
        /// Magnitude bits of the weights.
        weight_mag_bits: u32,
    },
    /// A weight over its public magnitude bound.
    #[error("weights exceed their public bound")]
    WeightBound,
    /// A copy or the launch failed on the device.
    #[error("GPU: {0}")]
    Device(#[source] cudarc::driver::DriverError),
}

impl Gpu {
    /// Opens GPU 0: checks that the driver and NVRTC libraries load and a device exists
    /// before making a context (cudarc panics without them), then compiles the kernel.
    pub fn open() -> Result<Gpu, GpuError> {
        // SAFETY: these only try to load the shared libraries.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(GpuError::NoDriver);
        }
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(GpuError::NoNvrtc);
        }
        let open = || -> Result<Gpu, GpuError> {
            let n = CudaContext::device_count().map_err(GpuError::Driver)?;
            if n < 1 {
                return Err(GpuError::NoDevice);
            }
            let ctx = CudaContext::new(0).map_err(GpuError::Context)?;
            let name = ctx.name().unwrap_or_else(|_| "GPU 0".into());
            let ptx = cudarc::nvrtc::compile_ptx(KERNEL).map_err(GpuError::Compile)?;
            let module = ctx.load_module(ptx).map_err(GpuError::Load)?;
            let kernel = module.load_function("conv_modp").map_err(GpuError::Load)?;
            Ok(Gpu {
                name,
                stream: ctx.default_stream(),
                kernel,
            })
        };
        // A driver that loads but fails inside cudarc must not take the server down.
        std::panic::catch_unwind(open).unwrap_or_else(|_| Err(GpuError::InitPanic))
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// W x + b mod p for a share x, as [`super::online::apply`]: `w` the field weights,
    /// whose centred magnitudes are below 2^`weight_mag_bits`. Err when the layer does not
    /// meet the limb bound or the GPU fails (the caller then runs it on the CPU).
    pub fn apply(
        &self,
        s: &ConvShape,
        x: &[u64],
        w: &[u64],
        bias: &[u64],
        p: u64,
        weight_mag_bits: u32,
    ) -> Result<Vec<u64>, GpuError> {
        if x.len() != s.input_len() || w.len() != s.weight_len() || bias.len() != s.c_out {
            return Err(GpuError::Lengths);
        }
        let per = if s.depthwise { 1 } else { s.c_in };
        let terms = per * s.kernel.iter().product::<usize>();
        let limb = limb_width(p, weight_mag_bits, terms).ok_or(GpuError::LimbOverflow {
            terms,
            weight_mag_bits,
        })?;
        let half = p / 2;
        let centred: Vec<i64> = w
            .iter()
            .map(|&v| {
                if v > half {
                    v as i64 - p as i64
                } else {
                    v as i64
                }
            })
            .collect();
        if centred
            .iter()
            .any(|v| v.unsigned_abs() >> weight_mag_bits != 0)
        {
            return Err(GpuError::WeightBound);
        }
        let [od, oh, ow] = s.output();
        let n = s.output_len();
        let e = GpuError::Device;
        let dx = self.stream.clone_htod(x).map_err(e)?;
        let dw = self.stream.clone_htod(&centred).map_err(e)?;
        let db = self.stream.clone_htod(bias).map_err(e)?;
        let mut dout = self.stream.alloc_zeros::<u64>(n).map_err(e)?;
        let i = |v: usize| v as i32;
        let dims = [
            i(s.c_in),
            i(s.c_out),
            i(s.input[0]),
            i(s.input[1]),
            i(s.input[2]),
            i(s.kernel[0]),
            i(s.kernel[1]),
            i(s.kernel[2]),
            i(s.stride[0]),
            i(s.stride[1]),
            i(s.stride[2]),
            i(s.dilation[0]),
            i(s.dilation[1]),
            i(s.dilation[2]),
            i(s.pad_begin[0]),
            i(s.pad_begin[1]),
            i(s.pad_begin[2]),
            i(od),
            i(oh),
            i(ow),
            i(usize::from(s.depthwise)),
        ];
        let limb = limb as i32;
        let threads = 256u32;
        let blocks = (n as u64).div_ceil(threads as u64).clamp(1, 65535 * 16) as u32;
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream.launch_builder(&self.kernel);
        b.arg(&dx)
            .arg(&dw)
            .arg(&db)
            .arg(&mut dout)
            .arg(&p)
            .arg(&limb);
        for d in &dims {
            b.arg(d);
        }
        // SAFETY: the kernel's parameters are exactly the arguments pushed above, in order,
        // and it writes only out[0..n], which dout holds.
        unsafe { b.launch(cfg) }.map_err(e)?;
        self.stream.clone_dtoh(&dout).map_err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limb_bound() {
        let delphi = 2061584302081u64; // 41 bits: limbs of 21 bits
        assert_eq!(limb_width(delphi, 23, 512 * 27), Some(21));
        // 23 + 21 + 14 = 58; 8192 inputs of fc6 at 23 bits: 23 + 21 + 13 = 57.
        assert_eq!(limb_width(delphi, 23, 8192), Some(21));
        // 30-bit weights over 2^12 terms: 30 + 21 + 12 = 63 > 62.
        assert_eq!(limb_width(delphi, 30, 4096), None);
        // A 61-bit prime has 31-bit limbs: 20 + 31 + 12 = 63 > 62, 16 + 31 + 12 = 59.
        let p61 = (1u64 << 61) - 1;
        assert_eq!(limb_width(p61, 20, 4096), None);
        assert_eq!(limb_width(p61, 16, 4096), Some(31));
    }
}
