//! Constant folding of the small integer and float tensors exporters compute at run time
//! (shapes, pads, axes, conditions). With the input shape concrete, every such chain folds.

use thiserror::Error;

/// Element data of a constant.
#[derive(Clone, Debug, PartialEq)]
pub enum ConstData {
    /// Floats (float, double, half all become f32).
    Float(Vec<f32>),
    /// Integers (every integer type becomes i64).
    Int(Vec<i64>),
    /// Booleans.
    Bool(Vec<bool>),
}

/// A constant tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstTensor {
    /// Dimensions.
    pub dims: Vec<usize>,
    /// Elements, row-major.
    pub data: ConstData,
}

/// Why a constant could not be folded.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum FoldError {
    /// Integers were expected (shapes, axes, indices) and a float has a fraction.
    #[error("expected integers, found {0}")]
    NotIntegers(f32),
    /// An `If` condition that is not a scalar.
    #[error("condition has {0} elements, expected 1")]
    ConditionLen(usize),
    /// An axis outside the tensor's rank.
    #[error("axis {axis} out of range for rank {rank}")]
    AxisOutOfRange {
        /// The axis as given.
        axis: i64,
        /// The rank.
        rank: usize,
    },
    /// Two shapes that do not broadcast.
    #[error("cannot broadcast {0:?} with {1:?}")]
    Broadcast(Vec<usize>, Vec<usize>),
    /// Integer `Div` by zero.
    #[error("integer division by zero")]
    DivisionByZero,
    /// Integer `Mod` by zero.
    #[error("integer modulo by zero")]
    ModuloByZero,
    /// A binary op that has no meaning on this element type.
    #[error("{op} is not foldable on {on}")]
    NotFoldable {
        /// The ONNX op.
        op: String,
        /// The element type, in words ("integers", "floats", "booleans").
        on: &'static str,
    },
    /// A binary op on constants of two element types.
    #[error("{0} on constants of different element types")]
    MixedTypes(String),
    /// A `Gather` index past the axis.
    #[error("Gather index {index} out of range for length {len}")]
    GatherIndex {
        /// The index as given.
        index: i64,
        /// The length of the gathered axis.
        len: i64,
    },
    /// `Slice` starts, ends and axes of different lengths.
    #[error("Slice starts, ends and axes differ in length")]
    SliceLengths,
    /// A `Slice` step of zero.
    #[error("Slice step 0")]
    SliceStep,
    /// `Concat` with no input.
    #[error("Concat of nothing")]
    ConcatEmpty,
    /// `Concat` of constants of different ranks.
    #[error("Concat of constants of different ranks")]
    ConcatRanks,
    /// `Concat` of constants of different element types.
    #[error("Concat of constants of different element types")]
    ConcatTypes,
    /// A `Transpose` permutation that is not one.
    #[error("bad Transpose permutation {0:?}")]
    Permutation(Vec<usize>),
    /// A `Reshape` 0 (copy the input dim) past the input's rank.
    #[error("Reshape 0 past the input rank")]
    ReshapeZero,
    /// A `Reshape` target with a second -1 or a negative dim.
    #[error("bad Reshape target {0:?}")]
    ReshapeTarget(Vec<i64>),
    /// A `Reshape` that changes the number of elements.
    #[error("cannot reshape {input:?} into {target:?}")]
    Reshape {
        /// The input dims.
        input: Vec<usize>,
        /// The target as given.
        target: Vec<i64>,
    },
    /// `Squeeze` of an axis longer than 1.
    #[error("cannot squeeze axis {axis} of length {len}")]
    Squeeze {
        /// The axis.
        axis: usize,
        /// Its length.
        len: usize,
    },
}

type R<T> = Result<T, FoldError>;

impl ConstTensor {
    /// An int64 tensor.
    pub fn ints(dims: Vec<usize>, v: Vec<i64>) -> Self {
        ConstTensor {
            dims,
            data: ConstData::Int(v),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            ConstData::Float(v) => v.len(),
            ConstData::Int(v) => v.len(),
            ConstData::Bool(v) => v.len(),
        }
    }

