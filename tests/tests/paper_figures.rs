//! The generated full-size C3D is Tran et al.'s network: its work matches the figures the
//! design brief quotes (about 38.5 G multiply-adds and 23 M ReLUs per 3x16x112x112 clip), and
//! its shapes are the paper's (pool5 gives 512x1x4x4 = 8192 features for fc6).

use c3d_compiler::{import_file, ImportOptions};
use c3d_ir::{Op, Shape};
use c3d_tests::export;

#[test]
fn full_c3d_has_the_papers_shapes_and_work() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = export(dir.path(), "c3d", None, 1);
    let (m, _) = import_file(&onnx, &ImportOptions::default()).unwrap();
    let g = &m.graph;
    let (mut macs, mut relus) = (0u64, 0u64);
    let mut fc_in = Vec::new();
    for id in g.topo_order().unwrap() {
        let n = g.node(id);
        let ins: Vec<&Shape> = g.inputs_of(id).iter().map(|&i| &g.node(i).shape).collect();
        macs += n.op.macs(&ins, &n.shape);
        if matches!(n.op, Op::Relu) {
            relus += n.shape.numel() as u64;
        }
        if let Op::Linear {
            in_features,
            out_features,
        } = n.op
        {
            fc_in.push((in_features, out_features));
        }
    }
    assert_eq!(fc_in, vec![(8192, 4096), (4096, 4096), (4096, 487)]);
    let gmacs = macs as f64 / 1e9;
    let mrelu = relus as f64 / 1e6;
    eprintln!("C3D: {gmacs:.2} G multiply-adds, {mrelu:.2} M ReLUs");
    assert!((gmacs - 38.5).abs() < 0.5, "{gmacs} G multiply-adds");
    assert!((mrelu - 23.0).abs() < 0.5, "{mrelu} M ReLUs");
}
