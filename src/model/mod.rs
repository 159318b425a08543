//! The network as data: layers, the HDF5 model file, ONNX import, the folds the encrypted path
//! relies on, the f64 reference forward pass, polynomial activations, and the paper's
//! architectures.

pub mod arch;
pub mod file;
pub mod fold;
pub mod layers;
pub mod onnx;
pub mod plain;
pub mod poly;
pub mod prune;
pub mod recalibrate;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use crate::data::Shape;
pub use layers::{Activation, AvgPool, BatchNorm, Conv, Dense, Layer, LayerKind};

use crate::data::Dataset;

/// Everything that can be wrong with a model, naming the file or the layer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("layer {index} ({name}): {reason}")]
    Layer {
        index: usize,
        name: String,
        reason: String,
    },
    #[error("model: {0}")]
    Invalid(String),
    #[error("model file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("unknown activation {0:?} (known: {known})", known = poly::NAMES.join(", "))]
    UnknownActivation(String),
}

/// How raw pixel bytes become network inputs: `x = (byte · scale − mean[c]) / std[c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    pub scale: f64,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Preprocess {
    /// The conventional normalisation of a dataset (per-channel training-set statistics).
    pub fn standard(dataset: Dataset) -> Self {
        match dataset {
            Dataset::Mnist => Self {
                scale: 1.0 / 255.0,
                mean: vec![0.1307],
                std: vec![0.3081],
            },
            Dataset::Cifar10 => Self {
                scale: 1.0 / 255.0,
                mean: vec![0.4914, 0.4822, 0.4465],
                std: vec![0.2470, 0.2435, 0.2616],
            },
        }
    }

    /// Applies the normalisation to one image of `shape`.
    pub fn apply(&self, shape: Shape, pixels: &[u8]) -> Vec<f64> {
        let plane = shape.h * shape.w;
        pixels
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let c = i / plane;
                (p as f64 * self.scale - self.mean[c]) / self.std[c]
            })
            .collect()
    }
}

/// A trained (or random) network with everything needed to use it on its dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub dataset: Dataset,
    pub input: Shape,
    pub classes: Vec<String>,
    pub preprocess: Preprocess,
    pub layers: Vec<Layer>,
    /// Free-form provenance: training config, epochs, seed, pruning history, accuracy.
    pub provenance: BTreeMap<String, String>,
}

impl Model {
    /// Checks every layer against its neighbours and the model against its dataset; returns
    /// the shape after each layer.
    pub fn validate(&self) -> Result<Vec<Shape>, ModelError> {
        if self.input != self.dataset.shape() {
            return Err(ModelError::Invalid(format!(
                "input shape {} does not match {} images ({})",
                self.input,
                self.dataset,
                self.dataset.shape()
            )));
        }
        let p = &self.preprocess;
        let channels_ok = p.mean.len() == self.input.c && p.std.len() == self.input.c;
        let values_ok = p.scale.is_finite()
            && p.mean.iter().all(|m| m.is_finite())
            && p.std.iter().all(|s| s.is_finite() && *s > 0.0);
        if !channels_ok || !values_ok {
            return Err(ModelError::Invalid(format!(
                "preprocessing needs finite scale, {} means and {} positive stds",
                self.input.c, self.input.c
            )));
        }
        let classes = self.dataset.classes();
        if self.classes.len() != classes.len() {
            return Err(ModelError::Invalid(format!(
                "{} classes, but {} has {}",
                self.classes.len(),
                self.dataset,
                classes.len()
            )));
        }
        let mut shapes = Vec::with_capacity(self.layers.len());
        let mut shape = self.input;
        for (i, layer) in self.layers.iter().enumerate() {
            shape = layer.output_shape(i, shape)?;
            let values = [shape.c, shape.h, shape.w]
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d));
            if values.is_none_or(|n| n > file::MAX_VALUES) {
                return Err(ModelError::Layer {
                    index: i,
                    name: layer.name.clone(),
                    reason: format!(
                        "its output {shape} has more than the {} values a feature map may have",
                        file::MAX_VALUES
                    ),
                });
            }
            shapes.push(shape);
        }
        if shape != Shape::new(self.classes.len(), 1, 1) {
            return Err(ModelError::Invalid(format!(
                "the network outputs {shape}, but there are {} classes",
                self.classes.len()
            )));
        }
        Ok(shapes)
    }
}