    /// True if it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as integers (floats must be integral).
    pub fn as_i64s(&self) -> R<Vec<i64>> {
        match &self.data {
            ConstData::Int(v) => Ok(v.clone()),
            ConstData::Bool(v) => Ok(v.iter().map(|&b| b as i64).collect()),
            ConstData::Float(v) => v
                .iter()
                .map(|&f| {
                    if f.fract() == 0.0 && f.is_finite() {
                        Ok(f as i64)
                    } else {
                        Err(FoldError::NotIntegers(f))
                    }
                })
                .collect(),
        }
    }

    /// The elements as floats.
    pub fn as_f32s(&self) -> Vec<f32> {
        match &self.data {
            ConstData::Float(v) => v.clone(),
            ConstData::Int(v) => v.iter().map(|&i| i as f32).collect(),
            ConstData::Bool(v) => v.iter().map(|&b| b as u8 as f32).collect(),
        }
    }

    /// A scalar boolean (for `If` conditions).
    pub fn as_bool(&self) -> R<bool> {
        if self.len() != 1 {
            return Err(FoldError::ConditionLen(self.len()));
        }
        Ok(match &self.data {
            ConstData::Bool(v) => v[0],
            ConstData::Int(v) => v[0] != 0,
            ConstData::Float(v) => v[0] != 0.0,
        })
    }

    fn map_idx(&self, idx: &[usize]) -> ConstTensor {
        let data = match &self.data {
            ConstData::Float(v) => ConstData::Float(idx.iter().map(|&i| v[i]).collect()),
            ConstData::Int(v) => ConstData::Int(idx.iter().map(|&i| v[i]).collect()),
            ConstData::Bool(v) => ConstData::Bool(idx.iter().map(|&i| v[i]).collect()),
        };
        ConstTensor {
            dims: vec![idx.len()],
            data,
        }
    }

    fn with_dims(mut self, dims: Vec<usize>) -> ConstTensor {
        self.dims = dims;
        self
    }
}

fn strides(d: &[usize]) -> Vec<usize> {
    let mut s = vec![1; d.len()];
    for i in (0..d.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * d[i + 1];
    }
    s
}

/// Normalises a possibly negative axis.
pub fn norm_axis(a: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    let n = if a < 0 { a + r } else { a };
    if n < 0 || n >= r.max(1) {
        return Err(FoldError::AxisOutOfRange { axis: a, rank });
    }
    Ok(n as usize)
}

/// A broadcast: the result shape and, for each output index, the two input indices.
type Broadcast = (Vec<usize>, Vec<(usize, usize)>);

/// Numpy broadcasting of two shapes.
fn broadcast(a: &[usize], b: &[usize]) -> R<Broadcast> {
    let r = a.len().max(b.len());
    let pa: Vec<usize> = std::iter::repeat_n(1, r - a.len())
        .chain(a.iter().copied())
        .collect();
    let pb: Vec<usize> = std::iter::repeat_n(1, r - b.len())
        .chain(b.iter().copied())
        .collect();
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        if pa[i] != pb[i] && pa[i] != 1 && pb[i] != 1 {
            return Err(FoldError::Broadcast(a.to_vec(), b.to_vec()));
        }
        out.push(pa[i].max(pb[i]));
    }
    let (sa, sb, so) = (strides(&pa), strides(&pb), strides(&out));
    let n: usize = out.iter().product();
    let idx = (0..n)
        .map(|k| {
            let (mut ia, mut ib) = (0, 0);
            for d in 0..r {
                let c = (k / so[d]) % out[d];
                ia += if pa[d] == 1 { 0 } else { c * sa[d] };
                ib += if pb[d] == 1 { 0 } else { c * sb[d] };
            }
            (ia, ib)
        })
        .collect();
    Ok((out, idx))
}

fn not_foldable(op: &str, on: &'static str) -> FoldError {
    FoldError::NotFoldable {
        op: op.to_string(),
        on,
    }
}

