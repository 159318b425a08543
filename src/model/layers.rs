//! The network as data: the layer kinds, their output shapes, and validation of each layer
//! against its neighbours.

use super::ModelError;
use crate::data::Shape;

/// A 2-D convolution, weights `oc × ic × kh × kw` (row-major, as PyTorch), zero padding.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub oc: usize,
    pub ic: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    pub weight: Vec<f64>,
    pub bias: Vec<f64>,
}

impl Conv {
    /// A `k × k` convolution from `ic` to `oc` channels (`weight`: `[o][i][y][x]`).
    pub fn square(
        (oc, ic, k): (usize, usize, usize),
        (stride, padding): (usize, usize),
        weight: Vec<f64>,
        bias: Vec<f64>,
    ) -> Self {
        Self {
            oc,
            ic,
            kh: k,
            kw: k,
            stride,
            padding,
            weight,
            bias,
        }
    }

    /// Index of weight `[o][i][y][x]`.
    pub fn at(&self, o: usize, i: usize, y: usize, x: usize) -> usize {
        ((o * self.ic + i) * self.kh + y) * self.kw + x
    }

    /// Output height and width for an input of `h × w`, if at least one output fits.
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let padded = |n: usize| n.checked_add(self.padding.checked_mul(2)?);
        let oh = padded(h)?.checked_sub(self.kh)?.checked_div(self.stride)? + 1;
        let ow = padded(w)?.checked_sub(self.kw)?.checked_div(self.stride)? + 1;
        Some((oh, ow))
    }
}

/// Batch normalisation with running statistics (inference form).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    pub gamma: Vec<f64>,
    pub beta: Vec<f64>,
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    pub eps: f64,
}

impl BatchNorm {
    /// Per-channel `(multiplier, offset)` so that `bn(x) = m·x + o`.
    pub fn affine(&self, c: usize) -> (f64, f64) {
        let m = self.gamma[c] / (self.var[c] + self.eps).sqrt();
        (m, self.beta[c] - m * self.mean[c])
    }
}

/// An activation function.
#[derive(Clone, Debug, PartialEq)]
pub enum Activation {
    /// `Σ coefficients[k] · x^k` (degree 0 upward).
    Poly(Vec<f64>),
    /// Exact ReLU (plaintext baselines only).
    Relu,
    /// Exact Swish `x·sigmoid(x)` (plaintext baselines only).
    Swish,
}

impl Activation {
    pub fn apply(&self, x: f64) -> f64 {
        match self {
            Activation::Poly(c) => c.iter().rev().fold(0.0, |acc, &k| acc * x + k),
            Activation::Relu => x.max(0.0),
            Activation::Swish => x / (1.0 + (-x).exp()),
        }
    }
}

/// Average pooling without padding. `scale` multiplies the window sum: `1/(k·k)` for a true
/// average, other values after the divisor has been folded into the next layer.
#[derive(Clone, Debug, PartialEq)]
pub struct AvgPool {
    pub kernel: usize,
    pub stride: usize,
    pub scale: f64,
}

/// A fully connected layer, weights `out × in` (row-major, as PyTorch).
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    pub out: usize,
    pub inp: usize,
    pub weight: Vec<f64>,
    pub bias: Vec<f64>,
}

/// One layer of the network.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerKind {
    Conv(Conv),
    BatchNorm(BatchNorm),
    /// The activation and the name it goes by (`swish-rg7-deg4`, `square`, `relu`, …).
    Activation(Activation, String),
    AvgPool(AvgPool),
    /// Global average pooling; `scale` multiplies the sum over the plane (`1/(h·w)` unfolded).
    GlobalAvgPool {
        scale: Option<f64>,
    },
    Flatten,
    Dense(Dense),
}

/// A named layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub name: String,
    pub kind: LayerKind,
}

impl Layer {
    pub fn new(name: impl Into<String>, kind: LayerKind) -> Self {
        Self {
            name: name.into(),
            kind,
        }
    }

    /// Its trainable parameters (a batch norm's scale and shift; its running statistics are
    /// not trained).
    pub fn parameters(&self) -> usize {
        match &self.kind {
            LayerKind::Conv(c) => c.weight.len() + c.bias.len(),
            LayerKind::Dense(d) => d.weight.len() + d.bias.len(),
            LayerKind::BatchNorm(b) => b.gamma.len() * 2,
            _ => 0,
        }
    }

