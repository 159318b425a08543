//! ONNX constants as f64 arrays: initializers, `Constant` nodes and node attributes, decoded
//! from onnx-ir's protobuf messages.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use onnx_ir::{AttributeProto, NodeProto, TensorProto};

/// A constant tensor: its dimensions and its values in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dims: Vec<usize>,
    pub values: Vec<f64>,
}

impl Tensor {
    /// The value of a one-element tensor (any rank).
    pub fn scalar(&self) -> Option<f64> {
        match self.values[..] {
            [v] => Some(v),
            _ => None,
        }
    }

    /// The values as integers, where every one is a whole number (shapes, exponents).
    pub fn integers(&self) -> Option<Vec<i64>> {
        self.values
            .iter()
            // past 2^53 every f64 is whole; INT64_MAX (a slice's "to the end") saturates
            .map(|&v| (v.fract() == 0.0).then_some(v as i64))
            .collect()
    }
}

// TensorProto.DataType
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const INT32: i32 = 6;
const INT64: i32 = 7;
const FLOAT16: i32 = 10;
const DOUBLE: i32 = 11;
const BFLOAT16: i32 = 16;

/// Decodes a tensor: float, double, float16, bfloat16 and integer types, stored in the typed
/// fields, as raw little-endian bytes, or in an external data file beside the model (what
/// PyTorch's exporter writes); `folder` is the model file's.
pub fn decode(t: &TensorProto, folder: &Path) -> Result<Tensor, String> {
    let external;
    let raw: &[u8] = if t.external_data.is_empty() {
        &t.raw_data
    } else {
        external = read_external(t, folder)?;
        &external
    };
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("tensor '{}' has dimension {d}", t.name)))
        .collect::<Result<Vec<_>, _>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= super::super::file::MAX_VALUES)
        .ok_or_else(|| {
            format!(
                "tensor '{}' has more than {} values",
                t.name,
                super::super::file::MAX_VALUES
            )
        })?;
    let values: Vec<f64> = match (t.data_type, raw.is_empty()) {
        (FLOAT, false) => le::<4>(raw, |b| f32::from_le_bytes(b) as f64),
        (FLOAT, true) => t.float_data.iter().map(|&v| v as f64).collect(),
        (DOUBLE, false) => le::<8>(raw, f64::from_le_bytes),
        (DOUBLE, true) => t.double_data.clone(),
        (FLOAT16, false) => le::<2>(raw, |b| half::f16::from_le_bytes(b).to_f64()),
        (FLOAT16, true) => t
            .int32_data
            .iter()
            .map(|&v| half::f16::from_bits(v as u16).to_f64())
            .collect(),
        (BFLOAT16, false) => le::<2>(raw, |b| half::bf16::from_le_bytes(b).to_f64()),
        (BFLOAT16, true) => t
            .int32_data
            .iter()
            .map(|&v| half::bf16::from_bits(v as u16).to_f64())
            .collect(),
        (INT64, false) => le::<8>(raw, |b| i64::from_le_bytes(b) as f64),
        (INT64, true) => t.int64_data.iter().map(|&v| v as f64).collect(),
        (INT32, false) => le::<4>(raw, |b| i32::from_le_bytes(b) as f64),
        (INT32 | INT8 | UINT8, true) => t.int32_data.iter().map(|&v| v as f64).collect(),
        (INT8, false) => raw.iter().map(|&b| b as i8 as f64).collect(),
        (UINT8, false) => raw.iter().map(|&b| b as f64).collect(),
        (other, _) => {
            return Err(format!(
                "tensor '{}' has data type {other}, which is not a number type hejob reads",
                t.name
            ))
        }
    };
    if values.len() != count {
        return Err(format!(
            "tensor '{}' holds {} values, but its shape {dims:?} needs {count}",
            t.name,
            values.len()
        ));
    }
    Ok(Tensor { dims, values })
}