/// Elementwise binary op with broadcasting.
pub fn binary(op: &str, a: &ConstTensor, b: &ConstTensor) -> R<ConstTensor> {
    let (dims, idx) = broadcast(&a.dims, &b.dims)?;
    let data = match (&a.data, &b.data) {
        (ConstData::Int(x), ConstData::Int(y)) => {
            let f = |p: i64, q: i64| -> R<ConstData> {
                Ok(match op {
                    "Add" => ConstData::Int(vec![p.wrapping_add(q)]),
                    "Sub" => ConstData::Int(vec![p.wrapping_sub(q)]),
                    "Mul" => ConstData::Int(vec![p.wrapping_mul(q)]),
                    "Div" if q == 0 => return Err(FoldError::DivisionByZero),
                    "Div" => ConstData::Int(vec![p / q]),
                    "Mod" if q == 0 => return Err(FoldError::ModuloByZero),
                    // ONNX Mod with fmod=0: the sign follows the divisor.
                    "Mod" => ConstData::Int(vec![((p % q) + q) % q]),
                    "Max" => ConstData::Int(vec![p.max(q)]),
                    "Min" => ConstData::Int(vec![p.min(q)]),
                    "Equal" => ConstData::Bool(vec![p == q]),
                    "Less" => ConstData::Bool(vec![p < q]),
                    "Greater" => ConstData::Bool(vec![p > q]),
                    _ => return Err(not_foldable(op, "integers")),
                })
            };
            collect(idx.iter().map(|&(i, j)| f(x[i], y[j])))?
        }
        (ConstData::Float(x), ConstData::Float(y)) => {
            let f = |p: f32, q: f32| -> R<ConstData> {
                Ok(match op {
                    "Add" => ConstData::Float(vec![p + q]),
                    "Sub" => ConstData::Float(vec![p - q]),
                    "Mul" => ConstData::Float(vec![p * q]),
                    "Div" => ConstData::Float(vec![p / q]),
                    "Max" => ConstData::Float(vec![p.max(q)]),
                    "Min" => ConstData::Float(vec![p.min(q)]),
                    "Pow" => ConstData::Float(vec![p.powf(q)]),
                    "Equal" => ConstData::Bool(vec![p == q]),
                    "Less" => ConstData::Bool(vec![p < q]),
                    "Greater" => ConstData::Bool(vec![p > q]),
                    _ => return Err(not_foldable(op, "floats")),
                })
            };
            collect(idx.iter().map(|&(i, j)| f(x[i], y[j])))?
        }
        (ConstData::Bool(x), ConstData::Bool(y)) => {
            let v: R<Vec<bool>> = idx
                .iter()
                .map(|&(i, j)| match op {
                    "And" => Ok(x[i] && y[j]),
                    "Or" => Ok(x[i] || y[j]),
                    "Xor" | "Not" => Ok(x[i] != y[j]),
                    "Equal" => Ok(x[i] == y[j]),
                    _ => Err(not_foldable(op, "booleans")),
                })
                .collect();
            ConstData::Bool(v?)
        }
        _ => return Err(FoldError::MixedTypes(op.to_string())),
    };
    Ok(ConstTensor { dims, data })
}

fn collect(it: impl Iterator<Item = R<ConstData>>) -> R<ConstData> {
    let mut out: Option<ConstData> = None;
    for v in it {
        match (out.as_mut(), v?) {
            (None, v) => out = Some(v),
            (Some(ConstData::Int(o)), ConstData::Int(v)) => o.extend(v),
            (Some(ConstData::Float(o)), ConstData::Float(v)) => o.extend(v),
            (Some(ConstData::Bool(o)), ConstData::Bool(v)) => o.extend(v),
            _ => unreachable!("one op gives one element type"),
        }
    }
    Ok(out.unwrap_or(ConstData::Int(vec![])))
}

/// ONNX Gather on a constant.
pub fn gather(data: &ConstTensor, indices: &ConstTensor, axis: i64) -> R<ConstTensor> {
    let ax = norm_axis(axis, data.dims.len())?;
    let n = data.dims[ax] as i64;
    let idx = indices.as_i64s()?;
    let outer: usize = data.dims[..ax].iter().product();
    let inner: usize = data.dims[ax + 1..].iter().product();
    let mut flat = Vec::new();
    for o in 0..outer {
        for &i in &idx {
            let j = if i < 0 { i + n } else { i };
            if j < 0 || j >= n {
                return Err(FoldError::GatherIndex { index: i, len: n });
            }
            for k in 0..inner {
                flat.push((o * n as usize + j as usize) * inner + k);
            }
        }
    }
    let mut dims = data.dims[..ax].to_vec();
    dims.extend(&indices.dims);
    dims.extend(&data.dims[ax + 1..]);
    Ok(data.map_idx(&flat).with_dims(dims))
}

