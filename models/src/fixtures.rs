//! Small models written the way PyTorch's exporter writes them, committed under
//! `tests/fixtures/` so that the frontend is tested on exporter idioms: BatchNormalization,
//! Dropout, Identity, Pad through Shape chains, Gemm with and without transB, MatMul + Add,
//! Flatten, Squeeze, ReduceMean, Concat, Add, AveragePool with count_include_pad, If with a
//! condition that folds to a constant, Softmax.

use crate::onnx_builder::{Attr, OnnxBuilder};
use crate::weights::Init;
use tract_onnx::pb::ModelProto;

/// A convolution of the fixtures: channels, cubic kernel, stride, padding, bias.
struct Spec {
    cin: usize,
    cout: usize,
    k: usize,
    s: usize,
    p: usize,
    bias: bool,
}

fn conv(b: &mut OnnxBuilder, init: &mut Init, name: &str, x: &str, c: Spec) -> String {
    let Spec {
        cin,
        cout,
        k,
        s,
        p,
        bias,
    } = c;
    let fan = cin * k * k * k;
    let w = b.param(
        &format!("{name}.weight"),
        &[cout, cin, k, k, k],
        &init.he(cout * fan, fan),
    );
    let mut ins = vec![x.to_string(), w];
    if bias {
        ins.push(b.param(&format!("{name}.bias"), &[cout], &init.bias(cout)));
    }
    let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
    b.node(
        "Conv",
        &format!("/{name}/Conv"),
        &ins,
        vec![
            ("dilations", Attr::Ints(vec![1; 3])),
            ("group", Attr::Int(1)),
            ("kernel_shape", Attr::Ints(vec![k as i64; 3])),
            ("pads", Attr::Ints(vec![p as i64; 6])),
            ("strides", Attr::Ints(vec![s as i64; 3])),
        ],
    )
}

fn bn(b: &mut OnnxBuilder, init: &mut Init, name: &str, x: &str, c: usize) -> String {
    let [g, bt, m, v] = init.batchnorm(c);
    let g = b.param(&format!("{name}.weight"), &[c], &g);
    let bt = b.param(&format!("{name}.bias"), &[c], &bt);
    let m = b.param(&format!("{name}.running_mean"), &[c], &m);
    let v = b.param(&format!("{name}.running_var"), &[c], &v);
    b.node(
        "BatchNormalization",
        &format!("/{name}/BatchNormalization"),
        &[x, &g, &bt, &m, &v],
        vec![
            ("epsilon", Attr::Float(1e-5)),
            ("momentum", Attr::Float(0.9)),
        ],
    )
}

/// A C3D-like micro network: Conv+BN+ReLU, MaxPool, SAME Pad via Shape, Conv, Flatten,
/// Dropout, Gemm (transB=1), Identity, Gemm (transB=0), Softmax on the last axis.
pub fn c3d_micro(seed: u64) -> ModelProto {
    let mut b = OnnxBuilder::new();
    let mut init = Init::new(seed);
    let x = conv(
        &mut b,
        &mut init,
        "features.0",
        "input",
        Spec {
            cin: 3,
            cout: 4,
            k: 3,
            s: 1,
            p: 1,
            bias: true,
        },
    );
    let x = bn(&mut b, &mut init, "features.1", &x, 4);
    let x = b.node("Relu", "/features/features.2/Relu", &[&x], vec![]);
    let x = b.node(
        "MaxPool",
        "/features/features.3/MaxPool",
        &[&x],
        vec![
            ("ceil_mode", Attr::Int(0)),
            ("kernel_shape", Attr::Ints(vec![1, 2, 2])),
            ("pads", Attr::Ints(vec![0; 6])),
            ("strides", Attr::Ints(vec![1, 2, 2])),
        ],
    );
    let x = b.same_pad("/features/pad", &x, [3, 3, 3], [1, 1, 1]);
    let x = conv(
        &mut b,
        &mut init,
        "features.4",
        &x,
        Spec {
            cin: 4,
            cout: 6,
            k: 3,
            s: 1,
            p: 0,
            bias: false,
        },
    );
    let x = b.node("Relu", "/features/features.5/Relu", &[&x], vec![]);
    let x = b.node("Flatten", "/Flatten", &[&x], vec![("axis", Attr::Int(1))]);
    let x = b.node("Dropout", "/classifier/classifier.0/Dropout", &[&x], vec![]);
    let feat = 6 * 4 * 4 * 4;
    let w = b.param(
        "classifier.1.weight",
        &[16, feat],
        &init.he(16 * feat, feat),
    );
    let bias = b.param("classifier.1.bias", &[16], &init.bias(16));
    let x = b.node(
        "Gemm",
        "/classifier/classifier.1/Gemm",
        &[&x, &w, &bias],
        vec![
            ("alpha", Attr::Float(1.0)),
            ("beta", Attr::Float(1.0)),
            ("transB", Attr::Int(1)),
        ],
    );
    let x = b.node("Relu", "/classifier/classifier.2/Relu", &[&x], vec![]);
    let x = b.node("Identity", "/classifier/Identity", &[&x], vec![]);
    let w = b.param("onnx::Gemm_77", &[16, 5], &init.he(16 * 5, 16));
    let bias = b.param("classifier.3.bias", &[5], &init.bias(5));
    let x = b.node(
        "Gemm",
        "/classifier/classifier.3/Gemm",
        &[&x, &w, &bias],
        vec![("alpha", Attr::Float(1.0)), ("beta", Attr::Float(1.0))],
    );
    let x = b.node("Softmax", "/Softmax", &[&x], vec![("axis", Attr::Int(-1))]);
    b.finish("c3d_micro", ("input", &[1, 3, 4, 8, 8]), (&x, &[1, 5]))
}

