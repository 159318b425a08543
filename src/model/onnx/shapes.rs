//! The shape arithmetic exporters leave in graphs (tf2onnx's flatten: `Shape`, `Gather`,
//! `Cast`, `Slice`, `Concat`, then `Reshape`), folded to constants: every operand here is a
//! constant, and every result one.

use super::tensor::{Attributes, Tensor};

/// One-dimensional tensors of `values`.
fn vector(values: Vec<f64>) -> Tensor {
    Tensor {
        dims: vec![values.len()],
        values,
    }
}

/// `Gather` along axis 0 of a vector (or a scalar's index into it).
pub fn gather(data: &Tensor, indices: &Tensor, attrs: &Attributes) -> Result<Tensor, String> {
    if attrs.int("axis", 0) != 0 || data.dims.len() != 1 {
        return Err("gathers other than from a vector along axis 0 are not supported".into());
    }
    let n = data.values.len() as i64;
    let picked = indices
        .integers()
        .ok_or("indices are not whole numbers")?
        .into_iter()
        .map(|i| {
            let at = if i < 0 { i + n } else { i };
            (0..n)
                .contains(&at)
                .then(|| data.values[at as usize])
                .ok_or_else(|| format!("index {i} is outside a vector of {n}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Tensor {
        dims: indices.dims.clone(),
        values: picked,
    })
}

/// `Slice` of a vector: `starts`, `ends`, optional `axes` (only 0) and `steps`, as inputs
/// (opset 10 on) or attributes (before).
pub fn slice(
    data: &Tensor,
    inputs: &[Option<Tensor>],
    attrs: &Attributes,
) -> Result<Tensor, String> {
    let ints = |i: usize, key: &str| -> Result<Option<Vec<i64>>, String> {
        match inputs.get(i).and_then(Option::as_ref) {
            Some(t) => t
                .integers()
                .map(Some)
                .ok_or_else(|| format!("{key} are not whole numbers")),
            None => Ok(attrs.ints(key)),
        }
    };
    let (starts, ends) = match (ints(0, "starts")?, ints(1, "ends")?) {
        (Some(s), Some(e)) => (s, e),
        _ => return Err("has no starts and ends".into()),
    };
    let axes = ints(2, "axes")?.unwrap_or(vec![0]);
    let steps = ints(3, "steps")?.unwrap_or(vec![1]);
    if data.dims.len() != 1 || axes != [0] || starts.len() != 1 || ends.len() != 1 || steps != [1] {
        return Err("only a unit-step slice of a vector is supported".into());
    }
    let n = data.values.len() as i64;
    let clamp = |i: i64| (if i < 0 { i + n } else { i }).clamp(0, n) as usize;
    let (a, b) = (clamp(starts[0]), clamp(ends[0]));
    Ok(vector(data.values[a..b.max(a)].to_vec()))
}

/// `Concat` of vectors along axis 0.
pub fn concat(parts: &[Tensor]) -> Result<Tensor, String> {
    if parts.iter().any(|t| t.dims.len() != 1) {
        return Err("only vectors can be concatenated".into());
    }
    Ok(vector(
        parts.iter().flat_map(|t| t.values.clone()).collect(),
    ))
}

/// `Unsqueeze`, `Squeeze` and `Cast`: the same values under the dims the op gives (a cast to
/// an integer type drops fractions).
pub fn relabel(op: &str, t: &Tensor, attrs: &Attributes) -> Tensor {
    match op {
        "Unsqueeze" if t.dims.is_empty() => vector(t.values.clone()),
        "Squeeze" if t.values.len() == 1 => Tensor {
            dims: vec![],
            values: t.values.clone(),
        },
        "Cast" => {
            // TensorProto.DataType: the integer types
            let integer = matches!(attrs.int("to", 1), 2..=7 | 12 | 13);
            Tensor {
                dims: t.dims.clone(),
                values: t
                    .values
                    .iter()
                    .map(|v| if integer { v.trunc() } else { *v })
                    .collect(),
            }
        }
        _ => t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_ir::NodeProto;

    #[test]
    fn the_flatten_tf2onnx_writes_folds_to_its_target() {
        let node = NodeProto::new();
        let none = Attributes::of(&node);
        // Shape of a [1, 4, 4, 8] tensor → its first entry, and -1: [1, -1]
        let shape = vector(vec![1.0, 4.0, 4.0, 8.0]);
        let first = slice(
            &shape,
            &[Some(vector(vec![0.0])), Some(vector(vec![1.0]))],
            &none,
        )
        .unwrap();
        let target = concat(&[first, vector(vec![-1.0])]).unwrap();
        assert_eq!(target.integers(), Some(vec![1, -1]));
        let second = gather(&shape, &vector(vec![-1.0]), &none).unwrap();
        assert_eq!(second.values, [8.0]);
        assert!(gather(&shape, &vector(vec![4.0]), &none).is_err());
        // slices past the end are clamped, as Python's are
        let all = slice(
            &shape,
            &[Some(vector(vec![1.0])), Some(vector(vec![i64::MAX as f64]))],
            &none,
        )
        .unwrap();
        assert_eq!(all.values, [4.0, 4.0, 8.0]);
    }
}
