//! The client's clip: an H.264 (or any FFmpeg-decodable) video, or a float32 .npy tensor,
//! turned into the model input the plan's preprocessing describes. Runs on the client only.
//!
//! Video: the first `frames` decoded frames (consecutive, as C3D and I3D sample a clip), each
//! scaled to the resize size as RGB, centre-cropped, then pixel * scale, minus mean, over std,
//! in the plan's channel order, laid out (1, 3, D, H, W).

use c3d_ir::plan::{ChannelOrder, Preprocess};
use c3d_ir::{Shape, Tensor};
use ffmpeg_next as ff;
use ndarray::ArrayD;
use ndarray_npy::ReadNpyExt;
use std::path::Path;

/// Why a clip could not be used.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The file cannot be read.
    #[error("{path}: {msg}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        msg: String,
    },
    /// Not a video FFmpeg can open, or no video stream, or undecodable.
    #[error("{path}: not a usable video ({msg})")]
    NotVideo {
        /// The file.
        path: String,
        /// Why.
        msg: String,
    },
    /// Fewer frames than the model takes.
    #[error("{path}: the clip has {got} decodable frames, the model takes {need}")]
    TooShort {
        /// The file.
        path: String,
        /// Frames decoded.
        got: usize,
        /// Frames needed.
        need: usize,
    },
    /// A tensor of the wrong shape or with non-finite values.
    #[error("{path}: {msg}")]
    BadTensor {
        /// The file.
        path: String,
        /// Why.
        msg: String,
    },
}

/// Loads CLIP as the model input: `.npy` files as float32 tensors of exactly `input`'s
/// shape, anything else as a video.
pub fn load_clip(path: &Path, pp: &Preprocess, input: &Shape) -> Result<Tensor<f32>, VideoError> {
    let name = path.display().to_string();
    if !path.is_file() {
        return Err(VideoError::Io {
            path: name,
            msg: "no such file".into(),
        });
    }
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        let f = std::fs::File::open(path).map_err(|e| VideoError::Io {
            path: name.clone(),
            msg: e.to_string(),
        })?;
        let a = ArrayD::<f32>::read_npy(std::io::BufReader::new(f)).map_err(|e| {
            VideoError::BadTensor {
                path: name.clone(),
                msg: format!("not a float32 .npy array ({e})"),
            }
        })?;
        let t = Tensor::new(Shape::new(a.shape().to_vec()), a.iter().copied().collect());
        if &t.shape != input {
            return Err(VideoError::BadTensor {
                path: name,
                msg: format!("tensor of shape {}, the model takes {input}", t.shape),
            });
        }
        if t.data.iter().any(|v| !v.is_finite()) {
            return Err(VideoError::BadTensor {
                path: name,
                msg: "the tensor holds non-finite values".into(),
            });
        }
        return Ok(t);
    }
    let frames = decode(path, pp)?;
    Ok(preprocess(&frames, pp))
}

