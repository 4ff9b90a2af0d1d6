//! Separable max-pooling: a max over a D x H x W window is the max along W, then along H, then
//! along D, each pass with its own axis's stride, dilation, padding and rounding. In garbled
//! circuits a window of T valid taps costs a fixed part plus 5 n AND gates per extra tap, so
//! I3D's 3x3x3 stride-1 branch pools (27 taps, about 5.6 k AND gates per output at a 41-bit
//! prime) cost about 2.1 k as three passes of 3. The split is exact: the valid taps of a
//! window are the product of its per-axis valid taps, and truncation and ReLU are monotone, so
//! they commute with the max and stay on the last pass. Each pool is split only where the
//! cost model's AND count says the chain is cheaper (a pass is its own garbled layer, with its
//! own fixed cost per output).

use crate::cost::gc_unit_ands;
use c3d_ir::fixed::DELPHI_PRIME;
use c3d_ir::op::Window3d;
use c3d_ir::{Graph, Model, NodeId, Op, Shape};
use std::collections::HashMap;

/// What the pass did.
#[derive(Clone, Debug, Default)]
pub struct SeparableReport {
    /// Pools split into per-axis passes.
    pub split: usize,
    /// The cost model's AND gates of the pools before and after, at Delphi's prime.
    pub ands: (u64, u64),
}

/// Garbled AND gates of a max-pool (fused with ReLU or not) on `input`, at Delphi's prime and
/// a typical truncation: units pay the fixed part, extra taps 5 n each.
fn pool_ands(win: &Window3d, relu: bool, input: &Shape) -> Option<(u64, Shape)> {
    let (n, c, d, h, w) = input.ncdhw()?;
    let [od, oh, ow] = win.out_dims([d, h, w]).ok()?;
    let out = Shape::new(vec![n, c, od, oh, ow]);
    let units = out.numel() as u64;
    let op = Op::MaxPool3d(win.clone());
    let taps = op.comparisons(&[input], &out) + units;
    let bits = 64 - DELPHI_PRIME.leading_zeros() as u64;
    let and = units * gc_unit_ands(DELPHI_PRIME, 12, 1, relu) + (taps - units) * 5 * bits;
    Some((and, out))
}

/// The per-axis windows of `win` with their axis (0 = D, 1 = H, 2 = W), W first (spatial
/// strides shrink the later passes), axes with a one-tap kernel and unit stride left out.
fn axis_windows(win: &Window3d) -> Vec<(usize, Window3d)> {
    [2usize, 1, 0]
        .into_iter()
        .filter(|&a| win.kernel[a] > 1 || win.stride[a] > 1)
        .map(|a| {
            let mut w = Window3d::dense([1, 1, 1]);
            w.kernel[a] = win.kernel[a];
            w.stride[a] = win.stride[a];
            w.dilation[a] = win.dilation[a];
            w.pads[a] = win.pads[a];
            w.ceil_mode = win.ceil_mode;
            (a, w)
        })
        .collect()
}

/// A pool's AND gates as it is, and the chain of per-axis passes with its AND gates when the
/// chain is cheaper.
type SplitPlan = (u64, Option<(Vec<(usize, Window3d)>, u64)>);

/// Costs a pool whole and, where at least two axes have more than one tap, as a chain.
fn plan_split(win: &Window3d, relu: bool, input: &Shape) -> Option<SplitPlan> {
    let (whole, want) = pool_ands(win, relu, input)?;
    let axes = axis_windows(win);
    if axes
        .iter()
        .filter(|(_, w)| w.kernel.iter().product::<usize>() > 1)
        .count()
        < 2
    {
        return Some((whole, None));
    }
    let mut shape = input.clone();
    let mut chain = 0;
    for (i, (_, w)) in axes.iter().enumerate() {
        let (a, s) = pool_ands(w, relu && i + 1 == axes.len(), &shape)?;
        chain += a;
        shape = s;
    }
    // The chain must land on the pool's own output shape (it does whenever the per-axis
    // output lengths agree, which they do by construction; checked, not assumed).
    let cheaper = shape == want && chain < whole;
    Some((whole, cheaper.then_some((axes, chain))))
}

