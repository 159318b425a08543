//! Batch-axis packing: slot s of every ciphertext belongs to image s, so a C×H×W input is
//! C·H·W ciphertexts and every layer is the plain layer with ciphertext × scalar products.
//!
//! Memory is bounded by streaming: a convolution stage (conv → batch-norm/activation → average
//! pool) is computed one output row at a time across all channels, pooling each row as soon as
//! it exists and dropping every input row that no later row reads (see [`conv_stage`]).

use super::{affine, dense_flat, par_map, Packing};
use crate::he::activation;
use crate::he::exec::{Ct, Exec};
use crate::he::{HeError, Network};
use crate::model::{Activation, Conv, Layer, LayerKind, Shape};

/// Batch-axis packing.
pub struct BatchAxis;

impl Packing for BatchAxis {
    fn name(&self) -> &'static str {
        "batch"
    }

    fn images_per_run(&self, slots: usize) -> usize {
        slots
    }

    fn fits(&self, _net: &Network, _slots: usize) -> Result<(), String> {
        Ok(())
    }

    fn noise_gain(&self, _net: &Network, _slots: usize) -> f64 {
        1.0 // every slot is its own image: nothing sums across slots
    }

    fn input_count(&self, net: &Network, _slots: usize) -> usize {
        net.input.len()
    }

    fn input_vectors(&self, net: &Network, _slots: usize, images: &[Vec<f64>]) -> Vec<Vec<f64>> {
        (0..net.input.len())
            .map(|p| images.iter().map(|img| img[p]).collect())
            .collect()
    }

    fn evaluate(
        &self,
        exec: &Exec,
        net: &Network,
        input: Vec<Ct>,
        stage: &mut dyn FnMut(&str),
    ) -> Result<Vec<Ct>, HeError> {
        let n = net.layers.len();
        let pointwise = |j: usize| {
            j < n
                && matches!(
                    net.layers[j].kind,
                    LayerKind::BatchNorm(_) | LayerKind::Activation(..)
                )
        };
        let mut map = input;
        let mut i = 0;
        while i < n {
            // a stage: one layer, or a convolution with the pointwise layers after it, an
            // average pool, and the pointwise layers after that (streamed row by row)
            let mut end = i + 1;
            if matches!(net.layers[i].kind, LayerKind::Conv(_)) {
                while pointwise(end) {
                    end += 1;
                }
                if end < n && matches!(net.layers[end].kind, LayerKind::AvgPool(_)) {
                    end += 1;
                    while pointwise(end) {
                        end += 1;
                    }
                }
            }
            let layers = &net.layers[i..end];
            let shape_in = net.shape_in(i);
            map = match &layers[0].kind {
                LayerKind::Conv(_) => conv_stage(exec, net, i, end, map)?,
                LayerKind::Flatten => map,
                LayerKind::Dense(d) => dense_flat(exec, d, &map, |u| {
                    at(i, &layers[0], format!("output {u} has all-zero weights"))
                })?,
                _ => {
                    // a per-channel layer on its own: apply it channel by channel
                    let plane = shape_in.h * shape_in.w;
                    let mut rest = map.into_iter();
                    let groups: Vec<Vec<Ct>> = (0..shape_in.c)
                        .map(|_| rest.by_ref().take(plane).collect())
                        .collect();
                    let channels = super::par_each(groups, |ch, c| {
                        let shape = Shape::new(1, shape_in.h, shape_in.w);
                        Ok(channel_layer(exec, &layers[0], c, shape, ch)
                            .map_err(|e| at(i, &layers[0], e))?
                            .0)
                    })?;
                    channels.into_iter().flatten().collect()
                }
            };
            let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
            stage(&names.join("+"));
            i = end;
        }
        Ok(map)
    }

    fn logits(&self, _net: &Network, outputs: &[Vec<f64>], images: usize) -> Vec<Vec<f64>> {
        (0..images)
            .map(|s| outputs.iter().map(|v| v[s]).collect())
            .collect()
    }
}

fn at(index: usize, layer: &Layer, reason: impl std::fmt::Display) -> HeError {
    HeError::Layer {
        index,
        name: layer.name.clone(),
        reason: reason.to_string(),
    }
}

