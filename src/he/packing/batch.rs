//! Batch-axis packing: slot s of every ciphertext belongs to image s, so a C×H×W input is
//! C·H·W ciphertexts and every layer is the plain layer with ciphertext × scalar products.
//!
//! Memory is bounded by streaming: a convolution stage (conv → batch-norm/activation → average
//! pool) is computed one output row at a time across all channels, pooling each row as soon as
//! it exists and dropping every input row that no later row reads; consecutive stages form one
//! pipeline, so the maps between them never exist whole (see [`conv_chain`]).
//!
//! Each convolution output is one fused scalar linear combination of its window's inputs
//! ([`Exec::dot_scalars`]), bit for bit the products and sums it replaces, at a fraction of
//! their memory traffic.

use super::{affine, dense_flat, Clock, Packing, Stage, StageLog};
use crate::he::activation;
use crate::he::counts::OpTally;
use crate::he::exec::{Backend, Exec};
use crate::he::parallel::{par_each, par_map};
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

    fn evaluate<B: Backend>(
        &self,
        exec: &Exec<B>,
        net: &Network,
        input: Vec<B::Ct>,
        stages: &mut StageLog,
    ) -> Result<Vec<B::Ct>, HeError> {
        let spans = spans(net);
        let is_conv = |&(i, _): &(usize, usize)| matches!(net.layers[i].kind, LayerKind::Conv(_));
        let mut map = input;
        let mut k = 0;
        while k < spans.len() {
            if is_conv(&spans[k]) {
                // consecutive convolution stages run as one pipeline
                let chain = spans[k..].iter().take_while(|s| is_conv(s)).count();
                map = conv_chain(exec, net, &spans[k..k + chain], map, stages)?;
                k += chain;
                continue;
            }
            let (i, end) = spans[k];
            let layers = &net.layers[i..end];
            let shape_in = net.shape_in(i);
            map = match &layers[0].kind {
                LayerKind::Flatten => map,
                LayerKind::Dense(d) => dense_flat(exec, d, map, |u| {
                    at(i, &layers[0], format!("output {u} has all-zero weights"))
                })?,
                _ => {
                    // a per-channel layer on its own: apply it channel by channel
                    let plane = shape_in.h * shape_in.w;
                    let mut rest = map.into_iter();
                    let groups: Vec<Vec<B::Ct>> = (0..shape_in.c)
                        .map(|_| rest.by_ref().take(plane).collect())
                        .collect();
                    let channels = par_each(groups, |ch, c| {
                        let shape = Shape::new(1, shape_in.h, shape_in.w);
                        Ok(channel_layer(exec, &layers[0], c, shape, ch)
                            .map_err(|e| e.at_layer(i, &layers[0].name))?
                            .0)
                    })?;
                    channels.into_iter().flatten().collect()
                }
            };
            stages.done(exec, &span_name(net, (i, end)));
            k += 1;
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

/// The network cut into stages (`(first, end)` layer ranges): one layer, or a convolution
/// with the pointwise layers after it, an average pool, and the pointwise layers after that.
fn spans(net: &Network) -> Vec<(usize, usize)> {
    let n = net.layers.len();
    let pointwise = |j: usize| {
        j < n
            && matches!(
                net.layers[j].kind,
                LayerKind::BatchNorm(_) | LayerKind::Activation(..)
            )
    };
    let mut spans = Vec::new();
    let mut i = 0;
    while i < n {
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
        spans.push((i, end));
        i = end;
    }
    spans
}

/// A stage's name: its layers' names joined by `+`.
fn span_name(net: &Network, (first, end): (usize, usize)) -> String {
    let names: Vec<&str> = net.layers[first..end]
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    names.join("+")
}

/// Consecutive convolution stages (`spans`) as one pipeline over rows. The last stage's output
/// rows are pulled one at a time; each stage pulls from the one before it just the input rows
/// that its next row reads (the first stage from `input`) and drops every input row that no
/// later row reads. So only a few rows of each map between the stages are ever live: peak
/// memory is about the input plus the output, not the largest intermediate map. Each stage's
/// operations and time are measured on their own and reported in order.
fn conv_chain<B: Backend>(
    exec: &Exec<B>,
    net: &Network,
    spans: &[(usize, usize)],
    input: Vec<B::Ct>,
    log: &mut StageLog,
) -> Result<Vec<B::Ct>, HeError> {
    let shape = net.shape_in(spans[0].0);
    let mut source = Source::Map {
        map: input.into_iter().map(Some).collect(),
        shape,
        next: 0,
    };
    for &(first, end) in spans {
        source = Source::Stage(Box::new(ConvStage::new(net, first, end, source)));
    }
    let Source::Stage(mut last) = source else {
        unreachable!("a chain has at least one stage")
    };
    let out = net.shapes[last.end - 1];
    let mut channels: Vec<Vec<B::Ct>> = (0..out.c)
        .map(|_| Vec::with_capacity(out.h * out.w))
        .collect();
    for _ in 0..out.h {
        for (o, row) in last.next_row(exec)?.into_iter().enumerate() {
            channels[o].extend(row);
        }
    }
    // rows that no later stage reads are still computed, so that every stage does (and
    // counts) its whole layer, as the paper's operation counts assume
    last.source.drain(exec)?;
    let mut stages = Vec::new();
    Source::Stage(last).report(net, &mut stages);
    log.interleaved(exec, stages);
    Ok(channels.into_iter().flatten().collect())
}

/// Where a convolution stage gets its input rows: a whole map, or the stage before it.
enum Source<'n, B: Backend> {
    /// A whole map (channel-major, `shape`), handed out row by row; `next` rows are out.
    Map {
        map: Vec<Option<B::Ct>>,
        shape: Shape,
        next: usize,
    },
    Stage(Box<ConvStage<'n, B>>),
}

impl<B: Backend> Source<'_, B> {
    /// The next row of every channel.
    fn next_row(&mut self, exec: &Exec<B>) -> Result<Vec<Vec<B::Ct>>, HeError> {
        match self {
            Source::Map { map, shape, next } => {
                let y = *next;
                *next += 1;
                (0..shape.c)
                    .map(|c| {
                        (0..shape.w)
                            .map(|x| {
                                map[(c * shape.h + y) * shape.w + x].take().ok_or_else(|| {
                                    HeError::Internal(format!("input row {y} taken twice"))
                                })
                            })
                            .collect()
                    })
                    .collect()
            }
            Source::Stage(stage) => stage.next_row(exec),
        }
    }

    /// Computes and drops the rows not pulled yet, here and upstream.
    fn drain(&mut self, exec: &Exec<B>) -> Result<(), HeError> {
        if let Source::Stage(stage) = self {
            let rows = stage.net.shapes[stage.end - 1].h;
            while stage.next_out < rows {
                stage.next_row(exec)?;
            }
            stage.source.drain(exec)?;
        }
        Ok(())
    }

    /// The stages of the chain that ends here, first to last, with what each cost.
    fn report(self, net: &Network, stages: &mut Vec<Stage>) {
        if let Source::Stage(stage) = self {
            let ConvStage {
                first,
                end,
                source,
                counts,
                seconds,
                ..
            } = *stage;
            source.report(net, stages);
            stages.push(Stage {
                name: span_name(net, (first, end)),
                counts,
                seconds,
            });
        }
    }
}

/// One convolution stage (`net.layers[first..end]`: conv, pointwise layers, optionally an
/// average pool and more pointwise layers) producing its output one row at a time: for each
/// output row, every channel computes just the convolution rows that row pools over (in
/// parallel across channels), applies the pointwise layers and pools them.
struct ConvStage<'n, B: Backend> {
    net: &'n Network,
    first: usize,
    end: usize,
    source: Source<'n, B>,
    /// The input rows received so far, as coefficient arrays (channel-major; `None` before a
    /// row arrives and after it is dropped).
    input: Vec<Option<B::Raw>>,
    received: usize,
    next_out: usize,
    /// This stage's own operations and seconds (not its source's).
    counts: OpTally,
    seconds: f64,
}