/// ONNX Slice on a constant.
pub fn slice(
    data: &ConstTensor,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> R<ConstTensor> {
    let rank = data.dims.len();
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&x| norm_axis(x, rank)).collect::<R<_>>()?,
        None => (0..starts.len()).collect(),
    };
    if starts.len() != ends.len() || starts.len() != axes.len() {
        return Err(FoldError::SliceLengths);
    }
    let mut ranges: Vec<Vec<usize>> = data.dims.iter().map(|&d| (0..d).collect()).collect();
    for (k, &ax) in axes.iter().enumerate() {
        let d = data.dims[ax] as i64;
        let step = steps.map_or(1, |s| s[k]);
        if step == 0 {
            return Err(FoldError::SliceStep);
        }
        let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (s, e) = (fix(starts[k]), fix(ends[k]));
        let mut v = Vec::new();
        if step > 0 {
            let (mut i, e) = (s.clamp(0, d), e.clamp(0, d));
            while i < e {
                v.push(i as usize);
                i += step;
            }
        } else {
            let (mut i, e) = (s.clamp(-1, d - 1), e.clamp(-1, d - 1));
            while i > e {
                v.push(i as usize);
                i += step;
            }
        }
        ranges[ax] = v;
    }
    let st = strides(&data.dims);
    let dims: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
    let mut flat = vec![0usize];
    for (a, r) in ranges.iter().enumerate() {
        let sa = st[a];
        flat = flat
            .iter()
            .flat_map(|&base| r.iter().map(move |&i| base + i * sa))
            .collect();
    }
    Ok(data.map_idx(&flat).with_dims(dims))
}

/// ONNX Concat on constants.
pub fn concat(parts: &[&ConstTensor], axis: i64) -> R<ConstTensor> {
    let first = parts.first().ok_or(FoldError::ConcatEmpty)?;
    let ax = norm_axis(axis, first.dims.len())?;
    let mut dims = first.dims.clone();
    dims[ax] = parts
        .iter()
        .map(|p| p.dims.get(ax).copied().unwrap_or(0))
        .sum();
    let outer: usize = first.dims[..ax].iter().product();
    let mut out: Option<ConstData> = None;
    for o in 0..outer {
        for p in parts {
            if p.dims.len() != first.dims.len() {
                return Err(FoldError::ConcatRanks);
            }
            let inner: usize = p.dims[ax..].iter().product();
            let idx: Vec<usize> = (o * inner..(o + 1) * inner).collect();
            let piece = p.map_idx(&idx).data;
            out = Some(match (out, piece) {
                (None, x) => x,
                (Some(ConstData::Int(mut a)), ConstData::Int(b)) => {
                    a.extend(b);
                    ConstData::Int(a)
                }
                (Some(ConstData::Float(mut a)), ConstData::Float(b)) => {
                    a.extend(b);
                    ConstData::Float(a)
                }
                (Some(ConstData::Bool(mut a)), ConstData::Bool(b)) => {
                    a.extend(b);
                    ConstData::Bool(a)
                }
                _ => return Err(FoldError::ConcatTypes),
            });
        }
    }
    Ok(ConstTensor {
        dims,
        data: out.unwrap_or(ConstData::Int(vec![])),
    })
}

/// ONNX Transpose on a constant.
pub fn transpose(data: &ConstTensor, perm: Option<&[i64]>) -> R<ConstTensor> {
    let rank = data.dims.len();
    let perm: Vec<usize> = match perm {
        Some(p) => p.iter().map(|&a| norm_axis(a, rank)).collect::<R<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..rank).collect::<Vec<_>>() {
        return Err(FoldError::Permutation(perm));
    }
    let dims: Vec<usize> = perm.iter().map(|&p| data.dims[p]).collect();
    let (si, so) = (strides(&data.dims), strides(&dims));
    let n: usize = dims.iter().product();
    let idx: Vec<usize> = (0..n)
        .map(|k| {
            (0..rank)
                .map(|a| ((k / so[a]) % dims[a]) * si[perm[a]])
                .sum()
        })
        .collect();
    Ok(data.map_idx(&idx).with_dims(dims))
}