/// A convolution stage (`net.layers[first..end]`: conv, pointwise layers, optionally an
/// average pool and more pointwise layers), streamed by rows of the stage's output: for each
/// output row, every channel computes just the convolution rows that row pools over (in
/// parallel across channels), applies the pointwise layers and pools them; input rows that no
/// later output row needs are dropped at once. Peak memory is the stage's output plus the input
/// rows still needed plus one pooling window of rows per worker, instead of the whole input
/// beside every convolution output.
fn conv_stage(
    exec: &Exec,
    net: &Network,
    first: usize,
    end: usize,
    input: Vec<Ct>,
) -> Result<Vec<Ct>, HeError> {
    let LayerKind::Conv(c) = &net.layers[first].kind else {
        unreachable!("a convolution stage starts with a convolution")
    };
    let shape_in = net.shape_in(first);
    let conv_out = net.shapes[first];
    let pool = (first + 1..end).find(|&j| matches!(net.layers[j].kind, LayerKind::AvgPool(_)));
    let (kernel, stride) = match pool.map(|j| &net.layers[j].kind) {
        Some(LayerKind::AvgPool(p)) => (p.kernel, p.stride),
        _ => (1, 1),
    };
    let out = net.shapes[end - 1];
    let mut input: Vec<Option<Ct>> = input.into_iter().map(Some).collect();
    let mut channels: Vec<Vec<Ct>> = (0..out.c)
        .map(|_| Vec::with_capacity(out.h * out.w))
        .collect();
    for r in 0..out.h {
        let conv_rows = r * stride..r * stride + kernel;
        let rows = par_map(out.c, |o| {
            // the conv rows this output row pools over, then the pointwise layers on them
            let mut ch = conv_rows_of(exec, c, o, shape_in, conv_out, &input, conv_rows.clone())
                .map_err(|e| at(first, &net.layers[first], e))?;
            let mut shape = Shape::new(1, kernel, conv_out.w);
            // the band is `kernel` rows high, so the pool yields exactly this output row
            for j in first + 1..end {
                let layer = &net.layers[j];
                (ch, shape) =
                    channel_layer(exec, layer, o, shape, ch).map_err(|e| at(j, layer, e))?;
            }
            Ok(ch)
        })?;
        for (o, row) in rows.into_iter().enumerate() {
            channels[o].extend(row);
        }
        // drop the input rows that no later output row reads
        let next_conv_row = (r + 1) * stride;
        let keep_from = (next_conv_row * c.stride)
            .saturating_sub(c.padding)
            .min(shape_in.h);
        for i in 0..shape_in.c {
            for y in 0..keep_from {
                for x in 0..shape_in.w {
                    input[(i * shape_in.h + y) * shape_in.w + x] = None;
                }
            }
        }
    }
    Ok(channels.into_iter().flatten().collect())
}

/// Rows `rows` of output channel `o` of a convolution, one ciphertext per position.
fn conv_rows_of(
    exec: &Exec,
    c: &Conv,
    o: usize,
    input: Shape,
    out: Shape,
    map: &[Option<Ct>],
    rows: std::ops::Range<usize>,
) -> Result<Vec<Ct>, HeError> {
    let first = map
        .iter()
        .flatten()
        .next()
        .ok_or(HeError::Internal("empty input".into()))?;
    let level = exec.level(first);
    let s = exec.scale(level);
    // this channel's weights, encoded once per call (a scalar encode is a cheap constant fill)
    let mut weights = Vec::with_capacity(c.ic * c.kh * c.kw);
    for i in 0..c.ic {
        for ky in 0..c.kh {
            for kx in 0..c.kw {
                let w = c.weight[c.at(o, i, ky, kx)];
                weights.push(if w == 0.0 {
                    None
                } else {
                    Some(exec.encode_scalar(w, level, s)?)
                });
            }
        }
    }
    let bias = if c.bias[o] == 0.0 {
        None
    } else {
        Some(exec.encode_scalar(c.bias[o], level, s * s)?)
    };
    let p = c.padding as isize;
    let mut cts = Vec::with_capacity(rows.len() * out.w);
    for oy in rows {
        for ox in 0..out.w {
            let mut acc = None;
            for i in 0..c.ic {
                for ky in 0..c.kh {
                    let y = (oy * c.stride + ky) as isize - p;
                    for kx in 0..c.kw {
                        let x = (ox * c.stride + kx) as isize - p;
                        if y < 0 || x < 0 || y >= input.h as isize || x >= input.w as isize {
                            continue; // zero padding
                        }
                        let Some(w) = &weights[(i * c.kh + ky) * c.kw + kx] else {
                            exec.skip_zero();
                            continue;
                        };
                        let pixel = map[(i * input.h + y as usize) * input.w + x as usize]
                            .as_ref()
                            .ok_or(HeError::Internal(format!(
                                "input row {y} dropped too early"
                            )))?;
                        if let Some(prod) = exec.multiply_plain(pixel, w)? {
                            exec.accumulate(&mut acc, prod)?;
                        }
                    }
                }
            }
            let mut acc = acc.ok_or_else(|| {
                HeError::Internal(format!(
                    "output channel {o} at ({oy}, {ox}) has only zero weights; prune it first"
                ))
            })?;
            if let Some(b) = &bias {
                exec.add_plain_assign(&mut acc, b)?;
            }
            exec.rescale(&mut acc)?;
            cts.push(acc);
        }
    }
    Ok(cts)
}

