//! Constant folding of the small integer and float tensors exporters compute at run time
//! (shapes, pads, axes, conditions). With the input shape concrete, every such chain folds.

/// Element data of a constant.
#[derive(Clone, Debug, PartialEq)]
pub enum CData {
    /// Floats (float, double, half all become f32).
    F(Vec<f32>),
    /// Integers (every integer type becomes i64).
    I(Vec<i64>),
    /// Booleans.
    B(Vec<bool>),
}

/// A constant tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstT {
    /// Dimensions.
    pub dims: Vec<usize>,
    /// Elements, row-major.
    pub data: CData,
}

type R<T> = Result<T, String>;

impl ConstT {
    /// An int64 tensor.
    pub fn ints(dims: Vec<usize>, v: Vec<i64>) -> Self {
        ConstT {
            dims,
            data: CData::I(v),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            CData::F(v) => v.len(),
            CData::I(v) => v.len(),
            CData::B(v) => v.len(),
        }
    }

    /// True if it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as integers (floats must be integral).
    pub fn as_i64s(&self) -> R<Vec<i64>> {
        match &self.data {
            CData::I(v) => Ok(v.clone()),
            CData::B(v) => Ok(v.iter().map(|&b| b as i64).collect()),
            CData::F(v) => v
                .iter()
                .map(|&f| {
                    if f.fract() == 0.0 && f.is_finite() {
                        Ok(f as i64)
                    } else {
                        Err(format!("expected integers, found {f}"))
                    }
                })
                .collect(),
        }
    }

    /// The elements as floats.
    pub fn as_f32s(&self) -> Vec<f32> {
        match &self.data {
            CData::F(v) => v.clone(),
            CData::I(v) => v.iter().map(|&i| i as f32).collect(),
            CData::B(v) => v.iter().map(|&b| b as u8 as f32).collect(),
        }
    }

    /// A scalar boolean (for `If` conditions).
    pub fn as_bool(&self) -> R<bool> {
        if self.len() != 1 {
            return Err(format!("condition has {} elements, expected 1", self.len()));
        }
        Ok(match &self.data {
            CData::B(v) => v[0],
            CData::I(v) => v[0] != 0,
            CData::F(v) => v[0] != 0.0,
        })
    }

    fn map_idx(&self, idx: &[usize]) -> ConstT {
        let data = match &self.data {
            CData::F(v) => CData::F(idx.iter().map(|&i| v[i]).collect()),
            CData::I(v) => CData::I(idx.iter().map(|&i| v[i]).collect()),
            CData::B(v) => CData::B(idx.iter().map(|&i| v[i]).collect()),
        };
        ConstT {
            dims: vec![idx.len()],
            data,
        }
    }

