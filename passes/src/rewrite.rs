//! E-graph rewrites (egg) that cut the cost of comparisons, on the float model before
//! quantization. Each rule is an exact identity, so the rewritten model computes the same
//! function, and its fixed-point simulation the same integers (tests check both):
//!
//! - `relu(maxpool(x))` and `maxpool(relu(x))` become one fused block `maxpool+relu(x)`:
//!   max(0, max over the window). The same comparisons, but one garbled layer instead of
//!   two: every window pays the share reconstruction, truncation and re-masking once instead
//!   of once per element, and the intermediate tensor is never converted.
//! - `maxpool(pad0(x))` with x >= 0 (a ReLU, or a concat of them) becomes a max-pool whose
//!   window carries the padding (padded taps are ignored): max over zeros and non-negative
//!   values is the max over the values, and the zeros no longer enter the circuit.
//! - `conv(pad0(x))` becomes a convolution with the padding in its window (conv padding is
//!   zeros).
//!
//! ReLUs the user asked to approximate by squaring are left alone. Extraction prefers fewer
//! garbled layers; the cost model reports the saving (`c3dc inspect`).

use c3d_ir::op::{Conv3dParams, Op, Window3d};
use c3d_ir::{FloatWeights, Graph, Model, NodeId};
use egg::{
    rewrite as rw, Analysis, CostFunction, DidMerge, EGraph, Extractor, Id, Language, RecExpr,
    Rewrite, Runner, Subst, Symbol, Var,
};
use std::collections::{BTreeMap, HashMap, HashSet};

pub use lang::Net;

/// The term language (its own module: `define_language!` takes no docs on variants).
mod lang {
    #![allow(missing_docs)]
    use egg::{define_language, Id, Symbol};

    define_language! {
        /// The model as an e-graph term: `(relu name x)`, `(maxpool window x)`,
        /// `(poolrelu window x)` (max(0, max over the window)), `(pad name x)` (zero padding),
        /// `(conv window x)`, `(padwin window pad)` (a window with a Pad node's padding folded
        /// in). Leaves name original nodes (`n<index>`), whose ops give the parameters;
        /// `Other` is any op the rules do not look into, with its inputs.
        pub enum Net {
            "relu" = Relu([Id; 2]),
            "maxpool" = MaxPool([Id; 2]),
            "poolrelu" = PoolRelu([Id; 2]),
            "pad" = Pad([Id; 2]),
            "conv" = Conv([Id; 2]),
            "padwin" = PadWin([Id; 2]),
            Leaf(Symbol),
            Other(Symbol, Vec<Id>),
        }
    }
}

/// What the rewrites did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewriteReport {
    /// Max-pools fused with their ReLU.
    pub fused: usize,
    /// Zero pads folded into a max-pool's or convolution's window.
    pub pads_folded: usize,
    /// Nodes before and after.
    pub nodes: (usize, usize),
}

/// Why a rewritten term could not be turned back into a graph.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// A leaf that names no node.
    #[error("bad leaf {0}")]
    BadLeaf(String),
    /// A node parameter that is not a leaf.
    #[error("expected a node leaf")]
    ExpectedLeaf,
    /// A window parameter that is neither a leaf nor a folded pad.
    #[error("expected a window")]
    ExpectedWindow,
    /// A pad fold whose window no longer fits.
    #[error("a pad fold that does not fit")]
    PadFold,
    /// A parameter where a tensor belongs.
    #[error("a parameter used as a tensor")]
    ParamAsTensor,
    /// A conv term whose leaf is not a convolution.
    #[error("a conv leaf names a convolution")]
    ConvLeaf,
    /// An opaque op whose symbol names no node.
    #[error("bad node symbol {0}")]
    BadSymbol(String),
    /// The rebuilt graph is invalid.
    #[error(transparent)]
    Ir(#[from] c3d_ir::IrError),
}

/// What the rules look up: non-negativity of each e-class's value (sound: only ReLU outputs
/// and ops that keep non-negative inputs non-negative), and the original graph, whose nodes
/// the leaves name (a pad fold must keep the window valid).
#[derive(Default)]
pub struct Facts {
    /// Opaque ops that keep non-negativity (Concat, Reshape), by symbol.
    keeps: HashSet<Symbol>,
    /// The graph being rewritten.
    graph: Graph,
}

impl Analysis<Net> for Facts {
    type Data = bool;

    fn make(eg: &mut EGraph<Net, Self>, n: &Net, _id: Id) -> bool {
        match n {
            Net::Relu(_) | Net::PoolRelu(_) => true,
            Net::MaxPool([_, x]) | Net::Pad([_, x]) => eg[*x].data,
            Net::Other(s, ch) => eg.analysis.keeps.contains(s) && ch.iter().all(|c| eg[*c].data),
            _ => false,
        }
    }