impl<'n, B: Backend> ConvStage<'n, B> {
    fn new(net: &'n Network, first: usize, end: usize, source: Source<'n, B>) -> Self {
        let shape_in = net.shape_in(first);
        Self {
            net,
            first,
            end,
            source,
            input: (0..shape_in.c * shape_in.h * shape_in.w)
                .map(|_| None)
                .collect(),
            received: 0,
            next_out: 0,
            counts: OpTally::default(),
            seconds: 0.0,
        }
    }

    /// The next output row of every channel.
    fn next_row(&mut self, exec: &Exec<B>) -> Result<Vec<Vec<B::Ct>>, HeError> {
        let net = self.net;
        let (first, end) = (self.first, self.end);
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
        let r = self.next_out;
        let conv_rows = r * stride..r * stride + kernel;
        // pull the input rows these conv rows read (the source accounts for its own work)
        let need = ((conv_rows.end - 1) * c.stride + c.kh)
            .saturating_sub(c.padding)
            .min(shape_in.h);
        let mut arrived = Vec::new();
        while self.received < need {
            arrived.push((self.received, self.source.next_row(exec)?));
            self.received += 1;
        }
        let (before, start) = (exec.tally(), Clock::start());
        for (y, row) in arrived {
            let cells: Vec<B::Ct> = row.into_iter().flatten().collect();
            let raw = par_each(cells, |ct, _| exec.to_raw(ct))?;
            for (k, cell) in raw.into_iter().enumerate() {
                let (i, x) = (k / shape_in.w, k % shape_in.w);
                self.input[(i * shape_in.h + y) * shape_in.w + x] = Some(cell);
            }
        }
        let input = &self.input;
        let rows = par_map(out.c, |o| {
            // the conv rows this output row pools over, then the pointwise layers on them
            let mut ch = conv_rows_of(exec, c, o, shape_in, conv_out, input, conv_rows.clone())
                .map_err(|e| e.at_layer(first, &net.layers[first].name))?;
            let mut shape = Shape::new(1, kernel, conv_out.w);
            // the band is `kernel` rows high, so the pool yields exactly this output row
            for j in first + 1..end {
                let layer = &net.layers[j];
                (ch, shape) = channel_layer(exec, layer, o, shape, ch)
                    .map_err(|e| e.at_layer(j, &layer.name))?;
            }
            Ok(ch)
        })?;
        // drop the input rows that no later output row reads
        let next_conv_row = (r + 1) * stride;
        let keep_from = (next_conv_row * c.stride)
            .saturating_sub(c.padding)
            .min(shape_in.h);
        for i in 0..shape_in.c {
            for y in 0..keep_from {
                for x in 0..shape_in.w {
                    self.input[(i * shape_in.h + y) * shape_in.w + x] = None;
                }
            }
        }
        self.next_out += 1;
        self.counts += exec.tally() - before;
        self.seconds += start.seconds();
        let level = exec.memory_log_level();
        if log::log_enabled!(level) {
            log::log!(
                level,
                "{}: output row {} of {} after {:.0} s of its own; {}",
                span_name(net, (first, end)),
                self.next_out,
                out.h,
                self.seconds,
                exec.memory_now()
            );
        }
        Ok(rows)
    }
}

