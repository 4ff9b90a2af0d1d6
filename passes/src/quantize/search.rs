//! The (p, f) search: the smallest candidate prime, and then the largest uniform f, for which
//! every bound of the layout fits in (-p/2, p/2); then a higher top scale where only the
//! segments that would overflow get lower activation scales ([`raise`]), never below the
//! uniform f.

use super::layout::{layout, Inputs, Layout};
use super::{QuantConfig, QuantError};
use c3d_ir::fixed::FixedPoint;
use c3d_ir::op::OpClass;
use c3d_ir::{Graph, NodeId, Protocol};
use std::collections::{HashMap, HashSet};

/// Tries every (p, f) in order, primes ascending and f descending; returns the first that
/// fits, raised where it can be (unless f is forced), or the failure of the last candidate.
pub(crate) fn search(
    inp: &Inputs,
    cfg: &QuantConfig,
    primes: &[u64],
    fs: &[u32],
    progress: &mut impl FnMut(&str),
) -> Result<(FixedPoint, Layout), QuantError> {
    let none = HashMap::new();
    let mut last_fail = None;
    for &p in primes {
        for &f in fs {
            let fx = FixedPoint { p, frac_bits: f };
            let lay = layout(inp, fx, &none)?;
            let (_, wname, wh) = lay.worst.clone().expect("a graph has nodes");
            if wh >= 0.0 {
                if cfg.frac_bits.is_none() {
                    if let Some(better) = raise(inp, cfg, fx, progress)? {
                        return Ok(better);
                    }
                }
                return Ok((fx, lay));
            }
            last_fail = Some(QuantError::NoFit {
                p,
                f,
                layer: wname,
                need: (fx.max_signed() as f64).log2() - wh,
                have: (fx.max_signed() as f64).log2(),
            });
        }
    }
    Err(last_fail.expect("at least one candidate tried"))
}

/// The scale knobs behind `id`'s magnitude: first the input and non-linear nodes whose outputs
/// feed it through linear and local ops only, then the linear layers on the way. Lowering any
/// of them by a bit lowers `id`'s magnitude by a bit.
pub(crate) fn segment_knobs(
    g: &Graph,
    id: NodeId,
    protocols: &HashMap<NodeId, Protocol>,
) -> (Vec<NodeId>, Vec<NodeId>) {
    let (mut sources, mut linear) = (Vec::new(), Vec::new());
    let mut stack = vec![id];
    let mut seen = HashSet::new();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        let squared = protocols.get(&n) == Some(&Protocol::BeaverSquare);
        match g.node(n).op.class() {
            // A square keeps no scale of its own: the knobs are behind it.
            OpClass::NonLinear if squared => stack.extend(g.inputs_of(n)),
            OpClass::NonLinear | OpClass::Input => sources.push(n),
            class => {
                if class == OpClass::SecretLinear {
                    linear.push(n);
                }
                stack.extend(g.inputs_of(n));
            }
        }
    }
    (sources, linear)
}