    /// The short kind name used in files and messages.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            LayerKind::Conv(_) => "conv",
            LayerKind::BatchNorm(_) => "batchnorm",
            LayerKind::Activation(..) => "activation",
            LayerKind::AvgPool(_) => "avgpool",
            LayerKind::GlobalAvgPool { .. } => "global_avgpool",
            LayerKind::Flatten => "flatten",
            LayerKind::Dense(_) => "dense",
        }
    }

    /// The output shape for input `s`, after checking every parameter against it.
    pub fn output_shape(&self, index: usize, s: Shape) -> Result<Shape, ModelError> {
        let bad = |reason: String| ModelError::Layer {
            index,
            name: self.name.clone(),
            reason,
        };
        let finite = |what: &str, v: &[f64]| match v.iter().position(|x| !x.is_finite()) {
            Some(i) => Err(bad(format!("{what}[{i}] is {}", v[i]))),
            None => Ok(()),
        };
        let length = |what: &str, v: &[f64], n: usize| {
            if v.len() == n {
                finite(what, v)
            } else {
                Err(bad(format!("{what} has {} values, expected {n}", v.len())))
            }
        };
        match &self.kind {
            LayerKind::Conv(c) => {
                if c.ic != s.c {
                    return Err(bad(format!("expects {} input channels, gets {s}", c.ic)));
                }
                if c.oc == 0 || c.kh == 0 || c.kw == 0 || c.stride == 0 {
                    return Err(bad("channels, kernel and stride must be positive".into()));
                }
                length("weight", &c.weight, c.oc * c.ic * c.kh * c.kw)?;
                length("bias", &c.bias, c.oc)?;
                let (oh, ow) = c.output_hw(s.h, s.w).ok_or_else(|| {
                    bad(format!("{}×{} kernel does not fit input {s}", c.kh, c.kw))
                })?;
                Ok(Shape::new(c.oc, oh, ow))
            }
            LayerKind::BatchNorm(b) => {
                for (what, v) in [
                    ("gamma", &b.gamma),
                    ("beta", &b.beta),
                    ("running_mean", &b.mean),
                    ("running_var", &b.var),
                ] {
                    length(what, v, s.c)?;
                }
                if !(b.eps.is_finite() && b.eps >= 0.0) || b.var.iter().any(|v| v + b.eps <= 0.0) {
                    return Err(bad("running_var + eps must be positive".into()));
                }
                Ok(s)
            }
            LayerKind::Activation(Activation::Poly(c), _) => {
                if c.is_empty() {
                    return Err(bad("polynomial has no coefficients".into()));
                }
                finite("coefficients", c)?;
                Ok(s)
            }
            LayerKind::Activation(..) | LayerKind::Flatten if s.is_empty() => {
                Err(bad("empty input".into()))
            }
            LayerKind::Activation(..) => Ok(s),
            LayerKind::AvgPool(p) => {
                if p.kernel == 0 || p.stride == 0 || p.kernel > s.h || p.kernel > s.w {
                    return Err(bad(format!(
                        "pool kernel {} / stride {} does not fit input {s}",
                        p.kernel, p.stride
                    )));
                }
                finite("scale", &[p.scale])?;
                Ok(Shape::new(
                    s.c,
                    (s.h - p.kernel) / p.stride + 1,
                    (s.w - p.kernel) / p.stride + 1,
                ))
            }
            LayerKind::GlobalAvgPool { scale } => {
                finite("scale", &[scale.unwrap_or(1.0)])?;
                Ok(Shape::new(s.c, 1, 1))
            }
            LayerKind::Flatten => Ok(Shape::new(s.len(), 1, 1)),
            LayerKind::Dense(d) => {
                if !s.is_flat() {
                    return Err(bad(format!(
                        "expects a flat input, gets {s} (add a flatten layer)"
                    )));
                }
                if d.inp != s.c {
                    return Err(bad(format!("expects {} inputs, gets {}", d.inp, s.c)));
                }
                length("weight", &d.weight, d.out * d.inp)?;
                length("bias", &d.bias, d.out)?;
                Ok(Shape::new(d.out, 1, 1))
            }
        }
    }
}
