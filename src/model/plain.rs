//! The f64 reference forward pass over a layer list, batched over images with rayon.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::{Layer, LayerKind, Model, Shape};
use crate::data::Images;

/// Runs `layers` on one input of `shape` (values channel-major) and returns the output.
pub fn forward(layers: &[Layer], shape: Shape, input: &[f64]) -> Vec<f64> {
    let mut shape = shape;
    let mut x = input.to_vec();
    for layer in layers {
        (shape, x) = apply(layer, shape, &x);
    }
    x
}

/// One layer on one feature map. The layer must have been validated against `s`.
pub fn apply(layer: &Layer, s: Shape, x: &[f64]) -> (Shape, Vec<f64>) {
    let plane = s.h * s.w;
    match &layer.kind {
        LayerKind::Conv(c) => {
            let (oh, ow) = c.output_hw(s.h, s.w).expect("validated conv shape");
            // im2col: one column per output pixel, one row per (input channel, ky, kx); the
            // convolution is then a single matrix product (BLAS-like speed via ndarray).
            let k = c.ic * c.kh * c.kw;
            let mut cols = Array2::<f64>::zeros((k, oh * ow));
            for i in 0..c.ic {
                for ky in 0..c.kh {
                    for kx in 0..c.kw {
                        let mut row = cols.row_mut((i * c.kh + ky) * c.kw + kx);
                        for oy in 0..oh {
                            let y = (oy * c.stride + ky) as isize - c.padding as isize;
                            if y < 0 || y >= s.h as isize {
                                continue;
                            }
                            for ox in 0..ow {
                                let xx = (ox * c.stride + kx) as isize - c.padding as isize;
                                if xx >= 0 && xx < s.w as isize {
                                    row[oy * ow + ox] =
                                        x[i * plane + y as usize * s.w + xx as usize];
                                }
                            }
                        }
                    }
                }
            }
            let w = ArrayView2::from_shape((c.oc, k), &c.weight).expect("validated conv weight");
            let mut out = w.dot(&cols);
            for (o, mut r) in out.rows_mut().into_iter().enumerate() {
                r += c.bias[o];
            }
            (Shape::new(c.oc, oh, ow), out.into_raw_vec_and_offset().0)
        }
        LayerKind::BatchNorm(b) => {
            let out = x
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let (m, o) = b.affine(i / plane);
                    m * v + o
                })
                .collect();
            (s, out)
        }
        LayerKind::Activation(a, _) => (s, x.iter().map(|&v| a.apply(v)).collect()),
        LayerKind::AvgPool(p) => {
            let oh = (s.h - p.kernel) / p.stride + 1;
            let ow = (s.w - p.kernel) / p.stride + 1;
            let mut out = vec![0.0; s.c * oh * ow];
            for c in 0..s.c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0.0;
                        for ky in 0..p.kernel {
                            for kx in 0..p.kernel {
                                acc +=
                                    x[c * plane + (oy * p.stride + ky) * s.w + ox * p.stride + kx];
                            }
                        }
                        out[(c * oh + oy) * ow + ox] = p.scale * acc;
                    }
                }
            }
            (Shape::new(s.c, oh, ow), out)
        }
        LayerKind::GlobalAvgPool { scale } => {
            let k = scale.unwrap_or(1.0 / plane as f64);
            let out = x
                .chunks(plane)
                .map(|ch| k * ch.iter().sum::<f64>())
                .collect();
            (Shape::new(s.c, 1, 1), out)
        }
        LayerKind::Flatten => (Shape::new(s.len(), 1, 1), x.to_vec()),
        LayerKind::Dense(d) => {
            let out = (0..d.out)
                .map(|o| {
                    let row = &d.weight[o * d.inp..(o + 1) * d.inp];
                    d.bias[o] + row.iter().zip(x).map(|(w, v)| w * v).sum::<f64>()
                })
                .collect();
            (Shape::new(d.out, 1, 1), out)
        }
    }
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f64]) -> usize {
    logits
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// Logits of images `range` of `images` through `model` (which must be validated), in parallel.
pub fn logits(model: &Model, images: &Images, range: std::ops::Range<usize>) -> Vec<Vec<f64>> {
    range
        .into_par_iter()
        .map(|i| {
            let x = model.preprocess.apply(model.input, images.image(i));
            forward(&model.layers, model.input, &x)
        })
        .collect()
}

/// Plain accuracy of `model` on the first `limit` images (all if `None`).
pub fn accuracy(model: &Model, images: &Images, limit: Option<usize>) -> (usize, f64) {
    let n = limit.unwrap_or(images.len()).min(images.len());
    (
        n,
        share_correct(&logits(model, images, 0..n), &images.labels),
    )
}

/// Share of `logits` (one row per image, in order) whose prediction is the image's label.
pub fn share_correct(logits: &[Vec<f64>], labels: &[u8]) -> f64 {
    if logits.is_empty() {
        return 0.0;
    }
    let correct = logits
        .iter()
        .zip(labels)
        .filter(|(l, &label)| argmax(l) == label as usize)
        .count();
    correct as f64 / logits.len() as f64
}

/// Gap between the largest and the second-largest logit. Where every logit is off by less than
/// half of it, the prediction cannot change; an image with a small margin is one that an
/// encrypted evaluation's error can misclassify.
pub fn margin(logits: &[f64]) -> f64 {
    let (first, second) =
        logits
            .iter()
            .fold((f64::NEG_INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                if v > a {
                    (v, a)
                } else {
                    (a, b.max(v))
                }
            });
    first - second
}

/// The largest |logit|.
pub fn largest_abs(logits: &[f64]) -> f64 {
    logits.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// The images (indices into `margins`) whose two largest logits are within `2·logit_error`:
/// the only ones that an encrypted evaluation with every logit error below `logit_error` can
/// classify differently from the plain network.
pub fn at_risk(margins: &[f64], logit_error: f64) -> Vec<usize> {
    (0..margins.len())
        .filter(|&i| margins[i] <= 2.0 * logit_error)
        .collect()
}

/// Measures `model`'s accuracy on all of `test` and records it in the provenance
/// (`plain_test_accuracy`); returns it.
pub fn record_accuracy(model: &mut Model, test: &Images) -> f64 {
    let (n, accuracy) = accuracy(model, test, None);
    model.provenance.insert(
        "plain_test_accuracy".into(),
        format!("{:.2}% ({n} test images, hejob eval)", 100.0 * accuracy),
    );
    accuracy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_the_gap_between_the_two_largest_logits() {
        assert_eq!(margin(&[1.0, 3.0, 2.5]), 0.5);
        assert_eq!(margin(&[3.0, 1.0, 2.0]), 1.0);
        assert_eq!(margin(&[-2.0, -2.0, -7.0]), 0.0);
    }

    #[test]
    fn share_correct_counts_predictions_equal_to_labels() {
        let logits = vec![vec![0.0, 1.0], vec![2.0, 1.0], vec![0.0, 5.0]];
        assert_eq!(share_correct(&logits, &[1, 1, 1]), 2.0 / 3.0);
        assert_eq!(share_correct(&[], &[]), 0.0);
    }
}