/// Decodes the first `pp.frames` frames as RGB at the resize size.
pub fn decode(path: &Path, pp: &Preprocess) -> Result<Vec<Vec<u8>>, VideoError> {
    let name = path.display().to_string();
    let nv = |msg: String| VideoError::NotVideo {
        path: name.clone(),
        msg,
    };
    ff::init().map_err(|e| nv(e.to_string()))?;
    ff::util::log::set_level(ff::util::log::Level::Fatal);
    let mut ictx = ff::format::input(path).map_err(|e| nv(e.to_string()))?;
    let stream = ictx
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| nv("no video stream".into()))?;
    let idx = stream.index();
    let ctx = ff::codec::context::Context::from_parameters(stream.parameters())
        .map_err(|e| nv(e.to_string()))?;
    let mut dec = ctx.decoder().video().map_err(|e| nv(e.to_string()))?;
    if dec.width() == 0 || dec.height() == 0 {
        return Err(nv("the video stream has no frame size".into()));
    }
    let (rh, rw) = pp.resize;
    let mut scaler = ff::software::scaling::Context::get(
        dec.format(),
        dec.width(),
        dec.height(),
        ff::format::Pixel::RGB24,
        rw as u32,
        rh as u32,
        ff::software::scaling::Flags::BILINEAR,
    )
    .map_err(|e| nv(format!("cannot scale the frames: {e}")))?;
    let need = pp.frames;
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(need);
    let mut frame = ff::frame::Video::empty();
    let mut take =
        |dec: &mut ff::decoder::Video, out: &mut Vec<Vec<u8>>| -> Result<(), VideoError> {
            while out.len() < need && dec.receive_frame(&mut frame).is_ok() {
                let mut rgb = ff::frame::Video::empty();
                scaler
                    .run(&frame, &mut rgb)
                    .map_err(|e| nv(format!("cannot scale frame {}: {e}", out.len())))?;
                let stride = rgb.stride(0);
                let data = rgb.data(0);
                let mut px = Vec::with_capacity(rh * rw * 3);
                for y in 0..rh {
                    px.extend_from_slice(&data[y * stride..y * stride + rw * 3]);
                }
                out.push(px);
            }
            Ok(())
        };
    let mut packets = 0usize;
    for (s, packet) in ictx.packets() {
        if s.index() != idx {
            continue;
        }
        packets += 1;
        // A damaged packet is skipped the way players skip it; too few frames is caught below.
        if dec.send_packet(&packet).is_err() {
            continue;
        }
        take(&mut dec, &mut out)?;
        if out.len() >= need {
            break;
        }
    }
    if out.len() < need {
        let _ = dec.send_eof();
        take(&mut dec, &mut out)?;
    }
    if packets == 0 {
        return Err(nv("the video stream holds no packets".into()));
    }
    if out.len() < need {
        return Err(VideoError::TooShort {
            path: name,
            got: out.len(),
            need,
        });
    }
    Ok(out)
}

/// Centre crop, scaling, normalisation and channel order: frames (RGB, resize size) to the
/// input tensor (1, 3, D, H, W).
pub fn preprocess(frames: &[Vec<u8>], pp: &Preprocess) -> Tensor<f32> {
    let (rh, rw) = pp.resize;
    let (ch, cw) = pp.crop;
    let (y0, x0) = ((rh - ch) / 2, (rw - cw) / 2);
    let d = frames.len();
    let mut data = vec![0f32; 3 * d * ch * cw];
    for (t, f) in frames.iter().enumerate() {
        for y in 0..ch {
            for x in 0..cw {
                let at = ((y + y0) * rw + (x + x0)) * 3;
                for c in 0..3 {
                    // Model channel c reads colour `src` of the RGB frame.
                    let src = match pp.channel_order {
                        ChannelOrder::Rgb => c,
                        ChannelOrder::Bgr => 2 - c,
                    };
                    let v = f[at + src] as f32 * pp.pixel_scale;
                    data[((c * d + t) * ch + y) * cw + x] = (v - pp.mean[c]) / pp.std[c];
                }
            }
        }
    }
    Tensor::new(Shape::new(vec![1, 3, d, ch, cw]), data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocessing_crops_the_centre_and_normalises_per_channel() {
        // Two 4x6 frames whose pixel value encodes (frame, y, x, colour).
        let frames: Vec<Vec<u8>> = (0..2)
            .map(|t| (0..4 * 6 * 3).map(|i| (t * 100 + i) as u8).collect())
            .collect();
        let pp = Preprocess {
            frames: 2,
            resize: (4, 6),
            crop: (2, 2),
            pixel_scale: 1.0,
            mean: [1.0, 2.0, 3.0],
            std: [1.0, 2.0, 4.0],
            channel_order: ChannelOrder::Bgr,
        };
        let t = preprocess(&frames, &pp);
        assert_eq!(t.shape.dims(), &[1, 3, 2, 2, 2]);
        for c in 0..3 {
            for tt in 0..2 {
                for y in 0..2 {
                    for x in 0..2 {
                        let src = 2 - c;
                        let px = (tt * 100 + ((y + 1) * 6 + (x + 2)) * 3 + src) as f32;
                        let want = (px - pp.mean[c]) / pp.std[c];
                        assert_eq!(t.data[((c * 2 + tt) * 2 + y) * 2 + x], want);
                    }
                }
            }
        }
    }
}
