//! C3D (Tran et al. 2015) as PyTorch ports export it: eight 3x3x3 convolutions with ReLU,
//! five max-pools, fc6/fc7 with ReLU and Dropout, fc8, Softmax.

use crate::onnx_builder::{Attr, OnnxBuilder};
use crate::weights::Init;
use crate::{pool_len, Variant};
use tract_onnx::pb::ModelProto;

/// Builds a C3D variant: channels divided by `div`, input `frames x size x size`.
pub fn build(v: &Variant, classes: usize, seed: u64) -> ModelProto {
    let div = v.width_div;
    let ceil = v.ceil_pools;
    let mut b = OnnxBuilder::new();
    let mut init = Init::new(seed);
    let (mut d, mut h, mut w) = (v.frames, v.size, v.size);
    let mut c = 3usize;
    let mut x = "input".to_string();
    let convs: [(&str, usize); 8] = [
        ("conv1a", 64),
        ("conv2a", 128),
        ("conv3a", 256),
        ("conv3b", 256),
        ("conv4a", 512),
        ("conv4b", 512),
        ("conv5a", 512),
        ("conv5b", 512),
    ];
    // Pools follow conv1a, conv2a, conv3b, conv4b, conv5b.
    let pools: [(&str, usize, [usize; 3], [usize; 3]); 5] = [
        ("pool1", 0, [1, 2, 2], [0, 0, 0]),
        ("pool2", 1, [2, 2, 2], [0, 0, 0]),
        ("pool3", 3, [2, 2, 2], [0, 0, 0]),
        ("pool4", 5, [2, 2, 2], [0, 0, 0]),
        ("pool5", 7, [2, 2, 2], [0, 1, 1]),
    ];
    for (i, (name, out)) in convs.iter().enumerate() {
        let out = (out / div).max(1);
        let mut wv = init.he(out * c * 27, c * 27);
        if i == 0 {
            // He init assumes unit-variance inputs; C3D takes mean-subtracted raw pixels
            // (std of uniform 0..255 is 255/sqrt(12)), so conv1a is scaled to match.
            let input_std = 255.0 / 12f32.sqrt();
            wv.iter_mut().for_each(|v| *v /= input_std);
        }
        x = b.conv3x3x3(name, &x, &wv, &init.bias(out));
        x = b.node("Relu", &format!("/relu_{}/Relu", i), &[&x], vec![]);
        c = out;
        if let Some((pname, _, k, p)) = pools.iter().find(|p| p.1 == i) {
            x = b.node(
                "MaxPool",
                &format!("/{pname}/MaxPool"),
                &[&x],
                vec![
                    ("ceil_mode", Attr::Int(ceil as i64)),
                    (
                        "kernel_shape",
                        Attr::Ints(k.iter().map(|&v| v as i64).collect()),
                    ),
                    (
                        "pads",
                        Attr::Ints(vec![
                            p[0] as i64,
                            p[1] as i64,
                            p[2] as i64,
                            p[0] as i64,
                            p[1] as i64,
                            p[2] as i64,
                        ]),
                    ),
                    ("strides", Attr::Ints(k.iter().map(|&v| v as i64).collect())),
                ],
            );
            d = pool_len(d, k[0], k[0], p[0], ceil);
            h = pool_len(h, k[1], k[1], p[1], ceil);
            w = pool_len(w, k[2], k[2], p[2], ceil);
        }
    }
    // x.view(-1, 8192) in the original.
    let feat = c * d * h * w;
    let shape = b.const_i64(&[2], &[-1, feat as i64]);
    x = b.node("Reshape", "/Reshape", &[&x, &shape], vec![]);
    let fc = (4096 / div).max(1);
    let mut fin = feat;
    for (i, (name, out)) in [("fc6", fc), ("fc7", fc), ("fc8", classes)]
        .iter()
        .enumerate()
    {
        let wv = init.he(out * fin, fin);
        x = b.linear(name, &x, &wv, &init.bias(*out));
        fin = *out;
        if i < 2 {
            x = b.node("Relu", &format!("/relu_{}/Relu", 8 + i), &[&x], vec![]);
            x = b.node("Dropout", &format!("/dropout_{i}/Dropout"), &[&x], vec![]);
        }
    }
    x = b.node("Softmax", "/Softmax", &[&x], vec![("axis", Attr::Int(1))]);
    // Caffe-trained C3D: BGR, per-channel mean, frames 128x171 cropped to 112.
    let resize = ((v.size * 128).div_ceil(112), (v.size * 171).div_ceil(112));
    b.metadata("c3d.preprocess", format!(
        "{{\"frames\":{},\"resize\":[{},{}],\"crop\":[{},{}],\"pixel_scale\":1.0,\"mean\":[90.25,97.66,101.41],\"std\":[1.0,1.0,1.0],\"channel_order\":\"Bgr\"}}",
        v.frames, resize.0, resize.1, v.size, v.size
    ));
    b.metadata("c3d.model", v.name.to_string());
    let out = x.clone();
    let input_dims = [1, 3, v.frames as i64, v.size as i64, v.size as i64];
    b.finish(v.name, ("input", &input_dims), (&out, &[1, classes as i64]))
}
