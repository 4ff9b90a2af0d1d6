//! I3D (Carreira and Zisserman 2017): Inception-v1 inflated to 3-D, as the common PyTorch
//! port exports it: Unit3D = SAME padding through `Pad`, Conv without bias, BatchNorm, ReLU;
//! Mixed blocks of four branches joined by Concat; average pool, 1x1x1 logits conv,
//! spatial Squeeze and a mean over time.

use crate::onnx_builder::{Attr, OnnxBuilder};
use crate::weights::Init;
use crate::Variant;
use tract_onnx::pb::ModelProto;

struct Net<'a> {
    b: OnnxBuilder,
    init: Init,
    div: usize,
    v: &'a Variant,
}

/// Output length of a SAME-padded window (what the Pad chain produces, then a valid window).
fn same_len(len: usize, k: usize, s: usize) -> usize {
    let need = if len.is_multiple_of(s) {
        k.saturating_sub(s)
    } else {
        k.saturating_sub(len % s)
    };
    (len + need - k) / s + 1
}

impl Net<'_> {
    fn ch(&self, c: usize) -> usize {
        (c / self.div).max(1)
    }

    /// Unit3D: [SAME Pad] -> Conv (no bias) -> BatchNormalization -> ReLU.
    fn unit(
        &mut self,
        scope: &str,
        x: &str,
        (cin, cout): (usize, usize),
        (k, s): (usize, usize),
        dims: &mut [usize; 3],
    ) -> String {
        let kk = [k; 3];
        let x = if k > 1 || s > 1 {
            self.b.same_pad(scope, x, kk, [s; 3])
        } else {
            x.to_string()
        };
        let fan = cin * k * k * k;
        let w = self.b.param(
            &format!(
                "{}.conv3d.weight",
                scope.trim_start_matches('/').replace('/', ".")
            ),
            &[cout, cin, k, k, k],
            &self.init.he(cout * fan, fan),
        );
        let y = self.b.node(
            "Conv",
            &format!("{scope}/conv3d/Conv"),
            &[&x, &w],
            vec![
                ("dilations", Attr::Ints(vec![1; 3])),
                ("group", Attr::Int(1)),
                ("kernel_shape", Attr::Ints(vec![k as i64; 3])),
                ("pads", Attr::Ints(vec![0; 6])),
                ("strides", Attr::Ints(vec![s as i64; 3])),
            ],
        );
        let [g, bt, m, vr] = self.init.batchnorm(cout);
        let p = scope.trim_start_matches('/').replace('/', ".");
        let g = self.b.param(&format!("{p}.bn.weight"), &[cout], &g);
        let bt = self.b.param(&format!("{p}.bn.bias"), &[cout], &bt);
        let m = self.b.param(&format!("{p}.bn.running_mean"), &[cout], &m);
        let vr = self.b.param(&format!("{p}.bn.running_var"), &[cout], &vr);
        let y = self.b.node(
            "BatchNormalization",
            &format!("{scope}/bn/BatchNormalization"),
            &[&y, &g, &bt, &m, &vr],
            vec![
                ("epsilon", Attr::Float(1e-3)),
                ("momentum", Attr::Float(0.99)),
            ],
        );
        for a in dims.iter_mut() {
            *a = same_len(*a, k, s);
        }
        self.b.node("Relu", &format!("{scope}/Relu"), &[&y], vec![])
    }

    /// MaxPool3dSamePadding: SAME Pad (zeros; inputs are post-ReLU) then a valid MaxPool.
    fn pool(
        &mut self,
        scope: &str,
        x: &str,
        k: [usize; 3],
        s: [usize; 3],
        dims: &mut [usize; 3],
    ) -> String {
        let x = self.b.same_pad(scope, x, k, s);
        for a in 0..3 {
            dims[a] = same_len(dims[a], k[a], s[a]);
        }
        self.b.node(
            "MaxPool",
            &format!("{scope}/MaxPool"),
            &[&x],
            vec![
                ("ceil_mode", Attr::Int(0)),
                (
                    "kernel_shape",
                    Attr::Ints(k.iter().map(|&v| v as i64).collect()),
                ),
                ("pads", Attr::Ints(vec![0; 6])),
                ("strides", Attr::Ints(s.iter().map(|&v| v as i64).collect())),
            ],
        )
    }

    fn mixed(
        &mut self,
        name: &str,
        x: &str,
        cin: usize,
        o: [usize; 6],
        dims: &mut [usize; 3],
    ) -> (String, usize) {
        let o = o.map(|c| self.ch(c));
        let d0 = *dims;
        let mut dd = d0;
        let b0 = self.unit(&format!("/{name}/b0"), x, (cin, o[0]), (1, 1), &mut dd);
        let mut dd = d0;
        let b1 = self.unit(&format!("/{name}/b1a"), x, (cin, o[1]), (1, 1), &mut dd);
        let b1 = self.unit(&format!("/{name}/b1b"), &b1, (o[1], o[2]), (3, 1), &mut dd);
        let mut dd = d0;
        let b2 = self.unit(&format!("/{name}/b2a"), x, (cin, o[3]), (1, 1), &mut dd);
        let b2 = self.unit(&format!("/{name}/b2b"), &b2, (o[3], o[4]), (3, 1), &mut dd);
        let mut dd = d0;
        let b3 = self.pool(&format!("/{name}/b3a"), x, [3; 3], [1; 3], &mut dd);
        let b3 = self.unit(&format!("/{name}/b3b"), &b3, (cin, o[5]), (1, 1), &mut dd);
        let y = self.b.node(
            "Concat",
            &format!("/{name}/Concat"),
            &[&b0, &b1, &b2, &b3],
            vec![("axis", Attr::Int(1))],
        );
        (y, o[0] + o[2] + o[4] + o[5])
    }
}

