//! The model file: one HDF5 file per network (format "hejob-model", version 1), documented in
//! `docs/MODEL_FORMAT.md` so that any framework can write one with h5py.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hdf5::types::{FixedAscii, FixedUnicode, VarLenAscii, VarLenUnicode};
use hdf5::{Group, Location};

use super::{poly, Preprocess, Shape};
use super::{Activation, AvgPool, BatchNorm, Conv, Dense, Layer, LayerKind, Model, ModelError};
use crate::data::Dataset;

/// The value of the root `format` attribute.
pub const FORMAT: &str = "hejob-model";
/// The layout version this build reads and writes.
pub const VERSION: i64 = 1;

pub(crate) type R<T> = Result<T, String>;

/// Loads and validates a model file. Every problem is one error naming the file and, where it
/// applies, the layer.
pub fn load(path: &Path) -> Result<Model, ModelError> {
    let fail = |reason: String| ModelError::File {
        path: path.to_path_buf(),
        reason,
    };
    if !path.exists() {
        return Err(fail("no such file".into()));
    }
    let file =
        hdf5::File::open(path).map_err(|e| fail(format!("not a readable HDF5 file ({e})")))?;
    let model = read_model(&file).map_err(fail)?;
    model.validate().map_err(|e| fail(e.to_string()))?;
    Ok(model)
}

/// Whether a command may write a model file at `out`, checked before any work: not a folder,
/// not one of its `inputs`, and either new or an hejob model file (any other file stays as it
/// is); its folder is made and proven writable.
pub fn check_output(out: &Path, inputs: &[&Path]) -> Result<(), ModelError> {
    let fail = |reason: String| ModelError::File {
        path: out.to_path_buf(),
        reason,
    };
    if out.is_dir() {
        return Err(fail(
            "is a folder; name a file to write the model to".into(),
        ));
    }
    if inputs.iter().any(|p| crate::place::same_file(p, out)) {
        return Err(fail(
            "is this command's own input; name another file to write to".into(),
        ));
    }
    if out.exists() {
        if let Err(kind) = open_as(out, FORMAT) {
            return Err(fail(format!(
                "exists and is not an hejob model file ({kind}); it is left as it is: name \
                 another file"
            )));
        }
    }
    crate::place::writable_dir(crate::place::folder(out))
        .map_err(|e| fail(format!("cannot be written: {e}")))
}

/// The HDF5 file at `path` if its `format` attribute is `format`; else what the file is, in
/// words ("not an HDF5 file", "an HDF5 file of format …").
pub(crate) fn open_as(path: &Path, format: &str) -> Result<hdf5::File, String> {
    let file = hdf5::File::open(path).map_err(|_| "not an HDF5 file".to_string())?;
    match read_str(&file, "format") {
        Ok(f) if f == format => Ok(file),
        Ok(f) => Err(format!("an HDF5 file of format {f:?}")),
        Err(_) => Err("an HDF5 file without a 'format' attribute".into()),
    }
}

/// Writes `model` to `path` (through a temporary name, so readers never see half a file).
pub fn save(model: &Model, path: &Path) -> Result<(), ModelError> {
    let fail = |reason: String| ModelError::File {
        path: path.to_path_buf(),
        reason,
    };
    model.validate().map_err(|e| fail(e.to_string()))?;
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let written = hdf5::File::create(&tmp)
        .map_err(|e| e.to_string())
        .and_then(|file| write_model(&file, model).map_err(|e| e.to_string()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(format!("writing: {e}")));
    }
    std::fs::rename(&tmp, path).map_err(|e| fail(format!("renaming {}: {e}", tmp.display())))
}