    fn merge(&mut self, a: &mut bool, b: bool) -> DidMerge {
        let old = *a;
        *a = *a || b;
        DidMerge(*a != old, *a != b)
    }
}

fn leaf(i: NodeId) -> Symbol {
    Symbol::from(format!("n{}", i.index()))
}

fn node_of(s: Symbol) -> Option<NodeId> {
    s.as_str()
        .strip_prefix('n')
        .and_then(|v| v.parse::<usize>().ok())
        .map(NodeId::new)
}

/// The original node a parameter e-class names (a plain leaf only).
fn leaf_node(eg: &EGraph<Net, Facts>, id: Id) -> Option<NodeId> {
    eg[id].nodes.iter().find_map(|n| match n {
        Net::Leaf(s) => node_of(*s),
        _ => None,
    })
}

/// The window of a pool or convolution with extra spatial padding from a Pad node, if the
/// Pad touches only D, H, W and the padded window stays valid.
fn padded_window(g: &Graph, op_node: NodeId, pad_node: NodeId) -> Option<Window3d> {
    let mut win = match &g.node(op_node).op {
        Op::MaxPool3d(w) | Op::MaxPoolRelu3d(w) => w.clone(),
        Op::Conv3d(c) => c.window.clone(),
        _ => return None,
    };
    let Op::Pad { pads } = &g.node(pad_node).op else {
        return None;
    };
    if pads.len() != 5 || pads[0] != (0, 0) || pads[1] != (0, 0) {
        return None;
    }
    for a in 0..3 {
        win.pads[a].0 += pads[a + 2].0;
        win.pads[a].1 += pads[a + 2].1;
    }
    // The folded window must give the same output from the unpadded input.
    let input = g.inputs_of(pad_node)[0];
    let (_, _, d, h, w) = g.node(input).shape.ncdhw()?;
    let dims = win.out_dims([d, h, w]).ok()?;
    let (_, _, od, oh, ow) = g.node(op_node).shape.ncdhw()?;
    (dims == [od, oh, ow]).then_some(win)
}

/// Prefers fewer garbled layers, then fewer nodes.
struct FewerLayers;

impl CostFunction<Net> for FewerLayers {
    type Cost = u64;
    fn cost<C: FnMut(Id) -> u64>(&mut self, n: &Net, mut costs: C) -> u64 {
        let own = match n {
            Net::Relu(_) | Net::MaxPool(_) | Net::PoolRelu(_) => 1000,
            Net::Leaf(_) => 0,
            _ => 1,
        };
        n.fold(own, |acc, c| acc.saturating_add(costs(c)))
    }
}

/// Whether the pad fold `(padwin ?w ?ps)` keeps the window valid.
fn pad_fits(eg: &EGraph<Net, Facts>, s: &Subst) -> bool {
    let (w, ps) = ("?w".parse::<Var>().unwrap(), "?ps".parse::<Var>().unwrap());
    match (leaf_node(eg, s[w]), leaf_node(eg, s[ps])) {
        (Some(op), Some(pad)) => padded_window(&eg.analysis.graph, op, pad).is_some(),
        _ => false,
    }
}

/// The rewrite rules, each an exact identity (see the module header).
pub fn rules() -> Vec<Rewrite<Net, Facts>> {
    let x = "?x".parse::<Var>().unwrap();
    vec![
        rw!("relu-after-pool"; "(relu ?n (maxpool ?w ?x))" => "(poolrelu ?w ?x)"),
        rw!("relu-before-pool"; "(maxpool ?w (relu ?n ?x))" => "(poolrelu ?w ?x)"),
        rw!("pad-into-pool"; "(maxpool ?w (pad ?ps ?x))" => "(maxpool (padwin ?w ?ps) ?x)"
            if move |eg: &mut EGraph<Net, Facts>, _: Id, s: &Subst| eg[s[x]].data && pad_fits(eg, s)),
        rw!("pad-into-conv"; "(conv ?w (pad ?ps ?x))" => "(conv (padwin ?w ?ps) ?x)"
            if |eg: &mut EGraph<Net, Facts>, _: Id, s: &Subst| pad_fits(eg, s)),
    ]
}

