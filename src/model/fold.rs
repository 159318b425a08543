//! Level-saving rewrites of a layer list that leave its function unchanged: batch-norm folded
//! into the preceding conv/dense, and the paper's "coefficient manipulation" (an average pool's
//! 1/n and a polynomial activation's leading coefficient moved into the next conv/dense weights).

use super::{Activation, Layer, LayerKind, Shape};

/// All folds, in the order the encrypted path needs them.
pub fn fold_for_he(layers: &[Layer], input: Shape) -> Vec<Layer> {
    let folded = fold_batchnorm(layers);
    let folded = fold_pool_scales(&folded, input);
    fold_activation_leading(&folded)
}

/// Merges every batch-norm that directly follows a conv or dense layer into its weights and
/// bias: `w' = w·m`, `b' = b·m + o` per output channel, where `bn(x) = m·x + o`. A batch-norm
/// with nothing to merge into stays.
pub fn fold_batchnorm(layers: &[Layer]) -> Vec<Layer> {
    let mut out: Vec<Layer> = Vec::with_capacity(layers.len());
    for layer in layers {
        if let LayerKind::BatchNorm(bn) = &layer.kind {
            if let Some(prev) = out.last_mut() {
                let (weight, bias, per_out) = match &mut prev.kind {
                    LayerKind::Conv(c) => (&mut c.weight, &mut c.bias, c.ic * c.kh * c.kw),
                    LayerKind::Dense(d) => (&mut d.weight, &mut d.bias, d.inp),
                    _ => {
                        out.push(layer.clone());
                        continue;
                    }
                };
                for (o, b) in bias.iter_mut().enumerate() {
                    let (m, off) = bn.affine(o);
                    weight[o * per_out..(o + 1) * per_out]
                        .iter_mut()
                        .for_each(|w| *w *= m);
                    *b = *b * m + off;
                }
                prev.name = format!("{}+{}", prev.name, layer.name);
                continue;
            }
        }
        out.push(layer.clone());
    }
    out
}

/// Turns average pools into sum pools (scale 1) by moving their scale into the next conv/dense
/// weights, where only scale-commuting layers (pools, flatten) lie in between. `input` is the
/// network's input shape (a global average pool's divisor depends on it).
pub fn fold_pool_scales(layers: &[Layer], input: Shape) -> Vec<Layer> {
    let mut out = layers.to_vec();
    let mut shape = input;
    for i in 0..out.len() {
        let factor = match &out[i].kind {
            LayerKind::AvgPool(p) => p.scale,
            LayerKind::GlobalAvgPool { scale } => scale.unwrap_or(1.0 / (shape.h * shape.w) as f64),
            _ => 1.0,
        };
        match out[i].output_shape(i, shape) {
            Ok(next) => shape = next,
            Err(_) => break, // an invalid network is reported by `Model::validate`, not here
        }
        if factor != 1.0 && absorb(&mut out[i + 1..], factor) {
            match &mut out[i].kind {
                LayerKind::AvgPool(p) => p.scale = 1.0,
                LayerKind::GlobalAvgPool { scale } => *scale = Some(1.0),
                _ => unreachable!("only pools have a factor"),
            }
        }
    }
    out
}

/// Makes each polynomial activation of degree ≥ 2 monic by moving its leading coefficient `a`
/// into the next conv/dense weights: `W·p(x) = (a·W)·(p(x)/a)`. The monic polynomial needs one
/// level less (no product by `a` after the highest power).
pub fn fold_activation_leading(layers: &[Layer]) -> Vec<Layer> {
    let mut out = layers.to_vec();
    for i in 0..out.len() {
        let lead = match &out[i].kind {
            LayerKind::Activation(Activation::Poly(c), _) if c.len() >= 3 => c[c.len() - 1],
            _ => continue,
        };
        if lead == 0.0 || lead == 1.0 {
            continue;
        }
        if absorb(&mut out[i + 1..], lead) {
            if let LayerKind::Activation(Activation::Poly(c), _) = &mut out[i].kind {
                c.iter_mut().for_each(|k| *k /= lead);
            }
        }
    }
    out
}

/// Multiplies the weights of the first conv/dense in `rest` by `factor`, if only layers that
/// commute with a scalar (pools, flatten) come before it. Returns whether it did.
fn absorb(rest: &mut [Layer], factor: f64) -> bool {
    for layer in rest {
        match &mut layer.kind {
            LayerKind::Conv(c) => {
                c.weight.iter_mut().for_each(|w| *w *= factor);
                return true;
            }
            LayerKind::Dense(d) => {
                d.weight.iter_mut().for_each(|w| *w *= factor);
                return true;
            }
            LayerKind::AvgPool(_) | LayerKind::GlobalAvgPool { .. } | LayerKind::Flatten => {}
            LayerKind::BatchNorm(_) | LayerKind::Activation(..) => return false,
        }
    }
    false
}