fn read_model(file: &hdf5::File) -> R<Model> {
    let format = read_str(file, "format")?;
    if format != FORMAT {
        return Err(format!(
            "attribute 'format' is {format:?}, expected {FORMAT:?}"
        ));
    }
    let version: i64 = scalar(file, "format_version")?;
    if version != VERSION {
        return Err(format!(
            "format_version {version} is not supported (this hejob reads version {VERSION})"
        ));
    }
    let dataset = Dataset::from_str(&read_str(file, "dataset")?).map_err(|e| e.to_string())?;
    let shape = usizes(file, "input_shape")?;
    let [c, h, w] = shape[..] else {
        return Err(format!(
            "input_shape has {} entries, expected 3 (C, H, W)",
            shape.len()
        ));
    };
    let classes = read_strings(file, "classes")?;
    let preprocess = Preprocess {
        scale: scalar(file, "preprocess_scale")?,
        mean: floats(file, "preprocess_mean")?,
        std: floats(file, "preprocess_std")?,
    };
    let mut provenance = BTreeMap::new();
    if let Ok(group) = file.group("provenance") {
        for name in group.attr_names().map_err(|e| e.to_string())? {
            provenance.insert(name.clone(), read_str(&group, &name)?);
        }
    }
    let layers_group = file
        .group("layers")
        .map_err(|_| "missing group 'layers'".to_string())?;
    let mut names = layers_group.member_names().map_err(|e| e.to_string())?;
    names.sort();
    let mut layers = Vec::with_capacity(names.len());
    for (index, member) in names.iter().enumerate() {
        let group = layers_group.group(member).map_err(|e| e.to_string())?;
        let name = member
            .split_once('_')
            .map_or(member.as_str(), |(_, n)| n)
            .to_string();
        let kind = read_layer(&group).map_err(|e| format!("layer {index} ({name}): {e}"))?;
        layers.push(Layer { name, kind });
    }
    Ok(Model {
        dataset,
        input: Shape::new(c, h, w),
        classes,
        preprocess,
        layers,
        provenance,
    })
}

fn read_layer(g: &Group) -> R<LayerKind> {
    let kind = read_str(g, "kind")?;
    Ok(match kind.as_str() {
        "conv" => {
            let (shape, weight) = data(g, "weight")?;
            let [oc, ic, kh, kw] = shape[..] else {
                return Err(format!(
                    "weight has shape {shape:?}, expected (OC, IC, KH, KW)"
                ));
            };
            LayerKind::Conv(Conv {
                oc,
                ic,
                kh,
                kw,
                stride: scalar::<i64>(g, "stride")?
                    .try_into()
                    .map_err(|_| "negative stride")?,
                padding: scalar::<i64>(g, "padding")?
                    .try_into()
                    .map_err(|_| "negative padding")?,
                weight,
                bias: data(g, "bias")?.1,
            })
        }
        "batchnorm" => LayerKind::BatchNorm(BatchNorm {
            gamma: data(g, "gamma")?.1,
            beta: data(g, "beta")?.1,
            mean: data(g, "running_mean")?.1,
            var: data(g, "running_var")?.1,
            eps: scalar(g, "eps")?,
        }),
        "activation" => {
            let function = read_str(g, "function")?;
            let name = read_str(g, "name").unwrap_or_else(|_| function.clone());
            let act = match function.as_str() {
                "poly" => Activation::Poly(data(g, "coefficients")?.1),
                "relu" => Activation::Relu,
                "swish" => Activation::Swish,
                other => {
                    return Err(format!(
                        "activation function {other:?} is not poly, relu or swish"
                    ))
                }
            };
            if poly::named(&name).is_err() && !matches!(act, Activation::Poly(_)) {
                return Err(format!("activation name {name:?} is unknown"));
            }
            LayerKind::Activation(act, name)
        }
        "avgpool" => {
            let kernel: i64 = scalar(g, "kernel")?;
            let stride: i64 = scalar(g, "stride")?;
            let (kernel, stride) = match (usize::try_from(kernel), usize::try_from(stride)) {
                (Ok(k), Ok(s)) => (k, s),
                _ => return Err("negative kernel or stride".into()),
            };
            let scale = scalar(g, "scale").unwrap_or(1.0 / (kernel * kernel).max(1) as f64);
            LayerKind::AvgPool(AvgPool {
                kernel,
                stride,
                scale,
            })
        }
        "global_avgpool" => LayerKind::GlobalAvgPool {
            scale: scalar(g, "scale").ok(),
        },
        "flatten" => LayerKind::Flatten,
        "dense" => {
            let (shape, weight) = data(g, "weight")?;
            let [out, inp] = shape[..] else {
                return Err(format!("weight has shape {shape:?}, expected (OUT, IN)"));
            };
            LayerKind::Dense(Dense {
                out,
                inp,
                weight,
                bias: data(g, "bias")?.1,
            })
        }
        other => return Err(format!("unknown layer kind {other:?}")),
    })
}

