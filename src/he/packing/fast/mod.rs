//! `channel-fast`: channel-wise (one image per run) like the paper's method, but with the
//! slots used densely and the rotations shared.
//!
//! - Many channel planes per ciphertext, in power-of-two blocks, repeated when few, so that one
//!   rotation moves all of them and slot-wise layers (batch-norm, activation, pooling) cost one
//!   operation per ciphertext instead of per channel.
//! - Convolutions and dense layers are sums of rotated inputs times weight plaintexts with
//!   baby-step/giant-step sharing ([`linear`]); a dense layer leaves all its outputs in one
//!   ciphertext, and a global pooling before it is folded into its weights.
//! - Maps stay zero off their planes except where pooling spreads them, so pooled maps that
//!   miss each other are merged into one ciphertext (one rotation each), and a convolution may
//!   write its output planes into each other's stride gaps when that needs fewer products.
//! - The client sends each input channel's stride² phases (every stride-th row and column of
//!   the image, from each offset), and the first convolution is a stride-1 convolution over
//!   them whose kernel offsets are shared rotations: few input ciphertexts. The `-im2col`
//!   variants send one ciphertext per kernel offset instead (no rotation in the first
//!   convolution and a compact output even with a stride: less server time, a client that
//!   encrypts kh·kw ciphertexts per channel).
//! - Weight plaintexts are encoded once per model at the level where they are used (the
//!   executor's store), never per image.

mod layout;
mod linear;

use super::grid::sum_progression;
use super::{Packing, StageLog};
use crate::he::activation;
use crate::he::exec::{interleave, lane, Backend, Exec};
use crate::he::parallel::par_each;
use crate::he::{HeError, Network};
use crate::model::{Activation, LayerKind};
use layout::Layout;

/// The fast channel-wise packing, with `lanes` images interleaved slot by slot in each
/// ciphertext (1: one image per run, the lowest latency; more: the same operations serve
/// several images, for throughput, as long as one image's layout fits in `slots / lanes`),
/// and the client's input in the form `input`.
pub struct ChannelFast {
    lanes: Lanes,
    input: InputForm,
}

/// What the client encrypts when a network starts with a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputForm {
    /// The image's phases, or im2col channels where those are not more ciphertexts
    /// (`channel-fast`, `channel-fast-xK`): the fewest ciphertexts.
    Phases,
    /// One ciphertext per channel and kernel offset (`channel-fast-im2col`,
    /// `channel-fast-xK-im2col`): the least server time.
    Im2col,
}

impl InputForm {
    /// Both, the default first.
    pub const ALL: [InputForm; 2] = [InputForm::Phases, InputForm::Im2col];
}

/// Images per ciphertext of `channel-fast-xK`: 1 (`channel-fast`), 2, 4, 8 or 16; no other
/// value can be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lanes(u8);

impl Lanes {
    /// Every variant, `channel-fast` first.
    pub const ALL: [Lanes; 5] = [Lanes(1), Lanes(2), Lanes(4), Lanes(8), Lanes(16)];

    /// The number of images.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl ChannelFast {
    pub(crate) fn new(lanes: Lanes, input: InputForm) -> Self {
        Self { lanes, input }
    }
}

/// Stored-plaintext numbers at and above this one are per-ciphertext plaintexts (biases,
/// batch-norm factors); below it, the products of a linear layer.
const EXTRA: u64 = 1 << 32;

