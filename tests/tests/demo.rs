//! The main job's demo on the bundled trained model: the bundled clips decode to exactly the
//! data set's test clips, every one is classified correctly by the secure run, and the secure
//! output equals the plaintext fixed-point simulation's bit for bit.

use c3d_models::motion::{clip, TEST_SEED};
use c3d_runtime::party::{Server, ServerConfig};
use c3d_tests::demo::{clip_path, read_manifest, render_clip, run_clip};
use c3d_tests::{argmax, compile_default};
use std::net::TcpListener;
use std::path::PathBuf;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/clips/motion/manifest.json")
}

fn model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/motion/c3d-motion.onnx")
}

#[test]
fn the_bundled_clips_decode_to_the_data_sets_test_clips() {
    let m = read_manifest(&manifest()).unwrap();
    assert_eq!(m.clips.len(), 6, "one clip per class");
    let c = compile_default(&model());
    let shape = &c.plan.graph.node(c.plan.graph.io().unwrap().0).shape;
    let mut labels: Vec<&str> = Vec::new();
    for e in &m.clips {
        assert_eq!(e.split, "test");
        let want = clip(TEST_SEED, e.index);
        assert_eq!(
            c3d_models::motion::CLASSES[want.label],
            e.label,
            "{}: the manifest's label is the data set's",
            e.file
        );
        let got = c3d_runtime::video::load_clip(
            &clip_path(&manifest(), e),
            &c.plan.meta.preprocess,
            shape,
        )
        .unwrap();
        assert_eq!(got.data, want.input(), "{}: decoded pixels differ", e.file);
        labels.push(&e.label);
    }
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), 6, "every class once");
}

#[test]
fn the_demo_classifies_every_bundled_clip_correctly_and_equals_the_simulation() {
    let m = read_manifest(&manifest()).unwrap();
    let c = compile_default(&model());
    assert_eq!(c.plan.meta.class_names.len(), 6, "class names in the plan");
    let server = Server::new(c.plan.clone(), &c.weights)
        .unwrap()
        .with_config(ServerConfig {
            sessions: Some(m.clips.len()),
            memory_limit: Some(8_000_000_000),
            ..ServerConfig::default()
        })
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let t = std::thread::spawn(move || server.serve(listener).unwrap());
    for e in &m.clips {
        let r = run_clip(&c.plan, &c.weights, &manifest(), e, &addr).unwrap();
        let shown = render_clip(&r, 3);
        assert!(r.equal(), "{shown}");
        assert!(r.correct(), "{shown}");
        // Independently of the library's ranking: the simulation's argmax is the true class.
        assert_eq!(
            c.plan.meta.class_names[argmax(&r.plain)],
            e.label,
            "{shown}"
        );
        assert!(shown.contains(&format!("true label `{}`", e.label)));
        assert_eq!(r.secure.top.len(), 6);
    }
    t.join().unwrap();
}