fn write_model(file: &hdf5::File, m: &Model) -> hdf5::Result<()> {
    write_str(file, "format", FORMAT)?;
    file.new_attr::<i64>()
        .create("format_version")?
        .write_scalar(&VERSION)?;
    write_str(file, "dataset", m.dataset.name())?;
    let shape = [m.input.c as i64, m.input.h as i64, m.input.w as i64];
    file.new_attr_builder()
        .with_data(&shape[..])
        .create("input_shape")?;
    let classes: Vec<VarLenUnicode> = m
        .classes
        .iter()
        .map(|c| VarLenUnicode::from_str(c).map_err(|e| hdf5::Error::from(e.to_string())))
        .collect::<hdf5::Result<_>>()?;
    file.new_attr_builder()
        .with_data(&classes[..])
        .create("classes")?;
    file.new_attr::<f64>()
        .create("preprocess_scale")?
        .write_scalar(&m.preprocess.scale)?;
    file.new_attr_builder()
        .with_data(&m.preprocess.mean[..])
        .create("preprocess_mean")?;
    file.new_attr_builder()
        .with_data(&m.preprocess.std[..])
        .create("preprocess_std")?;
    let prov = file.create_group("provenance")?;
    for (k, v) in &m.provenance {
        write_str(&prov, k, v)?;
    }
    let layers = file.create_group("layers")?;
    for (i, layer) in m.layers.iter().enumerate() {
        let g = layers.create_group(&format!("{i:03}_{}", layer.name))?;
        write_str(&g, "kind", layer.kind_name())?;
        match &layer.kind {
            LayerKind::Conv(c) => {
                let w = ndarray::ArrayView4::from_shape((c.oc, c.ic, c.kh, c.kw), &c.weight)
                    .map_err(|e| hdf5::Error::from(e.to_string()))?;
                g.new_dataset_builder().with_data(w).create("weight")?;
                g.new_dataset_builder()
                    .with_data(&c.bias[..])
                    .create("bias")?;
                g.new_attr::<i64>()
                    .create("stride")?
                    .write_scalar(&(c.stride as i64))?;
                g.new_attr::<i64>()
                    .create("padding")?
                    .write_scalar(&(c.padding as i64))?;
            }
            LayerKind::BatchNorm(b) => {
                for (name, v) in [
                    ("gamma", &b.gamma),
                    ("beta", &b.beta),
                    ("running_mean", &b.mean),
                    ("running_var", &b.var),
                ] {
                    g.new_dataset_builder().with_data(&v[..]).create(name)?;
                }
                g.new_attr::<f64>().create("eps")?.write_scalar(&b.eps)?;
            }
            LayerKind::Activation(act, name) => {
                write_str(&g, "name", name)?;
                let function = match act {
                    Activation::Poly(c) => {
                        g.new_dataset_builder()
                            .with_data(&c[..])
                            .create("coefficients")?;
                        "poly"
                    }
                    Activation::Relu => "relu",
                    Activation::Swish => "swish",
                };
                write_str(&g, "function", function)?;
            }
            LayerKind::AvgPool(p) => {
                g.new_attr::<i64>()
                    .create("kernel")?
                    .write_scalar(&(p.kernel as i64))?;
                g.new_attr::<i64>()
                    .create("stride")?
                    .write_scalar(&(p.stride as i64))?;
                g.new_attr::<f64>()
                    .create("scale")?
                    .write_scalar(&p.scale)?;
            }
            LayerKind::GlobalAvgPool { scale } => {
                if let Some(s) = scale {
                    g.new_attr::<f64>().create("scale")?.write_scalar(s)?;
                }
            }
            LayerKind::Flatten => {}
            LayerKind::Dense(d) => {
                let w = ndarray::ArrayView2::from_shape((d.out, d.inp), &d.weight)
                    .map_err(|e| hdf5::Error::from(e.to_string()))?;
                g.new_dataset_builder().with_data(w).create("weight")?;
                g.new_dataset_builder()
                    .with_data(&d.bias[..])
                    .create("bias")?;
            }
        }
    }
    Ok(())
}

/// Writes a variable-length UTF-8 string attribute (what h5py writes for a `str`).
pub(crate) fn write_str(loc: &Location, name: &str, value: &str) -> hdf5::Result<()> {
    let v = VarLenUnicode::from_str(value).map_err(|e| hdf5::Error::from(e.to_string()))?;
    loc.new_attr::<VarLenUnicode>()
        .create(name)?
        .write_scalar(&v)
}