/// Rewrites a model. `keep` names ReLUs that must stay as they are (squared later).
pub fn rewrite(model: &Model, keep: &[String]) -> Result<(Model, RewriteReport), RewriteError> {
    let g = &model.graph;
    let order = g.topo_order()?;
    let mut an = Facts {
        graph: g.clone(),
        ..Facts::default()
    };
    for &i in &order {
        if matches!(g.node(i).op, Op::Concat { .. } | Op::Reshape) {
            an.keeps.insert(leaf(i));
        }
    }
    let mut eg: EGraph<Net, Facts> = EGraph::new(an);
    let mut class: HashMap<NodeId, Id> = HashMap::new();
    for &i in &order {
        let n = g.node(i);
        let ins: Vec<Id> = g.inputs_of(i).iter().map(|x| class[x]).collect();
        let me = eg.add(Net::Leaf(leaf(i)));
        let e = match &n.op {
            Op::Relu if !keep.contains(&n.name) => Net::Relu([me, ins[0]]),
            Op::MaxPool3d(_) => Net::MaxPool([me, ins[0]]),
            Op::Pad { .. } => Net::Pad([me, ins[0]]),
            Op::Conv3d(_) => Net::Conv([me, ins[0]]),
            _ => Net::Other(leaf(i), ins),
        };
        class.insert(i, eg.add(e));
    }
    let outs: Vec<Id> = g.outputs().iter().map(|o| class[o]).collect();
    let root = eg.add(Net::Other(Symbol::from("outputs"), outs));

    let runner = Runner::default()
        .with_egraph(eg)
        .with_iter_limit(8)
        .with_node_limit(200_000)
        .run(&rules());
    let ext = Extractor::new(&runner.egraph, FewerLayers);
    let (_, best) = ext.find_best(root);
    materialize(model, &best)
}

