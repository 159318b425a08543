//! The paper's two architectures (3layer-CNN for MNIST, 4layer-CNN for CIFAR-10), built with
//! random weights (He normal, or PyTorch's default as the paper's training had) and plausible
//! batch-norm statistics.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use super::{
    poly, AvgPool, BatchNorm, Conv, Dense, Layer, LayerKind, Model, ModelError, Preprocess,
};
use crate::data::Dataset;

/// The architectures of the paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Conv(1→5, 5×5, s2) → BN → act → Conv(5→C, 5×5, s2) → BN → act → flatten → FC(16C→10).
    Mnist3Layer,
    /// 3 × [Conv 3×3 pad 1 → BN → act → AvgPool 2] (32, C, 128 channels) → GAP → FC(128→10).
    Cifar10FourLayer,
}

impl Arch {
    /// Both architectures.
    pub const ALL: [Arch; 2] = [Arch::Mnist3Layer, Arch::Cifar10FourLayer];

    /// The architecture named `name` (`mnist-3layer`, `cifar10-4layer`).
    pub fn named(name: &str) -> Option<Arch> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The paper's conv2 width (MNIST 50, CIFAR-10 64).
    pub fn default_conv2(&self) -> usize {
        match self {
            Arch::Mnist3Layer => 50,
            Arch::Cifar10FourLayer => 64,
        }
    }

    pub fn dataset(&self) -> Dataset {
        match self {
            Arch::Mnist3Layer => Dataset::Mnist,
            Arch::Cifar10FourLayer => Dataset::Cifar10,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Arch::Mnist3Layer => "mnist-3layer",
            Arch::Cifar10FourLayer => "cifar10-4layer",
        }
    }
}

/// How conv and dense weights are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightInit {
    /// He normal: N(0, 2/fan_in) weights, N(0, 0.01²) biases.
    HeNormal,
    /// PyTorch's default for Conv2d and Linear (the paper trained in PyTorch): weights and
    /// biases uniform in ±1/√fan_in, about 2.4× smaller than He normal. Before a batch norm the
    /// scale is irrelevant to the forward pass, but AdamW's steps are a fixed size, so smaller
    /// weights turn faster.
    TorchDefault,
}

impl WeightInit {
    /// Both ways.
    pub const ALL: [WeightInit; 2] = [WeightInit::HeNormal, WeightInit::TorchDefault];

    /// Its short name (`he`, `torch`).
    pub fn name(&self) -> &'static str {
        match self {
            WeightInit::HeNormal => "he",
            WeightInit::TorchDefault => "torch",
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            WeightInit::HeNormal => "He normal",
            WeightInit::TorchDefault => "PyTorch default, uniform ±1/sqrt(fan_in)",
        }
    }
}

/// A random He-initialised model of `arch` with activation `activation` (a name of
/// `poly::NAMES`).
pub fn random_model(
    arch: Arch,
    activation: &str,
    conv2: Option<usize>,
    seed: u64,
) -> Result<Model, ModelError> {
    random_model_with(arch, activation, conv2, seed, WeightInit::HeNormal)
}

/// [`random_model`] with the weights drawn by `init`.
pub fn random_model_with(
    arch: Arch,
    activation: &str,
    conv2: Option<usize>,
    seed: u64,
    init: WeightInit,
) -> Result<Model, ModelError> {
    let act = poly::named(activation)?;
    let c2 = conv2.unwrap_or(arch.default_conv2());
    if c2 == 0 {
        return Err(ModelError::Invalid(
            "conv2 needs at least one channel".into(),
        ));
    }
    let mut g = Init(StdRng::seed_from_u64(seed), init);
    let act_layer = |i: usize| {
        Layer::new(
            format!("act{i}"),
            LayerKind::Activation(act.clone(), activation.to_string()),
        )
    };
    let pool = |i: usize| {
        Layer::new(
            format!("pool{i}"),
            LayerKind::AvgPool(AvgPool {
                kernel: 2,
                stride: 2,
                scale: 0.25,
            }),
        )
    };
    let layers = match arch {
        Arch::Mnist3Layer => vec![
            g.conv("conv1", 1, 5, 5, 2, 0),
            g.bn("bn1", 5),
            act_layer(1),
            g.conv("conv2", 5, c2, 5, 2, 0),
            g.bn("bn2", c2),
            act_layer(2),
            Layer::new("flatten", LayerKind::Flatten),
            g.dense("fc", c2 * 16, 10),
        ],
        Arch::Cifar10FourLayer => vec![
            g.conv("conv1", 3, 32, 3, 1, 1),
            g.bn("bn1", 32),
            act_layer(1),
            pool(1),
            g.conv("conv2", 32, c2, 3, 1, 1),
            g.bn("bn2", c2),
            act_layer(2),
            pool(2),
            g.conv("conv3", c2, 128, 3, 1, 1),
            g.bn("bn3", 128),
            act_layer(3),
            pool(3),
            Layer::new("gap", LayerKind::GlobalAvgPool { scale: None }),
            g.dense("fc", 128, 10),
        ],
    };
    let dataset = arch.dataset();
    let provenance = BTreeMap::from([
        ("architecture".to_string(), arch.name().to_string()),
        ("activation".to_string(), activation.to_string()),
        (
            "weights".to_string(),
            format!("random ({}), seed {seed}", init.describe()),
        ),
        ("conv2_channels".to_string(), c2.to_string()),
    ]);
    let model = Model {
        dataset,
        input: dataset.shape(),
        classes: dataset.classes(),
        preprocess: Preprocess::standard(dataset),
        layers,
        provenance,
    };
    model.validate()?;
    Ok(model)
}