/// A branched micro network: strided Conv, two branches (1x1 Conv; AveragePool with
/// count_include_pad then 1x1 Conv) joined by Concat, a residual Add, ReduceMean over space,
/// Squeeze, an If whose condition folds from Shape, Flatten, MatMul + Add.
pub fn branches_micro(seed: u64) -> ModelProto {
    let mut b = OnnxBuilder::new();
    let mut init = Init::new(seed);
    let x = conv(
        &mut b,
        &mut init,
        "stem",
        "input",
        Spec {
            cin: 3,
            cout: 6,
            k: 3,
            s: 2,
            p: 1,
            bias: true,
        },
    );
    let x = b.node("Relu", "/stem/Relu", &[&x], vec![]);
    let a = conv(
        &mut b,
        &mut init,
        "branch_a",
        &x,
        Spec {
            cin: 6,
            cout: 4,
            k: 1,
            s: 1,
            p: 0,
            bias: true,
        },
    );
    let a = b.node("Relu", "/branch_a/Relu", &[&a], vec![]);
    let p = b.node(
        "AveragePool",
        "/branch_b/AveragePool",
        &[&x],
        vec![
            ("ceil_mode", Attr::Int(0)),
            ("count_include_pad", Attr::Int(1)),
            ("kernel_shape", Attr::Ints(vec![3; 3])),
            ("pads", Attr::Ints(vec![1; 6])),
            ("strides", Attr::Ints(vec![1; 3])),
        ],
    );
    let p = conv(
        &mut b,
        &mut init,
        "branch_b",
        &p,
        Spec {
            cin: 6,
            cout: 4,
            k: 1,
            s: 1,
            p: 0,
            bias: true,
        },
    );
    let p = b.node("Relu", "/branch_b/Relu", &[&p], vec![]);
    let cat = b.node("Concat", "/Concat", &[&a, &p], vec![("axis", Attr::Int(1))]);
    let r = conv(
        &mut b,
        &mut init,
        "shortcut",
        &x,
        Spec {
            cin: 6,
            cout: 8,
            k: 1,
            s: 1,
            p: 0,
            bias: false,
        },
    );
    let r = bn(&mut b, &mut init, "shortcut_bn", &r, 8);
    let y = b.node("Add", "/Add", &[&cat, &r], vec![]);
    let y = b.node("Relu", "/Relu", &[&y], vec![]);
    let y = b.node(
        "ReduceMean",
        "/ReduceMean",
        &[&y],
        vec![("axes", Attr::Ints(vec![3, 4])), ("keepdims", Attr::Int(1))],
    );
    let ax = b.const_i64(&[2], &[3, 4]);
    let y = b.node("Squeeze", "/Squeeze", &[&y, &ax], vec![]);
    // if x.shape[1] == 8: y = relu(y) else: y (scripted control flow; the condition folds).
    let shape = b.node("Shape", "/Shape", &[&y], vec![]);
    let one = b.const_i64(&[], &[1]);
    let ch = b.node(
        "Gather",
        "/Gather",
        &[&shape, &one],
        vec![("axis", Attr::Int(0))],
    );
    let eight = b.const_i64(&[], &[8]);
    let cond = b.node("Equal", "/Equal", &[&ch, &eight], vec![]);
    let mut then_b = OnnxBuilder::new();
    let t = then_b.node("Relu", "/If/then/Relu", &[&y], vec![]);
    let mut else_b = OnnxBuilder::new();
    let e = else_b.node("Identity", "/If/else/Identity", &[&y], vec![]);
    let then_g = then_b.into_subgraph("then_branch", &[(&t, &[1, 8, 2])]);
    let else_g = else_b.into_subgraph("else_branch", &[(&e, &[1, 8, 2])]);
    let y = b.node(
        "If",
        "/If",
        &[&cond],
        vec![
            ("then_branch", Attr::Graph(then_g)),
            ("else_branch", Attr::Graph(else_g)),
        ],
    );
    let y = b.node("Flatten", "/Flatten", &[&y], vec![("axis", Attr::Int(1))]);
    let w = b.param("onnx::MatMul_91", &[16, 7], &init.he(16 * 7, 16));
    let y = b.node("MatMul", "/fc/MatMul", &[&y, &w], vec![]);
    let bias = b.param("fc.bias", &[7], &init.bias(7));
    let y = b.node("Add", "/fc/Add", &[&bias, &y], vec![]);
    b.finish("branches_micro", ("input", &[1, 3, 4, 8, 8]), (&y, &[1, 7]))
}