/// Given a uniform f* that fits p, looks for a higher top scale: weights and activations start
/// at f_top, and only the segments that would overflow get lower activation scales, never below
/// f*. Every layer keeps at least the uniform precision; most get more.
fn raise(
    inp: &Inputs,
    cfg: &QuantConfig,
    base: FixedPoint,
    progress: &mut impl FnMut(&str),
) -> Result<Option<(FixedPoint, Layout)>, QuantError> {
    let floor = base.frac_bits;
    let g = &inp.model.graph;
    let acts: Vec<NodeId> = g
        .topo_order()?
        .into_iter()
        .filter(|&n| {
            matches!(
                g.node(n).op.class(),
                OpClass::NonLinear | OpClass::Input | OpClass::SecretLinear
            )
        })
        .collect();
    for top in (floor + 1..=cfg.max_frac_bits).rev() {
        let fx = FixedPoint {
            p: base.p,
            frac_bits: top,
        };
        let mut act: HashMap<NodeId, u32> = acts.iter().map(|&n| (n, top)).collect();
        // Each round lowers the failing segment by its deficit; bounded by the nodes times the
        // bits between top and floor.
        for _ in 0..=acts.len() * (top - floor) as usize {
            let lay = layout(inp, fx, &act)?;
            let (wid, _, wh) = lay.worst.clone().expect("a graph has nodes");
            if wh >= 0.0 {
                let lowered = act.values().filter(|&&a| a < top).count();
                progress(&format!(
                    "quantize: f = {top} with {lowered} activation or weight scales lowered (none below {floor})"
                ));
                return Ok(Some((fx, lay)));
            }
            // Lower the activations feeding the failing segment first, then its weights.
            let deficit = (-wh).ceil().max(1.0) as u32;
            let (sources, linear) = segment_knobs(g, wid, inp.protocols);
            let mut moved = false;
            for group in [sources, linear] {
                for s in group {
                    let a = act.get_mut(&s).expect("knob has a scale");
                    let new = a.saturating_sub(deficit).max(floor);
                    moved |= new < *a;
                    *a = new;
                }
                if moved {
                    break;
                }
            }
            if !moved {
                break;
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::calibrate;
    use c3d_ir::{Conv3dParams, Model, ModelMeta, Op, Preprocess, Shape, Window3d};

    /// x -> conv -> relu -> conv -> add(relu, conv2) -> relu2: by hand, the knobs behind the
    /// add are the first ReLU (a source) and the second conv (linear); the input and the first
    /// conv sit behind the ReLU, which keeps its own scale.
    fn model() -> Model {
        let shape = Shape::new(vec![1, 2, 1, 3, 3]);
        let mut g = c3d_ir::Graph::new();
        let x = g.add_input("x", shape.clone());
        let conv = |c| {
            Op::Conv3d(Conv3dParams {
                in_channels: c,
                out_channels: 2,
                window: {
                    let mut w = Window3d::dense([1, 3, 3]);
                    w.pads = [(0, 0), (1, 1), (1, 1)];
                    w
                },
            })
        };
        let c1 = g.add("c1", conv(2), &[x], None).unwrap();
        let r1 = g.add("r1", Op::Relu, &[c1], None).unwrap();
        let c2 = g.add("c2", conv(2), &[r1], None).unwrap();
        let a = g.add("add", Op::Add, &[r1, c2], None).unwrap();
        let r2 = g.add("r2", Op::Relu, &[a], None).unwrap();
        g.set_outputs(vec![r2]);
        let mut weights = c3d_ir::FloatWeights::new();
        for (k, c) in [c1, c2].into_iter().enumerate() {
            let w = (0..36)
                .map(|i| ((i * 5 + k) % 7) as f32 / 7.0 - 0.4)
                .collect();
            weights.insert(c, (w, vec![0.1, -0.1]));
        }
        Model {
            graph: g,
            weights,
            meta: ModelMeta {
                name: "knobs".into(),
                producer: String::new(),
                preprocess: Preprocess::default_for(&shape),
                class_names: vec![],
                approx: vec![],
            },
        }
    }

    #[test]
    fn knobs_are_the_sources_and_linear_layers_of_the_segment() {
        let m = model();
        let g = &m.graph;
        let id = |name: &str| {
            g.topo_order()
                .unwrap()
                .into_iter()
                .find(|&n| g.node(n).name == name)
                .unwrap()
        };
        let (sources, linear) = segment_knobs(g, id("add"), &HashMap::new());
        assert_eq!(sources, vec![id("r1")]);
        assert_eq!(linear, vec![id("c2")]);
        // Squared, r1 keeps no scale: the knobs are behind it.
        let sq = HashMap::from([(id("r1"), Protocol::BeaverSquare)]);
        let (mut sources, mut linear) = segment_knobs(g, id("add"), &sq);
        sources.sort();
        linear.sort();
        assert_eq!(sources, vec![id("x")]);
        let mut want = vec![id("c1"), id("c2")];
        want.sort();
        assert_eq!(linear, want);
    }

    /// The uniform search returns the largest f that fits, as a brute-force walk over every f
    /// finds it.
    #[test]
    fn the_uniform_search_keeps_the_largest_f_that_fits() {
        let m = model();
        let cfg = QuantConfig {
            frac_bits: None,
            ..QuantConfig::default()
        };
        let stats = calibrate(&m, &cfg.calibration(), &mut |_| {}).unwrap();
        let protocols = HashMap::new();
        let inp = Inputs {
            model: &m,
            stats: &stats,
            safety: cfg.safety_bits,
            protocols: &protocols,
        };
        // A small prime, so that the large f do not fit.
        let p = c3d_ir::fixed::candidate_primes()[0];
        let fs: Vec<u32> = (1..=24).rev().collect();
        let want = fs
            .iter()
            .copied()
            .find(|&f| {
                let lay = layout(&inp, FixedPoint { p, frac_bits: f }, &HashMap::new()).unwrap();
                lay.worst.unwrap().2 >= 0.0
            })
            .unwrap();
        let forced = QuantConfig {
            frac_bits: Some(want),
            ..cfg
        };
        let (fx, _) = search(&inp, &forced, &[p], &fs, &mut |_| {}).unwrap();
        assert_eq!(fx.frac_bits, want);
        assert!(want < 24, "the prime binds");
    }
}