/// One per-channel layer on channel `c` (`shape` is 1×H×W).
fn channel_layer(
    exec: &Exec,
    layer: &Layer,
    c: usize,
    shape: Shape,
    ch: Vec<Ct>,
) -> Result<(Vec<Ct>, Shape), HeError> {
    let scalar = |v: f64, level: usize, scale: f64| exec.encode_scalar(v, level, scale);
    match &layer.kind {
        LayerKind::BatchNorm(bn) => {
            let (m, off) = bn.affine(c);
            let out = super::par_each(ch, |ct, _| affine(exec, ct, m, off, &scalar))?;
            Ok((out, shape))
        }
        LayerKind::Activation(Activation::Poly(coeffs), _) => {
            let coeffs = activation::trimmed(coeffs).map_err(HeError::Internal)?;
            let out = ch
                .into_iter()
                .map(|ct| {
                    activation::evaluate(exec, ct, coeffs, &|v, l, s| {
                        scalar(v, l, s).map(std::sync::Arc::new)
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok((out, shape))
        }
        LayerKind::AvgPool(p) => {
            let (oh, ow) = (
                (shape.h - p.kernel) / p.stride + 1,
                (shape.w - p.kernel) / p.stride + 1,
            );
            let mut out = Vec::with_capacity(oh * ow);
            for oy in 0..oh {
                for ox in 0..ow {
                    let cells = (0..p.kernel).flat_map(|ky| {
                        (0..p.kernel)
                            .map(move |kx| (oy * p.stride + ky) * shape.w + ox * p.stride + kx)
                    });
                    out.push(scaled_sum(exec, &ch, cells, p.scale)?);
                }
            }
            Ok((out, Shape::new(1, oh, ow)))
        }
        LayerKind::GlobalAvgPool { scale } => {
            let k = scale.unwrap_or(1.0 / (shape.h * shape.w) as f64);
            Ok((
                vec![scaled_sum(exec, &ch, 0..ch.len(), k)?],
                Shape::new(1, 1, 1),
            ))
        }
        _ => Err(HeError::Internal(format!(
            "{} is not a per-channel layer",
            layer.kind_name()
        ))),
    }
}

/// `k · Σ ch[i]` over `cells` (one product and rescale only when `k ≠ 1`).
fn scaled_sum(
    exec: &Exec,
    ch: &[Ct],
    cells: impl Iterator<Item = usize>,
    k: f64,
) -> Result<Ct, HeError> {
    let mut acc: Option<Ct> = None;
    for i in cells {
        let t = exec.copy(&ch[i])?;
        exec.accumulate(&mut acc, t)?;
    }
    let acc = acc.ok_or_else(|| HeError::Internal("empty pooling window".into()))?;
    if k == 1.0 {
        return Ok(acc);
    }
    let level = exec.level(&acc);
    let pk = exec.encode_scalar(k, level, exec.scale(level))?;
    let mut y = exec
        .multiply_plain(&acc, &pk)?
        .ok_or_else(|| HeError::Internal("pooling scale is zero".into()))?;
    exec.rescale(&mut y)?;
    Ok(y)
}