    fn with_dims(mut self, dims: Vec<usize>) -> ConstT {
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
        return Err(format!("axis {a} out of range for rank {rank}"));
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
            return Err(format!("cannot broadcast {a:?} with {b:?}"));
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

/// Elementwise binary op with broadcasting.
pub fn binary(op: &str, a: &ConstT, b: &ConstT) -> R<ConstT> {
    let (dims, idx) = broadcast(&a.dims, &b.dims)?;
    let data = match (&a.data, &b.data) {
        (CData::I(x), CData::I(y)) => {
            let f = |p: i64, q: i64| -> R<CData> {
                Ok(match op {
                    "Add" => CData::I(vec![p.wrapping_add(q)]),
                    "Sub" => CData::I(vec![p.wrapping_sub(q)]),
                    "Mul" => CData::I(vec![p.wrapping_mul(q)]),
                    "Div" if q == 0 => return Err("integer division by zero".into()),
                    "Div" => CData::I(vec![p / q]),
                    "Mod" if q == 0 => return Err("integer modulo by zero".into()),
                    // ONNX Mod with fmod=0: the sign follows the divisor.
                    "Mod" => CData::I(vec![((p % q) + q) % q]),
                    "Max" => CData::I(vec![p.max(q)]),
                    "Min" => CData::I(vec![p.min(q)]),
                    "Equal" => CData::B(vec![p == q]),
                    "Less" => CData::B(vec![p < q]),
                    "Greater" => CData::B(vec![p > q]),
                    _ => return Err(format!("{op} is not foldable on integers")),
                })
            };
            collect(idx.iter().map(|&(i, j)| f(x[i], y[j])))?
        }
        (CData::F(x), CData::F(y)) => {
            let f = |p: f32, q: f32| -> R<CData> {
                Ok(match op {
                    "Add" => CData::F(vec![p + q]),
                    "Sub" => CData::F(vec![p - q]),
                    "Mul" => CData::F(vec![p * q]),
                    "Div" => CData::F(vec![p / q]),
                    "Max" => CData::F(vec![p.max(q)]),
                    "Min" => CData::F(vec![p.min(q)]),
                    "Pow" => CData::F(vec![p.powf(q)]),
                    "Equal" => CData::B(vec![p == q]),
                    "Less" => CData::B(vec![p < q]),
                    "Greater" => CData::B(vec![p > q]),
                    _ => return Err(format!("{op} is not foldable on floats")),
                })
            };
            collect(idx.iter().map(|&(i, j)| f(x[i], y[j])))?
        }
        (CData::B(x), CData::B(y)) => {
            let v: R<Vec<bool>> = idx
                .iter()
                .map(|&(i, j)| match op {
                    "And" => Ok(x[i] && y[j]),
                    "Or" => Ok(x[i] || y[j]),
                    "Xor" | "Not" => Ok(x[i] != y[j]),
                    "Equal" => Ok(x[i] == y[j]),
                    _ => Err(format!("{op} is not foldable on booleans")),
                })
                .collect();
            CData::B(v?)
        }
        _ => return Err(format!("{op} on constants of different element types")),
    };
    Ok(ConstT { dims, data })
}

fn collect(it: impl Iterator<Item = R<CData>>) -> R<CData> {
    let mut out: Option<CData> = None;
    for v in it {
        match (out.as_mut(), v?) {
            (None, v) => out = Some(v),
            (Some(CData::I(o)), CData::I(v)) => o.extend(v),
            (Some(CData::F(o)), CData::F(v)) => o.extend(v),
            (Some(CData::B(o)), CData::B(v)) => o.extend(v),
            _ => unreachable!("one op gives one element type"),
        }
    }
    Ok(out.unwrap_or(CData::I(vec![])))
}

/// ONNX Gather on a constant.
pub fn gather(data: &ConstT, indices: &ConstT, axis: i64) -> R<ConstT> {
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
                return Err(format!("Gather index {i} out of range for length {n}"));
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
    data: &ConstT,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> R<ConstT> {
    let rank = data.dims.len();
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&x| norm_axis(x, rank)).collect::<R<_>>()?,
        None => (0..starts.len()).collect(),
    };
    if starts.len() != ends.len() || starts.len() != axes.len() {
        return Err("Slice starts, ends and axes differ in length".into());
    }
    let mut ranges: Vec<Vec<usize>> = data.dims.iter().map(|&d| (0..d).collect()).collect();
    for (k, &ax) in axes.iter().enumerate() {
        let d = data.dims[ax] as i64;
        let step = steps.map_or(1, |s| s[k]);
        if step == 0 {
            return Err("Slice step 0".into());
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
pub fn concat(parts: &[&ConstT], axis: i64) -> R<ConstT> {
    let first = parts.first().ok_or("Concat of nothing")?;
    let ax = norm_axis(axis, first.dims.len())?;
    let mut dims = first.dims.clone();
    dims[ax] = parts
        .iter()
        .map(|p| p.dims.get(ax).copied().unwrap_or(0))
        .sum();
    let outer: usize = first.dims[..ax].iter().product();
    let mut out: Option<CData> = None;
    for o in 0..outer {
        for p in parts {
            if p.dims.len() != first.dims.len() {
                return Err("Concat of constants of different ranks".into());
            }
            let inner: usize = p.dims[ax..].iter().product();
            let idx: Vec<usize> = (o * inner..(o + 1) * inner).collect();
            let piece = p.map_idx(&idx).data;
            out = Some(match (out, piece) {
                (None, x) => x,
                (Some(CData::I(mut a)), CData::I(b)) => {
                    a.extend(b);
                    CData::I(a)
                }
                (Some(CData::F(mut a)), CData::F(b)) => {
                    a.extend(b);
                    CData::F(a)
                }
                (Some(CData::B(mut a)), CData::B(b)) => {
                    a.extend(b);
                    CData::B(a)
                }
                _ => return Err("Concat of constants of different element types".into()),
            });
        }
    }
    Ok(ConstT {
        dims,
        data: out.unwrap_or(CData::I(vec![])),
    })
}

/// ONNX Transpose on a constant.
pub fn transpose(data: &ConstT, perm: Option<&[i64]>) -> R<ConstT> {
    let rank = data.dims.len();
    let perm: Vec<usize> = match perm {
        Some(p) => p.iter().map(|&a| norm_axis(a, rank)).collect::<R<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..rank).collect::<Vec<_>>() {
        return Err(format!("bad Transpose permutation {perm:?}"));
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
            0 if !allowzero => dims.push(*input.get(i).ok_or("Reshape 0 past the input rank")?),
            t if t >= 0 => dims.push(t as usize),
            _ => return Err(format!("bad Reshape target {target:?}")),
        }
    }
    let known: usize = dims.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} into {target:?}"));
        }
        dims[i] = total / known;
    }
    if dims.iter().product::<usize>() != total {
        return Err(format!("cannot reshape {input:?} into {target:?}"));
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
            return Err(format!("cannot squeeze axis {a} of length {}", input[a]));
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
        let pad = ConstT::ints(vec![6], vec![1, 2, 3, 4, 5, 6]);
        let zeros = ConstT::ints(vec![4], vec![0; 4]);
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
        let a = ConstT::ints(vec![2, 1], vec![7, -7]);
        let b = ConstT::ints(vec![2], vec![2, 3]);
        let m = binary("Mod", &a, &b).unwrap();
        assert_eq!(m.dims, vec![2, 2]);
        assert_eq!(m.as_i64s().unwrap(), vec![1, 1, 1, 2]);
        assert!(binary("Div", &a, &ConstT::ints(vec![], vec![0])).is_err());
        let g = gather(
            &ConstT::ints(vec![5], vec![1, 3, 16, 112, 112]),
            &ConstT::ints(vec![], vec![-1]),
            0,
        )
        .unwrap();
        assert_eq!((g.dims.clone(), g.as_i64s().unwrap()), (vec![], vec![112]));
    }
}