/// The bytes of a tensor kept in an external file: `location` (a file in the model's folder or
/// below it, never outside), from `offset`, `length` bytes (else to the file's end).
fn read_external(t: &TensorProto, folder: &Path) -> Result<Vec<u8>, String> {
    let entry = |key: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.clone())
    };
    let fail = |why: String| format!("tensor '{}': external data {why}", t.name);
    let location = entry("location").ok_or_else(|| fail("without a location".into()))?;
    let relative = Path::new(&location);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(fail(format!(
            "at {location:?}, outside the model's folder; hejob reads external data only \
             beside the model"
        )));
    }
    let number = |key: &str| match entry(key) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| fail(format!("{key} {v:?} is not a byte count"))),
    };
    let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
    let path = folder.join(relative);
    let mut file = std::fs::File::open(&path)
        .map_err(|e| fail(format!("file {} cannot be read ({e})", path.display())))?;
    let size = file
        .metadata()
        .map_err(|e| fail(format!("file {}: {e}", path.display())))?
        .len();
    let length = length.unwrap_or(size.saturating_sub(offset));
    let limit = (super::super::file::MAX_VALUES as u64) * 8;
    if offset.checked_add(length).is_none_or(|end| end > size) || length > limit {
        return Err(fail(format!(
            "asks for {length} bytes from offset {offset} of {}, which has {size}",
            path.display()
        )));
    }
    let mut bytes = vec![0; length as usize];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| fail(format!("file {}: {e}", path.display())))?;
    Ok(bytes)
}

/// Little-endian values of `N` bytes each (a trailing partial value is left out, and the
/// count check above reports it).
fn le<const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
    raw.chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks of N bytes")))
        .collect()
}

/// A node's attributes, looked up by name.
pub struct Attributes<'n>(&'n [AttributeProto]);

impl<'n> Attributes<'n> {
    pub fn of(node: &'n NodeProto) -> Self {
        Self(&node.attribute)
    }

    fn get(&self, name: &str) -> Option<&'n AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }

    pub fn float(&self, name: &str, default: f64) -> f64 {
        self.get(name).map_or(default, |a| a.f as f64)
    }

    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    /// The tensor a `Constant` node holds, in whichever attribute it was written.
    pub fn constant(&self, folder: &Path) -> Result<Tensor, String> {
        if let Some(t) = self.get("value").and_then(|a| a.t.as_ref()) {
            return decode(t, folder);
        }
        let one = |v: f64| Tensor {
            dims: vec![],
            values: vec![v],
        };
        let many = |values: Vec<f64>| Tensor {
            dims: vec![values.len()],
            values,
        };
        if let Some(a) = self.get("value_float") {
            Ok(one(a.f as f64))
        } else if let Some(a) = self.get("value_int") {
            Ok(one(a.i as f64))
        } else if let Some(a) = self.get("value_floats") {
            Ok(many(a.floats.iter().map(|&v| v as f64).collect()))
        } else if let Some(a) = self.get("value_ints") {
            Ok(many(a.ints.iter().map(|&v| v as f64).collect()))
        } else {
            Err("a Constant without a numeric value (value, value_float(s) or value_int(s))".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(data_type: i32, dims: &[i64], raw: Vec<u8>) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = "t".into();
        t.data_type = data_type;
        t.dims = dims.to_vec();
        t.raw_data = raw.into();
        t
    }

    #[test]
    fn raw_bytes_of_each_float_type_decode() {
        let f32s: Vec<u8> = [1.5f32, -2.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let here = Path::new(".");
        let got = decode(&tensor(FLOAT, &[2], f32s), here).unwrap();
        assert_eq!(got.values, vec![1.5, -2.25]);
        let f16s: Vec<u8> = [0.5f32, 3.0]
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        assert_eq!(
            decode(&tensor(FLOAT16, &[2, 1], f16s), here)
                .unwrap()
                .values,
            vec![0.5, 3.0]
        );
        let i64s: Vec<u8> = [1i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let shape = decode(&tensor(INT64, &[2], i64s), here).unwrap();
        assert_eq!(shape.integers(), Some(vec![1, -1]));
    }

    #[test]
    fn a_short_or_foreign_tensor_is_refused() {
        let here = Path::new(".");
        let short = decode(&tensor(FLOAT, &[3], vec![0; 8]), here).unwrap_err();
        assert!(
            short.contains("holds 2 values, but its shape [3] needs 3"),
            "{short}"
        );
        let strings = decode(&tensor(8, &[1], vec![]), here).unwrap_err();
        assert!(strings.contains("data type 8"), "{strings}");
    }
}