/// Seeded random initialisation.
struct Init(StdRng, WeightInit);

impl Init {
    fn normal(&mut self, n: usize, std: f64) -> Vec<f64> {
        let d = Normal::new(0.0, std).expect("a positive std");
        (0..n).map(|_| d.sample(&mut self.0)).collect()
    }

    fn uniform(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.0.random_range(lo..hi)).collect()
    }

    fn weights(&mut self, n: usize, fan_in: f64) -> Vec<f64> {
        match self.1 {
            WeightInit::HeNormal => self.normal(n, (2.0 / fan_in).sqrt()),
            WeightInit::TorchDefault => self.symmetric(n, 1.0 / fan_in.sqrt()),
        }
    }

    fn biases(&mut self, n: usize, fan_in: f64) -> Vec<f64> {
        match self.1 {
            WeightInit::HeNormal => self.normal(n, 0.01),
            WeightInit::TorchDefault => self.symmetric(n, 1.0 / fan_in.sqrt()),
        }
    }

    fn symmetric(&mut self, n: usize, bound: f64) -> Vec<f64> {
        self.uniform(n, -bound, bound)
    }

    fn conv(
        &mut self,
        name: &str,
        ic: usize,
        oc: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Layer {
        let fan_in = (ic * k * k) as f64;
        Layer::new(
            name,
            LayerKind::Conv(Conv::square(
                (oc, ic, k),
                (stride, padding),
                self.weights(oc * ic * k * k, fan_in),
                self.biases(oc, fan_in),
            )),
        )
    }

    fn bn(&mut self, name: &str, c: usize) -> Layer {
        Layer::new(
            name,
            LayerKind::BatchNorm(BatchNorm {
                gamma: self.uniform(c, 0.9, 1.1),
                beta: self.normal(c, 0.1),
                mean: self.normal(c, 0.1),
                var: self.uniform(c, 0.5, 1.5),
                eps: 1e-5,
            }),
        )
    }

    fn dense(&mut self, name: &str, inp: usize, out: usize) -> Layer {
        Layer::new(
            name,
            LayerKind::Dense(Dense {
                out,
                inp,
                weight: self.weights(out * inp, inp as f64),
                bias: self.biases(out, inp as f64),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv_and_dense(m: &Model) -> Vec<(f64, Vec<f64>, Vec<f64>)> {
        m.layers
            .iter()
            .filter_map(|l| match &l.kind {
                LayerKind::Conv(c) => Some((
                    (c.ic * c.kh * c.kw) as f64,
                    c.weight.clone(),
                    c.bias.clone(),
                )),
                LayerKind::Dense(d) => Some((d.inp as f64, d.weight.clone(), d.bias.clone())),
                _ => None,
            })
            .collect()
    }

    fn max_abs(v: &[f64]) -> f64 {
        v.iter().fold(0.0, |m, x| m.max(x.abs()))
    }

    #[test]
    fn torch_init_draws_uniformly_within_one_over_root_fan_in() {
        for arch in [Arch::Mnist3Layer, Arch::Cifar10FourLayer] {
            let m = random_model_with(arch, "square", None, 2, WeightInit::TorchDefault).unwrap();
            for (fan_in, w, b) in conv_and_dense(&m) {
                let bound = 1.0 / fan_in.sqrt();
                assert!(
                    max_abs(&w) <= bound && max_abs(&w) > 0.9 * bound,
                    "{arch:?}"
                );
                assert!(max_abs(&b) <= bound, "{arch:?}");
                // a uniform variable's mean square is bound²/3
                let ms = w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64;
                assert!(
                    (ms / (bound * bound / 3.0) - 1.0).abs() < 0.25,
                    "{arch:?} {ms}"
                );
            }
            assert!(m.provenance["weights"].contains("PyTorch default"));
        }
    }

    #[test]
    fn he_init_is_the_default_and_has_variance_two_over_fan_in() {
        let arch = Arch::Cifar10FourLayer;
        let he = random_model(arch, "square", None, 2).unwrap();
        let explicit = random_model_with(arch, "square", None, 2, WeightInit::HeNormal).unwrap();
        assert_eq!(he, explicit);
        for (fan_in, w, _) in conv_and_dense(&he) {
            let ms = w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64;
            assert!((ms * fan_in / 2.0 - 1.0).abs() < 0.25, "{fan_in} {ms}");
        }
    }
}
