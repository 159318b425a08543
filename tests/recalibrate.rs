//! Batch-norm recalibration: after `batch_norm_statistics` every batch norm normalises its
//! input over the given images exactly (per-channel mean β, variance γ²), later batch norms
//! seeing the earlier ones already re-estimated, and nothing but the statistics changes.

mod common;

use common::Rng;
use hejob::data::Images;
use hejob::model::arch::{random_model, Arch};
use hejob::model::plain::forward;
use hejob::model::recalibrate::batch_norm_statistics;
use hejob::model::{LayerKind, Model};

fn random_images(model: &Model, n: usize) -> Images {
    let mut r = Rng(3);
    let s = model.input;
    Images {
        shape: s,
        pixels: (0..n * s.len()).map(|_| r.below(256) as u8).collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
    }
}

#[test]
fn every_batch_norm_normalises_its_input_over_the_images() {
    for arch in [Arch::Mnist3Layer, Arch::Cifar10FourLayer] {
        let original = random_model(arch, "swish-rg7-deg4", None, 4).unwrap();
        let shapes = original.validate().unwrap();
        let images = random_images(&original, 40);
        let mut model = original.clone();
        assert_eq!(batch_norm_statistics(&mut model, &images, Some(30)), 30);
        assert!(model.provenance["bn_statistics"].contains("30 unaugmented"));
        let mut norms = 0;
        for (at, (before, after)) in original.layers.iter().zip(&model.layers).enumerate() {
            let (LayerKind::BatchNorm(old), LayerKind::BatchNorm(bn)) = (&before.kind, &after.kind)
            else {
                assert_eq!(before, after, "{arch:?}: layer {at} changed");
                continue;
            };
            norms += 1;
            assert_eq!((&old.gamma, &old.beta), (&bn.gamma, &bn.beta));
            assert_ne!(old.mean, bn.mean, "{arch:?}: {} kept its mean", after.name);
            let plane = shapes[at].h * shapes[at].w;
            let channels = bn.mean.len();
            let (mut sum, mut squares) = (vec![0.0; channels], vec![0.0; channels]);
            for i in 0..30 {
                let x = model.preprocess.apply(model.input, images.image(i));
                let y = forward(&model.layers[..=at], model.input, &x);
                for (c, values) in y.chunks(plane).enumerate() {
                    sum[c] += values.iter().sum::<f64>();
                    squares[c] += values.iter().map(|v| v * v).sum::<f64>();
                }
            }
            let count = (30 * plane) as f64;
            for c in 0..channels {
                let mean = sum[c] / count;
                let var = squares[c] / count - mean * mean;
                let want_var = bn.gamma[c].powi(2) * bn.var[c] / (bn.var[c] + bn.eps);
                assert!(
                    (mean - bn.beta[c]).abs() < 1e-9,
                    "{arch:?} {}: mean {mean}",
                    after.name
                );
                assert!(
                    (var - want_var).abs() < 1e-9 * (1.0 + want_var),
                    "{arch:?} {} channel {c}: variance {var}, want {want_var}",
                    after.name
                );
            }
        }
        assert_eq!(norms, if arch == Arch::Mnist3Layer { 2 } else { 3 });
    }
}
