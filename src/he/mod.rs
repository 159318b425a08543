//! Encrypted inference over any network of the model format: planning (depth, parameters,
//! rotation steps, predicted counts), the packings, and the client/server split around them.

pub mod activation;
pub mod cost;
pub mod counts;
pub mod exec;
pub mod infer;
pub mod packing;
pub(crate) mod parallel;
pub mod plan;

use crate::model::{fold, Activation, Layer, LayerKind, Model, Shape};
use crate::seal::SealError;

/// Everything that can go wrong in encrypted inference, naming the layer where it applies.
#[derive(Debug, thiserror::Error)]
pub enum HeError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Cost(#[from] cost::CostError),
    #[error(transparent)]
    Pool(#[from] crate::pool::PoolError),
    #[error("layer {index} ({name}): {reason}")]
    Layer {
        index: usize,
        name: String,
        reason: String,
    },
    #[error("the network needs more levels than the parameters provide")]
    TooDeep,
    #[error("no CKKS parameters at 128-bit security hold this network: {0}")]
    NoParameters(String),
    #[error(
        "the network is {depth} levels deep, but 128-bit CKKS parameters hold at most depth \
         {deepest} (N={ring}, {scale}); use fewer layers or activations of lower degree"
    )]
    TooDeepFor128 {
        /// The depth, in words ("12", or "more than 64").
        depth: String,
        deepest: usize,
        ring: u64,
        /// The scale that depth was reached at, in words ("a 2^30 scale").
        scale: String,
    },
    #[error("scale_bits {0} is outside the {1}..={2} that a fixed scale may take")]
    ScaleBits(u32, u32, u32),
    #[error("unknown packing {0:?} (expected one of: {known})", known = packing::names().join(", "))]
    UnknownPacking(String),
    #[error("{0} images given, but one run of this packing holds at most {1}")]
    TooManyImages(usize, usize),
    #[error("internal error in the encrypted evaluation: {0}")]
    Internal(String),
}

impl HeError {
    /// This error at layer `index` (`name`); running out of levels stays as it is, since the
    /// depth belongs to the whole network (the planner reads it).
    pub fn at_layer(self, index: usize, name: &str) -> HeError {
        match self {
            HeError::TooDeep => HeError::TooDeep,
            other => HeError::Layer {
                index,
                name: name.to_string(),
                reason: other.to_string(),
            },
        }
    }
}

/// A network ready for encryption: folded (BN merged, pool divisors and leading coefficients
/// moved into weights), validated, with the shape after each layer.
#[derive(Clone, Debug)]
pub struct Network {
    pub input: Shape,
    pub layers: Vec<Layer>,
    pub shapes: Vec<Shape>,
}

impl Network {
    /// Folds and checks a model; exact ReLU/Swish and polynomials of degree above 4 are
    /// refused here, naming the layer.
    pub fn from_model(model: &Model) -> Result<Self, HeError> {
        Self::from_layers(model.input, &model.layers)
    }

    /// The same from a bare layer list.
    pub fn from_layers(input: Shape, layers: &[Layer]) -> Result<Self, HeError> {
        let layers = fold::fold_for_he(layers, input);
        let mut shapes = Vec::with_capacity(layers.len());
        let mut shape = input;
        for (index, layer) in layers.iter().enumerate() {
            let bad = |reason: String| HeError::Layer {
                index,
                name: layer.name.clone(),
                reason,
            };
            shape = layer
                .output_shape(index, shape)
                .map_err(|e| bad(e.to_string()))?;
            shapes.push(shape);
            if let LayerKind::Activation(act, name) = &layer.kind {
                match act {
                    Activation::Poly(c) => {
                        activation::trimmed(c).map_err(bad)?;
                    }
                    _ => {
                        return Err(bad(format!(
                            "{name} is not a polynomial and cannot be evaluated on ciphertexts"
                        )))
                    }
                }
            }
        }
        Ok(Self {
            input,
            layers,
            shapes,
        })
    }

    /// The input shape of layer `i`.
    pub fn shape_in(&self, i: usize) -> Shape {
        if i == 0 {
            self.input
        } else {
            self.shapes[i - 1]
        }
    }

    /// Number of output values (logits).
    pub fn outputs(&self) -> usize {
        self.shapes.last().map_or(self.input.len(), Shape::len)
    }
}