/// Builds the IR graph of an extracted term.
fn materialize(model: &Model, e: &RecExpr<Net>) -> Result<(Model, RewriteReport), RewriteError> {
    let g = &model.graph;
    let mut out = Graph::new();
    let mut weights: FloatWeights = BTreeMap::new();
    let mut map: Vec<Option<NodeId>> = Vec::with_capacity(e.len());
    let mut rep = RewriteReport::default();
    let nodes = e.as_ref();
    let orig = |id: Id| -> Result<NodeId, RewriteError> {
        match &nodes[usize::from(id)] {
            Net::Leaf(s) => node_of(*s).ok_or_else(|| RewriteError::BadLeaf(s.to_string())),
            _ => Err(RewriteError::ExpectedLeaf),
        }
    };
    // A window parameter: a pool or conv leaf, or one with a Pad folded in.
    let window =
        |id: Id, rep: &mut RewriteReport| -> Result<(NodeId, Option<Window3d>), RewriteError> {
            match &nodes[usize::from(id)] {
                Net::Leaf(_) => Ok((orig(id)?, None)),
                Net::PadWin([a, b]) => {
                    let (op, pad) = (orig(*a)?, orig(*b)?);
                    rep.pads_folded += 1;
                    let w = padded_window(g, op, pad).ok_or(RewriteError::PadFold)?;
                    Ok((op, Some(w)))
                }
                _ => Err(RewriteError::ExpectedWindow),
            }
        };
    let mut outputs = Vec::new();
    for n in nodes {
        let input = |c: &Id| map[usize::from(*c)].ok_or(RewriteError::ParamAsTensor);
        let id = match n {
            Net::Leaf(_) | Net::PadWin(_) => None,
            Net::Relu([name, x]) => {
                let src = g.node(orig(*name)?);
                Some(out.add(src.name.clone(), Op::Relu, &[input(x)?], None)?)
            }
            Net::Pad([p, x]) => {
                let src = g.node(orig(*p)?);
                Some(out.add(src.name.clone(), src.op.clone(), &[input(x)?], None)?)
            }
            Net::MaxPool([w, x]) | Net::PoolRelu([w, x]) => {
                let (pool, win) = window(*w, &mut rep)?;
                let src = g.node(pool);
                let win = win.unwrap_or_else(|| match &src.op {
                    Op::MaxPool3d(w) => w.clone(),
                    _ => unreachable!("a maxpool leaf names a max-pool"),
                });
                let (name, op) = if matches!(n, Net::PoolRelu(_)) {
                    rep.fused += 1;
                    (format!("{}+relu", src.name), Op::MaxPoolRelu3d(win))
                } else {
                    (src.name.clone(), Op::MaxPool3d(win))
                };
                Some(out.add(name, op, &[input(x)?], None)?)
            }
            Net::Conv([w, x]) => {
                let (conv, win) = window(*w, &mut rep)?;
                let src = g.node(conv);
                let Op::Conv3d(cp) = &src.op else {
                    return Err(RewriteError::ConvLeaf);
                };
                let cp = Conv3dParams {
                    window: win.unwrap_or_else(|| cp.window.clone()),
                    ..cp.clone()
                };
                let id = out.add(src.name.clone(), Op::Conv3d(cp), &[input(x)?], None)?;
                if let Some(wb) = model.weights.get(&conv) {
                    weights.insert(id, wb.clone());
                }
                Some(id)
            }
            Net::Other(s, ch) if s.as_str() == "outputs" => {
                outputs = ch.iter().map(input).collect::<Result<_, _>>()?;
                None
            }
            Net::Other(s, ch) => {
                let src_id = node_of(*s).ok_or_else(|| RewriteError::BadSymbol(s.to_string()))?;
                let src = g.node(src_id);
                let id = if matches!(src.op, Op::Input) {
                    out.add_input(src.name.clone(), src.shape.clone())
                } else {
                    let ins: Vec<NodeId> = ch.iter().map(input).collect::<Result<_, _>>()?;
                    out.add(
                        src.name.clone(),
                        src.op.clone(),
                        &ins,
                        Some(src.shape.clone()),
                    )?
                };
                if let Some(wb) = model.weights.get(&src_id) {
                    weights.insert(id, wb.clone());
                }
                Some(id)
            }
        };
        map.push(id);
    }
    out.set_outputs(outputs);
    out.validate()?;
    rep.nodes = (g.len(), out.len());
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
    use c3d_ir::Shape;

    /// Runs the one rule named `name` on `start` over `graph`'s nodes and says whether `want`
    /// ends in the same e-class.
    fn fires(name: &str, graph: Graph, start: &str, want: &str) -> bool {
        let rule: Vec<_> = rules()
            .into_iter()
            .filter(|r| r.name.as_str() == name)
            .collect();
        assert_eq!(rule.len(), 1, "one rule named {name}");
        let facts = Facts {
            graph,
            ..Facts::default()
        };
        let (start, want): (RecExpr<Net>, RecExpr<Net>) =
            (start.parse().unwrap(), want.parse().unwrap());
        let mut eg = EGraph::new(facts);
        let root = eg.add_expr(&start);
        let runner = Runner::default()
            .with_egraph(eg)
            .with_iter_limit(4)
            .run(&rule);
        runner.egraph.lookup_expr(&want) == Some(runner.egraph.find(root))
    }

    /// x (1,1,2,4,4) -> relu n1 -> pad n2 (H, W by 1) -> maxpool n3 (1x3x3) and conv n4
    /// (1x3x3); n5 is a pad of the channel axis, which no window can carry.
    fn padded() -> Graph {
        let mut g = Graph::new();
        let x = g.add_input("x", Shape::new(vec![1, 1, 2, 4, 4]));
        let r = g.add("r", Op::Relu, &[x], None).unwrap();
        let pads = vec![(0, 0), (0, 0), (0, 0), (1, 1), (1, 1)];
        let p = g.add("p", Op::Pad { pads }, &[r], None).unwrap();
        let win = Window3d::dense([1, 3, 3]);
        g.add("m", Op::MaxPool3d(win.clone()), &[p], None).unwrap();
        let conv = Conv3dParams {
            in_channels: 1,
            out_channels: 1,
            window: win,
        };
        g.add("c", Op::Conv3d(conv), &[p], None).unwrap();
        let pads = vec![(0, 0), (1, 0), (0, 0), (0, 0), (0, 0)];
        g.add("pc", Op::Pad { pads }, &[r], None).unwrap();
        g
    }

    #[rustfmt::skip]
    #[test]
    fn relu_after_pool() {
        assert!(fires("relu-after-pool", Graph::new(), "(relu n9 (maxpool n1 n0))", "(poolrelu n1 n0)"));
    }

    #[rustfmt::skip]
    #[test]
    fn relu_before_pool() {
        assert!(fires("relu-before-pool", Graph::new(), "(maxpool n1 (relu n9 n0))", "(poolrelu n1 n0)"));
    }

    #[rustfmt::skip]
    #[test]
    fn pad_into_pool() {
        assert!(fires("pad-into-pool", padded(), "(maxpool n3 (pad n2 (relu n1 n0)))", "(maxpool (padwin n3 n2) (relu n1 n0))"));
    }

    #[rustfmt::skip]
    #[test]
    fn pad_into_pool_needs_a_non_negative_input() {
        assert!(!fires("pad-into-pool", padded(), "(maxpool n3 (pad n2 n0))", "(maxpool (padwin n3 n2) n0)"));
    }

    #[rustfmt::skip]
    #[test]
    fn pad_into_conv() {
        assert!(fires("pad-into-conv", padded(), "(conv n4 (pad n2 n0))", "(conv (padwin n4 n2) n0)"));
    }

    #[rustfmt::skip]
    #[test]
    fn pad_into_conv_needs_a_spatial_pad() {
        assert!(!fires("pad-into-conv", padded(), "(conv n4 (pad n5 n0))", "(conv (padwin n4 n5) n0)"));
    }

    /// The rule set, by name: a new rule needs its test above.
    #[test]
    fn every_rule_has_a_test() {
        let names: Vec<String> = rules().iter().map(|r| r.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "relu-after-pool",
                "relu-before-pool",
                "pad-into-pool",
                "pad-into-conv"
            ]
        );
    }
}