impl Packing for ChannelFast {
    fn name(&self) -> &'static str {
        match (self.lanes.0, self.input) {
            (1, InputForm::Phases) => "channel-fast",
            (2, InputForm::Phases) => "channel-fast-x2",
            (4, InputForm::Phases) => "channel-fast-x4",
            (8, InputForm::Phases) => "channel-fast-x8",
            (_, InputForm::Phases) => "channel-fast-x16",
            (1, InputForm::Im2col) => "channel-fast-im2col",
            (2, InputForm::Im2col) => "channel-fast-x2-im2col",
            (4, InputForm::Im2col) => "channel-fast-x4-im2col",
            (8, InputForm::Im2col) => "channel-fast-x8-im2col",
            (_, InputForm::Im2col) => "channel-fast-x16-im2col",
        }
    }

    fn images_per_run(&self, _slots: usize) -> usize {
        self.lanes.get()
    }

    fn lanes(&self) -> usize {
        self.lanes.get()
    }

    fn fits(&self, net: &Network, slots: usize) -> Result<(), String> {
        let slots = slots / self.lanes.get();
        layout::input(net, slots, self.input)?;
        let mut planes = true;
        for (i, layer) in net.layers.iter().enumerate() {
            let at = |what: &str| format!("layer {i} ({}): {what}", layer.name);
            match &layer.kind {
                LayerKind::Conv(_) | LayerKind::AvgPool(_) | LayerKind::GlobalAvgPool { .. }
                    if !planes =>
                {
                    return Err(at("a spatial layer after a dense layer"));
                }
                LayerKind::GlobalAvgPool { .. }
                    if !matches!(
                        net.layers.get(i + 1).map(|l| &l.kind),
                        Some(LayerKind::Dense(_))
                    ) =>
                {
                    return Err(at(
                        "global pooling is folded into a dense layer right after it",
                    ));
                }
                LayerKind::Dense(d) => {
                    if d.out.next_power_of_two() > slots {
                        return Err(at(&format!("{} outputs exceed {slots} slots", d.out)));
                    }
                    planes = false;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn noise_gain(&self, _net: &Network, slots: usize) -> f64 {
        // a dense layer adds up products from every slot of an image
        (slots / self.lanes.get()) as f64
    }

    fn input_count(&self, net: &Network, slots: usize) -> usize {
        layout::input(net, slots / self.lanes.get(), self.input).map_or(0, |i| i.layout.count())
    }

    fn input_vectors(&self, net: &Network, slots: usize, images: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let slots = slots / self.lanes.get();
        let input = layout::input(net, slots, self.input).expect("planned networks fit");
        let per_image: Vec<Vec<Vec<f64>>> = images
            .iter()
            .map(|img| input.vectors(net, slots, img))
            .collect();
        (0..input.layout.count())
            .map(|t| {
                // lanes without an image (the last run of a job) stay zero
                let lanes: Vec<&[f64]> = (0..self.lanes.get())
                    .map(|j| per_image.get(j).map_or(&[][..], |v| v[t].as_slice()))
                    .collect();
                let mut v = interleave(&lanes);
                v.resize(slots * self.lanes.get(), 0.0);
                v
            })
            .collect()
    }

    fn evaluate<B: Backend>(
        &self,
        exec: &Exec<B>,
        net: &Network,
        input: Vec<B::Ct>,
        stages: &mut StageLog,
    ) -> Result<Vec<B::Ct>, HeError> {
        let front = layout::input(net, exec.slots(), self.input).map_err(HeError::Internal)?;
        let mut map = (front.layout, input);
        let mut gap = None;
        for (index, layer) in net.layers.iter().enumerate() {
            let step = Step {
                exec,
                net,
                index,
                first_conv: front.first_conv.as_ref(),
            };
            map = step.apply(map, &mut gap)?;
            stages.done(exec, &layer.name);
        }
        Ok(map.1)
    }

    fn logits(&self, net: &Network, outputs: &[Vec<f64>], images: usize) -> Vec<Vec<f64>> {
        // one ciphertext, output u of image j in its slot u
        (0..images)
            .map(|j| lane(&outputs[0], self.lanes.get(), j)[..net.outputs()].to_vec())
            .collect()
    }
}

/// One layer's evaluation.
struct Step<'a, 'e, B: Backend> {
    exec: &'a Exec<'e, B>,
    net: &'a Network,
    index: usize,
    first_conv: Option<&'a crate::model::Conv>,
}

type Map<B> = (Layout, Vec<<B as Backend>::Ct>);

impl<B: Backend> Step<'_, '_, B> {
    fn err(&self, reason: String) -> HeError {
        HeError::Layer {
            index: self.index,
            name: self.net.layers[self.index].name.clone(),
            reason,
        }
    }

    /// `gap`: the divisor of a global pooling waiting for the dense layer after it.
    fn apply(&self, (layout, cts): Map<B>, gap: &mut Option<f64>) -> Result<Map<B>, HeError> {
        let exec = self.exec;
        let slots = exec.slots();
        let shape = self.net.shapes[self.index];
        match &self.net.layers[self.index].kind {
            LayerKind::Conv(c) => {
                let c = match (self.index, self.first_conv) {
                    (0, Some(phased)) => phased,
                    _ => c,
                };
                let plan = linear::conv(&layout, c, (shape.h, shape.w))?;
                (0..plan.zero).for_each(|_| exec.skip_zero());
                let sums = linear::bsgs(exec, self.index, &cts, &plan.terms, plan.layout.count())?;
                let level = exec.level(&cts[0]);
                let s = exec.scale(level);
                let cts = sums
                    .into_iter()
                    .zip(&plan.bias)
                    .enumerate()
                    .map(|(j, (sum, bias))| {
                        let mut acc = sum.ok_or_else(|| {
                            self.err(format!(
                                "output ciphertext {j} has only zero weights; prune its channels"
                            ))
                        })?;
                        if let Some(b) = bias {
                            let pt =
                                exec.stored((self.index, EXTRA + j as u64), level, s * s, b)?;
                            exec.add_plain_assign(&mut acc, &pt)?;
                        }
                        exec.rescale(&mut acc)?;
                        Ok(acc)
                    })
                    .collect::<Result<Vec<_>, HeError>>()?;
                Ok((plan.layout, cts))
            }
            LayerKind::BatchNorm(bn) => {
                let cts = par_each(cts, |ct, t| {
                    let level = exec.level(&ct);
                    let s = exec.scale(level);
                    let per_slot = |f: &dyn Fn(usize) -> f64| {
                        layout
                            .channels(t, slots)
                            .into_iter()
                            .map(|c| c.map_or(0.0, f))
                            .collect::<Vec<f64>>()
                    };
                    let key = |k: u64| (self.index, EXTRA + 2 * t as u64 + k);
                    let m = exec.stored(key(0), level, s, || per_slot(&|c| bn.affine(c).0))?;
                    let mut y = exec
                        .multiply_plain(&ct, &m)?
                        .ok_or_else(|| self.err("batch-norm multipliers are all zero".into()))?;
                    let o = exec.stored(key(1), level, s * s, || per_slot(&|c| bn.affine(c).1))?;
                    exec.add_plain_assign(&mut y, &o)?;
                    exec.rescale(&mut y)?;
                    Ok(y)
                })?;
                Ok((layout, cts))
            }
            LayerKind::Activation(Activation::Poly(coeffs), _) => {
                let coeffs = activation::trimmed(coeffs).map_err(|e| self.err(e))?;
                // the constant term only where the map has values, so that every other slot
                // stays zero (pooled maps can then be merged into each other's gaps)
                let cts = par_each(cts, |ct, t| {
                    activation::evaluate(exec, ct, coeffs, &|c, level, scale| {
                        let key = (self.index, EXTRA + t as u64);
                        exec.stored(key, level, scale, || {
                            layout
                                .channels(t, slots)
                                .into_iter()
                                .map(|v| if v.is_some() { c } else { 0.0 })
                                .collect()
                        })
                    })
                })?;
                Ok((layout, cts))
            }
            LayerKind::AvgPool(p) => {
                let Layout::Planes(planes) = layout else {
                    return Err(self.err("pooling a vector".into()));
                };
                let grid = planes.grid;
                let cts = par_each(cts, |ct, _| {
                    let across = sum_progression(exec, ct, p.kernel, grid.col)?;
                    let mut sum = sum_progression(exec, across, p.kernel, grid.row)?;
                    if p.scale != 1.0 {
                        let level = exec.level(&sum);
                        let k = exec.encode_scalar(p.scale, level, exec.scale(level))?;
                        sum = exec
                            .multiply_plain(&sum, &k)?
                            .ok_or_else(|| self.err("pooling scale is zero".into()))?;
                        exec.rescale(&mut sum)?;
                    }
                    Ok(sum)
                })?;
                let pooled = planes.pooled(p.kernel, p.stride, (shape.h, shape.w));
                let groups = pooled.merges();
                if groups.len() == cts.len() {
                    return Ok((Layout::Planes(pooled), cts));
                }
                // maps whose values fall in each other's zero slots share a ciphertext
                let mut cts: Vec<Option<B::Ct>> = cts.into_iter().map(Some).collect();
                let members: Vec<Vec<(B::Ct, usize)>> = groups
                    .iter()
                    .map(|g| {
                        g.iter()
                            .map(|&(t, s)| (cts[t].take().expect("once"), s))
                            .collect()
                    })
                    .collect();
                let merged = par_each(members, |members, _| {
                    let mut acc = None;
                    for (ct, s) in members {
                        let moved = if s == 0 {
                            ct
                        } else {
                            exec.rotate(&ct, -(s as i64))?
                        };
                        exec.accumulate(&mut acc, moved)?;
                    }
                    acc.ok_or_else(|| self.err("an empty merge".into()))
                })?;
                Ok((Layout::Planes(pooled.merged(&groups)), merged))
            }
            LayerKind::GlobalAvgPool { scale } => {
                let inp = self.net.shape_in(self.index);
                *gap = Some(scale.unwrap_or(1.0 / (inp.h * inp.w) as f64));
                Ok((layout, cts))
            }
            LayerKind::Flatten => Ok((layout, cts)),
            LayerKind::Dense(d) => {
                let factor = gap.take();
                let plan =
                    linear::dense(&layout, d, factor.is_some(), factor.unwrap_or(1.0), slots);
                (0..plan.zero).for_each(|_| exec.skip_zero());
                let mut acc = linear::bsgs(exec, self.index, &cts, &plan.terms, 1)?
                    .pop()
                    .flatten()
                    .ok_or_else(|| self.err("all weights are zero".into()))?;
                exec.rescale(&mut acc)?;
                // add up the slots of each output class: slots/period values each
                let mut step = slots / 2;
                while step >= plan.period {
                    let r = exec.rotate(&acc, step as i64)?;
                    exec.add_assign(&mut acc, &r)?;
                    step /= 2;
                }
                if d.bias.iter().any(|&b| b != 0.0) {
                    let level = exec.level(&acc);
                    let period = plan.period;
                    let b = exec.stored((self.index, EXTRA), level, exec.scale(level), || {
                        (0..slots)
                            .map(|q| d.bias.get(q % period).copied().unwrap_or(0.0))
                            .collect()
                    })?;
                    exec.add_plain_assign(&mut acc, &b)?;
                }
                Ok((
                    Layout::Vector {
                        period: plan.period,
                        len: d.out,
                    },
                    vec![acc],
                ))
            }
            LayerKind::Activation(_, name) => Err(self.err(format!(
                "{name} is not a polynomial and cannot be evaluated on ciphertexts"
            ))),
        }
    }
}