/// Splits every max-pool that the split makes cheaper. Node names stay: the last pass of a
/// split pool keeps the pool's name, the others are named `POOL/max_w`, `POOL/max_h`.
pub fn separate_pools(model: &Model) -> Result<(Model, SeparableReport), c3d_ir::IrError> {
    let g = &model.graph;
    let mut out = Graph::new();
    let mut map: HashMap<NodeId, NodeId> = HashMap::new();
    let mut weights = std::collections::BTreeMap::new();
    let mut rep = SeparableReport::default();
    for id in g.topo_order()? {
        let node = g.node(id);
        let ins: Vec<NodeId> = g.inputs_of(id).iter().map(|i| map[i]).collect();
        let plan = match &node.op {
            Op::MaxPool3d(w) => Some((w, false)),
            Op::MaxPoolRelu3d(w) => Some((w, true)),
            _ => None,
        }
        .and_then(|(w, relu)| {
            let input = &g.node(g.inputs_of(id)[0]).shape;
            plan_split(w, relu, input).map(|p| (relu, p))
        });
        if let Some((_, (whole, chain))) = &plan {
            rep.ands.0 += whole;
            rep.ands.1 += chain.as_ref().map_or(*whole, |(_, c)| *c);
        }
        let new = match (&node.op, plan) {
            (Op::Input, _) => out.add_input(node.name.clone(), node.shape.clone()),
            (_, Some((relu, (_, Some((axes, _)))))) => {
                rep.split += 1;
                let mut x = ins[0];
                for (i, (a, w)) in axes.iter().enumerate() {
                    let last = i + 1 == axes.len();
                    let (name, op) = if last {
                        let op = if relu {
                            Op::MaxPoolRelu3d(w.clone())
                        } else {
                            Op::MaxPool3d(w.clone())
                        };
                        (node.name.clone(), op)
                    } else {
                        let axis = ["d", "h", "w"][*a];
                        (
                            format!("{}/max_{axis}", node.name),
                            Op::MaxPool3d(w.clone()),
                        )
                    };
                    let shape = last.then(|| node.shape.clone());
                    x = out.add(name, op, &[x], shape)?;
                }
                x
            }
            _ => out.add(
                node.name.clone(),
                node.op.clone(),
                &ins,
                Some(node.shape.clone()),
            )?,
        };
        if let Some(wb) = model.weights.get(&id) {
            weights.insert(new, wb.clone());
        }
        map.insert(id, new);
    }
    out.set_outputs(g.outputs().iter().map(|o| map[o]).collect());
    out.validate()?;
    Ok((
        Model {
            graph: out,
            weights,
            meta: model.meta.clone(),
        },
        rep,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use c3d_ir::eval_float::eval_float;
    use c3d_ir::Tensor;
    use rand::{Rng, SeedableRng};

    fn model_with(win: Window3d, relu: bool, input: [usize; 5]) -> Model {
        let mut g = Graph::new();
        let x = g.add_input("x", Shape::new(input.to_vec()));
        let op = if relu {
            Op::MaxPoolRelu3d(win)
        } else {
            Op::MaxPool3d(win)
        };
        let y = g.add("pool", op, &[x], None).unwrap();
        g.set_outputs(vec![y]);
        let meta = c3d_ir::ModelMeta {
            name: "pool".into(),
            producer: String::new(),
            preprocess: c3d_ir::Preprocess::default_for(&Shape::new(input.to_vec())),
            class_names: vec![],
            approx: vec![],
        };
        Model {
            graph: g,
            weights: Default::default(),
            meta,
        }
    }

    fn win(
        kernel: [usize; 3],
        stride: [usize; 3],
        pads: [(usize, usize); 3],
        ceil: bool,
    ) -> Window3d {
        Window3d {
            kernel,
            stride,
            dilation: [1; 3],
            pads,
            ceil_mode: ceil,
        }
    }

    #[test]
    fn split_pools_equal_the_pool_exactly() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut dilated = win([2, 3, 3], [1, 2, 1], [(0, 1), (2, 2), (1, 1)], false);
        dilated.dilation = [1, 2, 1];
        let cases = [
            // I3D's branch pool: 3x3x3, stride 1, SAME padding.
            (
                win([3, 3, 3], [1; 3], [(1, 1); 3], false),
                false,
                [1, 3, 4, 6, 6],
            ),
            // Fused with ReLU, uneven padding; 3x3x3 with a W stride of 2 in ceil mode.
            (
                win([1, 3, 3], [1; 3], [(0, 0), (0, 1), (1, 1)], false),
                true,
                [1, 2, 3, 9, 8],
            ),
            (
                win([3, 3, 3], [1, 1, 2], [(0, 1); 3], true),
                true,
                [1, 2, 5, 7, 7],
            ),
            (dilated, false, [1, 2, 4, 9, 6]),
        ];
        for (k, (w, relu, shape)) in cases.into_iter().enumerate() {
            let m = model_with(w, relu, shape);
            let (s, rep) = separate_pools(&m).unwrap();
            assert_eq!(rep.split, 1, "case {k} is split");
            assert!(rep.ands.1 < rep.ands.0, "case {k}: {:?}", rep.ands);
            assert!(s.graph.len() > m.graph.len(), "case {k}");
            let n: usize = shape.iter().product();
            let x = Tensor::new(
                Shape::new(shape.to_vec()),
                (0..n).map(|_| rng.random_range(-4.0f32..4.0)).collect(),
            );
            let want = eval_float(&m, x.clone(), |_, _| {}).unwrap();
            let got = eval_float(&s, x, |_, _| {}).unwrap();
            assert_eq!(got.shape, want.shape, "case {k}");
            assert_eq!(got.data, want.data, "case {k}");
            // The pool's name stays on its last pass.
            let (_, o) = s.graph.io().unwrap();
            assert_eq!(s.graph.node(o).name, "pool");
        }
    }

    #[test]
    fn pools_that_do_not_pay_stay_whole() {
        // I3D's stem pool, 1x3x3 stride 1x2x2: the W pass would have 2.25 times the outputs.
        let m = model_with(
            win([1, 3, 3], [1, 2, 2], [(0, 0), (0, 1), (0, 1)], false),
            true,
            [1, 2, 3, 9, 8],
        );
        assert_eq!(separate_pools(&m).unwrap().1.split, 0);
        // A 1x2x2 window: one pass of 4 taps is cheaper than two passes of 2.
        let m = model_with(
            win([1, 2, 2], [1, 2, 2], [(0, 0); 3], false),
            true,
            [1, 2, 2, 8, 8],
        );
        let (s, rep) = separate_pools(&m).unwrap();
        assert_eq!(rep.split, 0);
        assert_eq!(s.graph.len(), m.graph.len());
    }
}