fn cannot_reshape(input: &[usize], target: &[i64]) -> FoldError {
    FoldError::Reshape {
        input: input.to_vec(),
        target: target.to_vec(),
    }
}

/// Resolves an ONNX Reshape target (0 copies the input dim, -1 is inferred).
pub fn reshape_dims(input: &[usize], target: &[i64], allowzero: bool) -> R<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut dims = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            0 if !allowzero => dims.push(*input.get(i).ok_or(FoldError::ReshapeZero)?),
            t if t >= 0 => dims.push(t as usize),
            _ => return Err(FoldError::ReshapeTarget(target.to_vec())),
        }
    }
    let known: usize = dims.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(cannot_reshape(input, target));
        }
        dims[i] = total / known;
    }
    if dims.iter().product::<usize>() != total {
        return Err(cannot_reshape(input, target));
    }
    Ok(dims)
}

/// Dims after Unsqueeze with the given axes.
pub fn unsqueeze_dims(input: &[usize], axes: &[i64]) -> R<Vec<usize>> {
    let rank = input.len() + axes.len();
    let mut ax: Vec<usize> = axes.iter().map(|&a| norm_axis(a, rank)).collect::<R<_>>()?;
    ax.sort_unstable();
    let mut dims = input.to_vec();
    for a in ax {
        dims.insert(a, 1);
    }
    Ok(dims)
}

/// Dims after Squeeze (all length-1 dims when `axes` is empty).
pub fn squeeze_dims(input: &[usize], axes: &[i64]) -> R<Vec<usize>> {
    let ax: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, input.len()))
        .collect::<R<_>>()?;
    for &a in &ax {
        if input[a] != 1 {
            return Err(FoldError::Squeeze {
                axis: a,
                len: input[a],
            });
        }
    }
    Ok(input
        .iter()
        .enumerate()
        .filter(|(i, &d)| {
            if ax.is_empty() {
                d != 1
            } else {
                !ax.contains(i)
            }
        })
        .map(|(_, &d)| d)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytorch_pad_reorder_chain_folds() {
        // pads in F.pad order (w0,w1,h0,h1,d0,d1) = (1,2,3,4,5,6) -> ONNX begin/end order.
        let pad = ConstTensor::ints(vec![6], vec![1, 2, 3, 4, 5, 6]);
        let zeros = ConstTensor::ints(vec![4], vec![0; 4]);
        let all = concat(&[&pad, &zeros], 0).unwrap();
        let r = all
            .clone()
            .with_dims(reshape_dims(&[10], &[-1, 2], false).unwrap());
        let flip = slice(&r, &[-1], &[-9223372036854775807], Some(&[0]), Some(&[-1])).unwrap();
        let t = transpose(&flip, Some(&[1, 0])).unwrap();
        assert_eq!(t.as_i64s().unwrap(), vec![0, 0, 5, 3, 1, 0, 0, 6, 4, 2]);
    }

    #[test]
    fn broadcasting_and_int_semantics() {
        let a = ConstTensor::ints(vec![2, 1], vec![7, -7]);
        let b = ConstTensor::ints(vec![2], vec![2, 3]);
        let m = binary("Mod", &a, &b).unwrap();
        assert_eq!(m.dims, vec![2, 2]);
        assert_eq!(m.as_i64s().unwrap(), vec![1, 1, 1, 2]);
        assert!(binary("Div", &a, &ConstTensor::ints(vec![], vec![0])).is_err());
        let g = gather(
            &ConstTensor::ints(vec![5], vec![1, 3, 16, 112, 112]),
            &ConstTensor::ints(vec![], vec![-1]),
            0,
        )
        .unwrap();
        assert_eq!((g.dims.clone(), g.as_i64s().unwrap()), (vec![], vec![112]));
    }
}
