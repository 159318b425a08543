//! Batch-norm statistics re-estimated on clean images: training with augmentation leaves each
//! batch norm's running mean and variance fitted to augmented inputs, which the test images
//! are not; one pass per batch norm over the unaugmented training set fixes them, weights
//! untouched.

use rayon::prelude::*;

use super::{plain, LayerKind, Model};
use crate::data::Images;

/// Per-channel sums of a feature map's values and squares, over images.
#[derive(Clone)]
struct Moments {
    sum: Vec<f64>,
    squares: Vec<f64>,
    count: usize,
}

impl Moments {
    fn new(channels: usize) -> Self {
        Self {
            sum: vec![0.0; channels],
            squares: vec![0.0; channels],
            count: 0,
        }
    }

    fn add_map(mut self, map: &[f64]) -> Self {
        let plane = map.len() / self.sum.len();
        for (c, values) in map.chunks(plane).enumerate() {
            self.sum[c] += values.iter().sum::<f64>();
            self.squares[c] += values.iter().map(|v| v * v).sum::<f64>();
        }
        self.count += plane;
        self
    }

    fn merge(mut self, other: Self) -> Self {
        for (a, b) in self.sum.iter_mut().zip(&other.sum) {
            *a += b;
        }
        for (a, b) in self.squares.iter_mut().zip(&other.squares) {
            *a += b;
        }
        self.count += other.count;
        self
    }
}

/// Sets every batch norm's `mean` and `var` to the population statistics of its input over
/// the first `limit` images of `images` (all if `None`), in layer order so that each sees the
/// already re-estimated ones before it, and records that in the provenance (`bn_statistics`).
/// `model` must be validated. Returns the number of images used.
pub fn batch_norm_statistics(model: &mut Model, images: &Images, limit: Option<usize>) -> usize {
    let n = limit.unwrap_or(images.len()).min(images.len());
    if n == 0 {
        return 0;
    }
    let norms: Vec<(usize, usize)> = (model.layers.iter().enumerate())
        .filter_map(|(i, l)| match &l.kind {
            LayerKind::BatchNorm(bn) => Some((i, bn.mean.len())),
            _ => None,
        })
        .collect();
    for (index, channels) in norms {
        let before = &model.layers[..index];
        let moments = (0..n)
            .into_par_iter()
            .fold(
                || Moments::new(channels),
                |m, i| {
                    let x = model.preprocess.apply(model.input, images.image(i));
                    m.add_map(&plain::forward(before, model.input, &x))
                },
            )
            .reduce(|| Moments::new(channels), Moments::merge);
        if let LayerKind::BatchNorm(bn) = &mut model.layers[index].kind {
            let count = moments.count as f64;
            for c in 0..channels {
                let mean = moments.sum[c] / count;
                bn.mean[c] = mean;
                bn.var[c] = (moments.squares[c] / count - mean * mean).max(0.0);
            }
        }
    }
    model.provenance.insert(
        "bn_statistics".into(),
        format!("re-estimated on {n} unaugmented training images (hejob recalibrate)"),
    );
    n
}