/// Builds an I3D variant.
pub fn build(v: &Variant, classes: usize, seed: u64) -> ModelProto {
    let mut n = Net {
        b: OnnxBuilder::new(),
        init: Init::new(seed),
        div: v.width_div,
        v,
    };
    let mut dims = [n.v.frames, n.v.size, n.v.size];
    let c64 = n.ch(64);
    let x = n.unit("/Conv3d_1a_7x7", "input", (3, c64), (7, 2), &mut dims);
    let x = n.pool("/MaxPool3d_2a_3x3", &x, [1, 3, 3], [1, 2, 2], &mut dims);
    let x = n.unit("/Conv3d_2b_1x1", &x, (c64, c64), (1, 1), &mut dims);
    let c192 = n.ch(192);
    let x = n.unit("/Conv3d_2c_3x3", &x, (c64, c192), (3, 1), &mut dims);
    let x = n.pool("/MaxPool3d_3a_3x3", &x, [1, 3, 3], [1, 2, 2], &mut dims);
    let (x, c) = n.mixed("Mixed_3b", &x, c192, [64, 96, 128, 16, 32, 32], &mut dims);
    let (x, c) = n.mixed("Mixed_3c", &x, c, [128, 128, 192, 32, 96, 64], &mut dims);
    let x = n.pool("/MaxPool3d_4a_3x3", &x, [3, 3, 3], [2, 2, 2], &mut dims);
    let (x, c) = n.mixed("Mixed_4b", &x, c, [192, 96, 208, 16, 48, 64], &mut dims);
    let (x, c) = n.mixed("Mixed_4c", &x, c, [160, 112, 224, 24, 64, 64], &mut dims);
    let (x, c) = n.mixed("Mixed_4d", &x, c, [128, 128, 256, 24, 64, 64], &mut dims);
    let (x, c) = n.mixed("Mixed_4e", &x, c, [112, 144, 288, 32, 64, 64], &mut dims);
    let (x, c) = n.mixed("Mixed_4f", &x, c, [256, 160, 320, 32, 128, 128], &mut dims);
    let x = n.pool("/MaxPool3d_5a_2x2", &x, [2, 2, 2], [2, 2, 2], &mut dims);
    let (x, c) = n.mixed("Mixed_5b", &x, c, [256, 160, 320, 32, 128, 128], &mut dims);
    let (x, c) = n.mixed("Mixed_5c", &x, c, [384, 192, 384, 48, 128, 128], &mut dims);
    // nn.AvgPool3d([2, 7, 7], stride=1), clipped to what is left at smaller inputs.
    let k = [dims[0].min(2), dims[1].min(7), dims[2].min(7)];
    let x = n.b.node(
        "AveragePool",
        "/avg_pool/AveragePool",
        &[&x],
        vec![
            ("ceil_mode", Attr::Int(0)),
            ("count_include_pad", Attr::Int(0)),
            (
                "kernel_shape",
                Attr::Ints(k.iter().map(|&v| v as i64).collect()),
            ),
            ("pads", Attr::Ints(vec![0; 6])),
            ("strides", Attr::Ints(vec![1; 3])),
        ],
    );
    let x = n.b.node("Dropout", "/dropout/Dropout", &[&x], vec![]);
    let w = n.b.param(
        "logits.conv3d.weight",
        &[classes, c, 1, 1, 1],
        &n.init.he(classes * c, c),
    );
    let bias =
        n.b.param("logits.conv3d.bias", &[classes], &n.init.bias(classes));
    let x = n.b.node(
        "Conv",
        "/logits/conv3d/Conv",
        &[&x, &w, &bias],
        vec![
            ("dilations", Attr::Ints(vec![1; 3])),
            ("group", Attr::Int(1)),
            ("kernel_shape", Attr::Ints(vec![1; 3])),
            ("pads", Attr::Ints(vec![0; 6])),
            ("strides", Attr::Ints(vec![1; 3])),
        ],
    );
    // logits.squeeze(3).squeeze(3), then torch.mean(logits, dim=2).
    let a3 = n.b.const_i64(&[1], &[3]);
    let x = n.b.node("Squeeze", "/Squeeze", &[&x, &a3], vec![]);
    let x = n.b.node("Squeeze", "/Squeeze_1", &[&x, &a3], vec![]);
    let x = n.b.node(
        "ReduceMean",
        "/ReduceMean",
        &[&x],
        vec![("axes", Attr::Ints(vec![2])), ("keepdims", Attr::Int(0))],
    );
    let resize = ((v.size * 256).div_ceil(224), (v.size * 340).div_ceil(224));
    n.b.metadata("c3d.preprocess", format!(
        "{{\"frames\":{},\"resize\":[{},{}],\"crop\":[{},{}],\"pixel_scale\":{},\"mean\":[1.0,1.0,1.0],\"std\":[1.0,1.0,1.0],\"channel_order\":\"Rgb\"}}",
        v.frames, resize.0, resize.1, v.size, v.size, 2.0f32 / 255.0
    ));
    n.b.metadata("c3d.model", v.name.to_string());
    let input_dims = [1, 3, v.frames as i64, v.size as i64, v.size as i64];
    n.b.finish(v.name, ("input", &input_dims), (&x, &[1, classes as i64]))
}
