//! ONNX import: a network exported by PyTorch (`torch.onnx.export`) or tf2onnx becomes a
//! hejob model, every node either lowered to a layer or refused by name before anything is
//! written.

mod lower;
pub mod polynomial;
mod shapes;
pub mod tensor;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use onnx_ir::{Message, ModelProto};

use lower::Layout;

use super::{Model, Preprocess};
use crate::data::Dataset;

/// The largest ONNX file read: room for the 2^26 weights a model file may hold, as float32,
/// and the graph around them.
pub const MAX_ONNX_BYTES: u64 = 512 << 20;
/// The oldest default-domain opset read (every supported operator has its current meaning).
pub const MIN_OPSET: i64 = 7;
/// The newest opset this importer was checked against; later ones are read with a warning.
pub const CHECKED_OPSET: i64 = 23;

/// Why a graph cannot be imported: the file, and the node where one is to blame.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: node {node} ({op}): {reason}")]
    Node {
        path: PathBuf,
        node: String,
        op: String,
        reason: String,
    },
}

/// Imports the graph in `path` as a network on `dataset` images normalised by `preprocess`.
pub fn import(path: &Path, dataset: Dataset, preprocess: Preprocess) -> Result<Model, ImportError> {
    let fail = |reason: String| ImportError::File {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = read(path).map_err(fail)?;
    let proto = ModelProto::parse_from_bytes(&bytes)
        .map_err(|e| fail(format!("not an ONNX model (protobuf: {e})")))?;
    let graph = proto
        .graph
        .as_ref()
        .filter(|g| !g.node.is_empty() && proto.ir_version > 0)
        .ok_or_else(|| fail("not an ONNX model (no graph of nodes)".into()))?;
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| fail("imports no default-domain opset".into()))?;
    if opset < MIN_OPSET {
        return Err(fail(format!(
            "opset {opset} is older than the {MIN_OPSET} this importer reads; re-export with a \
             current exporter"
        )));
    }
    if opset > CHECKED_OPSET {
        log::warn!(
            "{}: opset {opset} is newer than {CHECKED_OPSET}, the latest this importer was \
             checked against",
            path.display()
        );
    }

    let constants: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !constants.contains(i.name.as_str()))
        .collect();
    let [input] = inputs[..] else {
        return Err(fail(format!(
            "the graph has {} inputs besides its weights; it must have one, the image",
            inputs.len()
        )));
    };
    let layout = check_input(input, dataset).map_err(fail)?;
    let [output] = &graph.output[..] else {
        return Err(fail(format!(
            "the graph has {} outputs; it must have one, the logits",
            graph.output.len()
        )));
    };

    let folder = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut lowering = lower::Lowering::new(&input.name, dataset.shape(), layout, folder.clone());
    for t in &graph.initializer {
        lowering.constant(&t.name, tensor::decode(t, &folder).map_err(fail)?);
    }
    for (i, n) in graph.node.iter().enumerate() {
        let name = if n.name.is_empty() {
            format!("#{i}")
        } else {
            n.name.clone()
        };
        let foreign = !(n.domain.is_empty() || n.domain == "ai.onnx");
        let lowered = if foreign {
            Err(format!(
                "operator of domain {:?} is not supported",
                n.domain
            ))
        } else {
            lowering.node(n, &name)
        };
        lowered.map_err(|reason| ImportError::Node {
            path: path.to_path_buf(),
            node: name,
            op: n.op_type.clone(),
            reason,
        })?;
    }
    let (layers, sources) = lowering.finish(&output.name).map_err(fail)?;

    let mut provenance = BTreeMap::from([
        ("source".to_string(), path.display().to_string()),
        ("source_md5".to_string(), md5(&bytes)),
        ("source_format".to_string(), format!("ONNX, opset {opset}")),
        (
            "imported_by".to_string(),
            format!("hejob {} model import", env!("CARGO_PKG_VERSION")),
        ),
        (
            "onnx_nodes".to_string(),
            layers
                .iter()
                .zip(&sources)
                .map(|(l, s)| format!("{} <- {s}", l.name))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    ]);
    let producer = format!("{} {}", proto.producer_name, proto.producer_version);
    if !producer.trim().is_empty() {
        provenance.insert("onnx_producer".into(), producer.trim().to_string());
    }
    let model = Model {
        dataset,
        input: dataset.shape(),
        classes: dataset.classes(),
        preprocess,
        layers,
        provenance,
    };
    model.validate().map_err(|e| fail(e.to_string()))?;
    Ok(model)
}

fn md5(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    crate::data::checksums::hex(&Md5::digest(bytes))
}

/// The file's bytes, refusing a folder, a missing file or one past [`MAX_ONNX_BYTES`].
fn read(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read ({e})"))?;
    if meta.is_dir() {
        return Err("is a folder; name an .onnx file".into());
    }
    if meta.len() > MAX_ONNX_BYTES {
        return Err(format!(
            "is {} bytes, more than the {MAX_ONNX_BYTES} an imported network may have",
            meta.len()
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot be read ({e})"))
}

/// The image input: a float tensor `[N, C, H, W]` of the dataset's shape, or `[N, H, W, C]`
/// (a Keras graph's), any N (each image is evaluated alone); its layout.
fn check_input(input: &onnx_ir::ValueInfoProto, dataset: Dataset) -> Result<Layout, String> {
    let tensor = input
        .type_
        .as_ref()
        .filter(|t| t.has_tensor_type())
        .map(|t| t.tensor_type())
        .ok_or_else(|| format!("graph input '{}' is not a tensor", input.name))?;
    // TensorProto.DataType FLOAT, FLOAT16, DOUBLE, BFLOAT16
    if ![1, 10, 11, 16].contains(&tensor.elem_type) {
        return Err(format!(
            "graph input '{}' has element type {}; images are floating point",
            input.name, tensor.elem_type
        ));
    }
    let dims: Vec<Option<i64>> = tensor
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| d.has_dim_value().then(|| d.dim_value()))
                .collect()
        })
        .unwrap_or_default();
    let s = dataset.shape();
    let nchw = [s.c, s.h, s.w].map(|d| Some(d as i64));
    let nhwc = [s.h, s.w, s.c].map(|d| Some(d as i64));
    let shown: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("?".into(), |v| v.to_string()))
        .collect();
    match dims.get(1..) {
        Some(d) if dims.len() == 4 && d == nchw => Ok(Layout::Nchw),
        Some(d) if dims.len() == 4 && d == nhwc => Ok(Layout::Nhwc),
        _ => Err(format!(
            "graph input '{}' has shape [{}], but {dataset} images are [N, {}, {}, {}] (or \
             [N, {}, {}, {}])",
            input.name,
            shown.join(", "),
            s.c,
            s.h,
            s.w,
            s.h,
            s.w,
            s.c
        )),
    }
}