/// Rows `rows` of output channel `o` of a convolution, one ciphertext per position: each the
/// fused sum of its window's inputs times their weights, plus the bias, rescaled.
fn conv_rows_of<B: Backend>(
    exec: &Exec<B>,
    c: &Conv,
    o: usize,
    input: Shape,
    out: Shape,
    map: &[Option<B::Raw>],
    rows: std::ops::Range<usize>,
) -> Result<Vec<B::Ct>, HeError> {
    let first = map
        .iter()
        .flatten()
        .next()
        .ok_or(HeError::Internal("empty input".into()))?;
    let level = B::raw_level(first);
    let s = exec.scale(level);
    let bias = if c.bias[o] == 0.0 {
        None
    } else {
        Some(exec.encode_scalar(c.bias[o], level, s * s)?)
    };
    let p = c.padding as isize;
    let mut cts = Vec::with_capacity(rows.len() * out.w);
    let mut terms = Vec::with_capacity(c.ic * c.kh * c.kw);
    for oy in rows {
        for ox in 0..out.w {
            terms.clear();
            for i in 0..c.ic {
                for ky in 0..c.kh {
                    let y = (oy * c.stride + ky) as isize - p;
                    for kx in 0..c.kw {
                        let x = (ox * c.stride + kx) as isize - p;
                        if y < 0 || x < 0 || y >= input.h as isize || x >= input.w as isize {
                            continue; // zero padding
                        }
                        let w = c.weight[c.at(o, i, ky, kx)];
                        if w == 0.0 {
                            exec.skip_zero();
                            continue;
                        }
                        let pixel = map[(i * input.h + y as usize) * input.w + x as usize]
                            .as_ref()
                            .ok_or(HeError::Internal(format!(
                                "input row {y} dropped too early"
                            )))?;
                        terms.push((pixel, w));
                    }
                }
            }
            let mut acc = exec.dot_scalars(&terms)?.ok_or_else(|| {
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
fn channel_layer<B: Backend>(
    exec: &Exec<B>,
    layer: &Layer,
    c: usize,
    shape: Shape,
    ch: Vec<B::Ct>,
) -> Result<(Vec<B::Ct>, Shape), HeError> {
    let scalar = |v: f64, level: usize, scale: f64| exec.encode_scalar(v, level, scale);
    match &layer.kind {
        LayerKind::BatchNorm(bn) => {
            let (m, off) = bn.affine(c);
            let out = par_each(ch, |ct, _| affine(exec, ct, m, off, &scalar))?;
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
fn scaled_sum<B: Backend>(
    exec: &Exec<B>,
    ch: &[B::Ct],
    cells: impl Iterator<Item = usize>,
    k: f64,
) -> Result<B::Ct, HeError> {
    let mut acc: Option<B::Ct> = None;
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
