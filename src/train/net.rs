//! The trainable network: a burn module mirroring a model's layer list, built from a `Model`'s
//! weights and written back into one, so nothing outside `train` depends on burn.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::{activation, Device, Tensor, TensorData};

use super::TrainError;
use crate::model::{Activation, Layer, LayerKind, Model};

/// One step of the forward pass; indices point into the module's parameter lists.
#[derive(Clone, Debug)]
enum Op {
    Conv(usize),
    Norm(usize),
    Act(Activation),
    /// Average pooling, times `gain` (1 for a true average).
    Pool {
        kernel: usize,
        stride: usize,
        gain: f64,
    },
    /// Mean over the plane, times `gain`.
    GlobalPool {
        gain: f64,
    },
    Flatten,
    Dense(usize),
}

/// A model's layers as burn modules.
#[derive(Module, Debug)]
pub struct Net {
    convs: Vec<Conv2d>,
    norms: Vec<BatchNorm>,
    dense: Vec<Linear>,
    #[module(skip)]
    ops: Vec<Op>,
}

fn tensor<const D: usize>(values: &[f64], shape: [usize; D], device: &Device) -> Tensor<D> {
    let data: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    let data = t.into_data();
    match data.as_slice::<f32>() {
        Ok(s) => s.iter().map(|&v| v as f64).collect(),
        Err(_) => data
            .convert::<f32>()
            .as_slice::<f32>()
            .expect("converted to f32")
            .iter()
            .map(|&v| v as f64)
            .collect(),
    }
}

impl Net {
    /// The module for `model`'s layers with its weights, on `device`.
    pub fn from_model(model: &Model, device: &Device) -> Result<Self, TrainError> {
        let shapes = model.validate()?;
        let (mut convs, mut norms, mut dense, mut ops) = (vec![], vec![], vec![], vec![]);
        for (i, layer) in model.layers.iter().enumerate() {
            let input = if i == 0 { model.input } else { shapes[i - 1] };
            let op = match &layer.kind {
                LayerKind::Conv(c) => {
                    let mut m = Conv2dConfig::new([c.ic, c.oc], [c.kh, c.kw])
                        .with_stride([c.stride, c.stride])
                        .with_padding(PaddingConfig2d::Explicit(
                            c.padding, c.padding, c.padding, c.padding,
                        ))
                        .init(device);
                    m.weight =
                        Param::from_tensor(tensor(&c.weight, [c.oc, c.ic, c.kh, c.kw], device));
                    m.bias = Some(Param::from_tensor(tensor(&c.bias, [c.oc], device)));
                    convs.push(m);
                    Op::Conv(convs.len() - 1)
                }
                LayerKind::BatchNorm(b) => {
                    let n = b.gamma.len();
                    let mut m = BatchNormConfig::new(n).with_epsilon(b.eps).init(device);
                    m.gamma = Param::from_tensor(tensor(&b.gamma, [n], device));
                    m.beta = Param::from_tensor(tensor(&b.beta, [n], device));
                    m.running_mean = RunningState::new(tensor(&b.mean, [n], device));
                    m.running_var = RunningState::new(tensor(&b.var, [n], device));
                    norms.push(m);
                    Op::Norm(norms.len() - 1)
                }
                LayerKind::Activation(a, _) => Op::Act(a.clone()),
                LayerKind::AvgPool(p) => Op::Pool {
                    kernel: p.kernel,
                    stride: p.stride,
                    gain: p.scale * (p.kernel * p.kernel) as f64,
                },
                LayerKind::GlobalAvgPool { scale } => Op::GlobalPool {
                    gain: scale.map_or(1.0, |s| s * (input.h * input.w) as f64),
                },
                LayerKind::Flatten => Op::Flatten,
                LayerKind::Dense(d) => {
                    let mut m = LinearConfig::new(d.inp, d.out).init(device);
                    // burn keeps [in, out]; the model file keeps [out, in]
                    let transposed: Vec<f64> = (0..d.inp)
                        .flat_map(|i| (0..d.out).map(move |o| d.weight[o * d.inp + i]))
                        .collect();
                    m.weight = Param::from_tensor(tensor(&transposed, [d.inp, d.out], device));
                    m.bias = Some(Param::from_tensor(tensor(&d.bias, [d.out], device)));
                    dense.push(m);
                    Op::Dense(dense.len() - 1)
                }
            };
            ops.push(op);
        }
        Ok(Self {
            convs,
            norms,
            dense,
            ops,
        })
    }