/// An unsigned integer attribute, or what is wrong with it in words.
pub(crate) fn read_u64(loc: &Location, name: &str) -> Result<u64, String> {
    loc.attr(name)
        .and_then(|a| a.read_scalar::<u64>())
        .map_err(|_| format!("unreadable attribute '{name}'"))
}

/// A string attribute, whether h5py wrote it variable-length (the default for `str`) or
/// fixed-length (`numpy.bytes_`).
pub(crate) fn read_str(loc: &Location, name: &str) -> R<String> {
    let attr = loc
        .attr(name)
        .map_err(|_| format!("missing attribute '{name}'"))?;
    if let Ok(s) = attr.read_scalar::<VarLenUnicode>() {
        return Ok(s.as_str().to_string());
    }
    if let Ok(s) = attr.read_scalar::<VarLenAscii>() {
        return Ok(s.as_str().to_string());
    }
    if let Ok(s) = attr.read_scalar::<FixedAscii<1024>>() {
        return Ok(s.as_str().to_string());
    }
    if let Ok(s) = attr.read_scalar::<FixedUnicode<1024>>() {
        return Ok(s.as_str().to_string());
    }
    Err(format!("attribute '{name}' is not a string"))
}

fn read_strings(loc: &Location, name: &str) -> R<Vec<String>> {
    let attr = attribute(loc, name)?;
    if let Ok(v) = attr.read_raw::<VarLenUnicode>() {
        return Ok(v.iter().map(|s| s.as_str().to_string()).collect());
    }
    if let Ok(v) = attr.read_raw::<FixedAscii<1024>>() {
        return Ok(v.iter().map(|s| s.as_str().to_string()).collect());
    }
    Err(format!("attribute '{name}' is not an array of strings"))
}

pub(crate) fn scalar<T: hdf5::H5Type>(loc: &Location, name: &str) -> R<T> {
    loc.attr(name)
        .map_err(|_| format!("missing attribute '{name}'"))?
        .read_scalar::<T>()
        .map_err(|e| format!("attribute '{name}': {e}"))
}

/// An attribute, its declared size checked (see [`bounded`]).
fn attribute(loc: &Location, name: &str) -> R<hdf5::Attribute> {
    let attr = loc
        .attr(name)
        .map_err(|_| format!("missing attribute '{name}'"))?;
    bounded(&format!("attribute '{name}'"), &attr.shape())?;
    Ok(attr)
}

fn floats(loc: &Location, name: &str) -> R<Vec<f64>> {
    attribute(loc, name)?
        .read_raw::<f64>()
        .map_err(|e| format!("attribute '{name}': {e}"))
}

fn usizes(loc: &Location, name: &str) -> R<Vec<usize>> {
    let v = attribute(loc, name)?
        .read_raw::<i64>()
        .map_err(|e| format!("attribute '{name}': {e}"))?;
    v.into_iter()
        .map(|x| usize::try_from(x).map_err(|_| format!("attribute '{name}' has a negative entry")))
        .collect()
}

/// The most values one dataset or attribute of a model file may declare (512 MiB of f64): more
/// than any network hejob can encrypt, far less than a declared shape can ask for.
pub const MAX_VALUES: usize = 1 << 26;

/// The number of values `shape` declares, refused beyond [`MAX_VALUES`] before anything is
/// allocated for them.
pub(crate) fn bounded(what: &str, shape: &[usize]) -> R<usize> {
    let n = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_VALUES)
        .ok_or_else(|| {
            format!("{what} declares shape {shape:?}, more than the {MAX_VALUES} values allowed")
        })?;
    Ok(n)
}

/// The dataset `name` of `g`, its declared size checked (see [`bounded`]); `shown` is how
/// messages name it.
pub(crate) fn bounded_dataset(g: &Group, name: &str, shown: &str) -> R<hdf5::Dataset> {
    let ds = g
        .dataset(name)
        .map_err(|_| format!("missing dataset '{shown}'"))?;
    bounded(&format!("dataset '{shown}'"), &ds.shape())?;
    Ok(ds)
}

/// A float dataset (any float or integer type HDF5 converts) with its shape.
fn data(g: &Group, name: &str) -> R<(Vec<usize>, Vec<f64>)> {
    let ds = bounded_dataset(g, name, name)?;
    let values = ds
        .read_raw::<f64>()
        .map_err(|e| format!("dataset '{name}': {e}"))?;
    Ok((ds.shape(), values))
}