    /// This module with the batch-norm running statistics of `model` (a model of the same
    /// layers). burn's records do not carry running statistics reliably, model files do.
    pub fn with_running_stats(mut self, model: &Model) -> Self {
        let stats = model.layers.iter().filter_map(|l| match &l.kind {
            LayerKind::BatchNorm(b) => Some(b),
            _ => None,
        });
        for (m, b) in self.norms.iter_mut().zip(stats) {
            let (device, n) = (m.gamma.device(), b.mean.len());
            m.running_mean = RunningState::new(tensor(&b.mean, [n], &device));
            m.running_var = RunningState::new(tensor(&b.var, [n], &device));
        }
        self
    }

    /// Logits for a batch `[n, c, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut image = Some(x);
        let mut flat: Option<Tensor<2>> = None;
        for op in &self.ops {
            match op {
                Op::Conv(i) => image = image.map(|x| self.convs[*i].forward(x)),
                Op::Norm(i) => image = image.map(|x| self.norms[*i].forward(x)),
                Op::Act(a) => {
                    image = image.map(|x| act(a, x));
                    flat = flat.map(|x| act(a, x));
                }
                Op::Pool {
                    kernel,
                    stride,
                    gain,
                } => {
                    image = image.map(|x| {
                        let options =
                            AvgPoolOptions::new([*kernel, *kernel]).with_stride([*stride, *stride]);
                        let y = avg_pool2d(x, options);
                        scaled(y, *gain)
                    })
                }
                Op::GlobalPool { gain } => {
                    let x = image.take().expect("global pooling of a feature map");
                    let [n, c, h, w] = x.dims();
                    flat = Some(scaled(
                        x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c]),
                        *gain,
                    ));
                }
                Op::Flatten => {
                    let x = image.take().expect("flatten of a feature map");
                    let [n, c, h, w] = x.dims();
                    flat = Some(x.reshape([n, c * h * w]));
                }
                Op::Dense(i) => flat = flat.map(|x| self.dense[*i].forward(x)),
            }
        }
        flat.expect("a model ends in a dense layer")
    }

    /// `template` with this module's weights and batch-norm statistics.
    pub fn to_model(&self, template: &Model) -> Model {
        let mut model = template.clone();
        let mut ops = self.ops.iter();
        for layer in &mut model.layers {
            let op = ops.next().expect("one op per layer");
            write_layer(self, op, layer);
        }
        model
    }
}

fn write_layer(net: &Net, op: &Op, layer: &mut Layer) {
    match (op, &mut layer.kind) {
        (Op::Conv(i), LayerKind::Conv(c)) => {
            let m = &net.convs[*i];
            c.weight = values(m.weight.val());
            c.bias = m.bias.as_ref().map_or(vec![0.0; c.oc], |b| values(b.val()));
        }
        (Op::Norm(i), LayerKind::BatchNorm(b)) => {
            let m = &net.norms[*i];
            b.gamma = values(m.gamma.val());
            b.beta = values(m.beta.val());
            // `value` lags one update behind; `value_sync` merges the last one first
            b.mean = values(m.running_mean.value_sync());
            b.var = values(m.running_var.value_sync());
        }
        (Op::Dense(i), LayerKind::Dense(d)) => {
            let m = &net.dense[*i];
            let w = values(m.weight.val());
            d.weight = (0..d.out)
                .flat_map(|o| (0..d.inp).map(move |i| (o, i)))
                .map(|(o, i)| w[i * d.out + o])
                .collect();
            d.bias = m
                .bias
                .as_ref()
                .map_or(vec![0.0; d.out], |b| values(b.val()));
        }
        _ => {}
    }
}

fn scaled<const D: usize>(x: Tensor<D>, gain: f64) -> Tensor<D> {
    if gain == 1.0 {
        x
    } else {
        x.mul_scalar(gain)
    }
}

/// The activation on a tensor: a polynomial by Horner's rule, or exact ReLU / Swish.
fn act<const D: usize>(a: &Activation, x: Tensor<D>) -> Tensor<D> {
    match a {
        Activation::Relu => activation::relu(x),
        Activation::Swish => x.clone() * activation::sigmoid(x),
        Activation::Poly(c) => {
            // Horner's rule from the leading coefficient down
            let mut terms = c.iter().rev();
            let lead = terms.next().copied().unwrap_or(0.0);
            let mut acc = x.zeros_like().add_scalar(lead);
            for &k in terms {
                acc = (acc * x.clone()).add_scalar(k);
            }
            acc
        }
    }
}
