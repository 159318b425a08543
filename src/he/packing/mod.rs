//! The packings: interchangeable strategies that lay images out in slots and evaluate a
//! network on that layout. `channel` is the paper's channel-wise method (one image, one
//! ciphertext per channel); `channel-fast` is channel-wise too (one image per run) with many
//! channels per ciphertext and baby-step/giant-step linear layers; `batch` is batch-axis (slot
//! s of every ciphertext is image s).
//!
//! Client side ([`encrypt_run`], [`decrypt_run`]) and server side ([`prepare`],
//! [`evaluate_run`]) are separate functions: the server ones only ever see an `Evaluator`.

pub mod batch;
pub mod channel;
pub mod fast;
mod grid;

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::counts::{OpCounts, OpTally};
use super::exec::{Backend, Exec, Prepare, Real, Store};
use super::parallel::{par_each, par_map};
use super::{HeError, Network};
use crate::model::Dense;
use crate::seal::{Ciphertext, Client, Context, Encryptor, Evaluator, Plaintext};

/// A way of packing images into ciphertexts and evaluating a network on them.
pub trait Packing: Sync {
    /// The name used in jobs, plans and result files.
    fn name(&self) -> &'static str;
    /// Images evaluated together in one run with `slots` slots per ciphertext.
    fn images_per_run(&self, slots: usize) -> usize;
    /// Images interleaved slot by slot in every ciphertext, each seeing `slots / lanes` slots
    /// (see [`Exec`]); 1 unless the packing says otherwise.
    fn lanes(&self) -> usize {
        1
    }
    /// Whether the network's layout fits in `slots` slots (the error says why not).
    fn fits(&self, net: &Network, slots: usize) -> Result<(), String>;
    /// How many slots' rounding noise can add up in one output value (a rotate-and-sum over
    /// every slot sums them all); scales the plan's logit tolerance.
    fn noise_gain(&self, net: &Network, slots: usize) -> f64;
    /// Number of input ciphertexts of one run with `slots` slots.
    fn input_count(&self, net: &Network, slots: usize) -> usize;
    /// Client side: the slot vectors to encrypt for these preprocessed images.
    fn input_vectors(&self, net: &Network, slots: usize, images: &[Vec<f64>]) -> Vec<Vec<f64>>;
    /// Server side: evaluates the network, reporting each stage (a layer, or layers fused for
    /// streaming) to `stages` as it finishes.
    fn evaluate<B: Backend>(
        &self,
        exec: &Exec<B>,
        net: &Network,
        input: Vec<B::Ct>,
        stages: &mut StageLog,
    ) -> Result<Vec<B::Ct>, HeError>;
    /// Client side: each image's logits from the decrypted output slot vectors.
    fn logits(&self, net: &Network, outputs: &[Vec<f64>], images: usize) -> Vec<Vec<f64>>;
}

/// Which packing: parsed once from its name where a job or command names it, then passed on
/// by value. Serialized as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PackingId {
    /// `channel`: the paper's channel-wise method.
    Channel,
    /// `channel-fast` (one image per run) or `channel-fast-xK` (K images interleaved), each
    /// with its input as phases or (`-im2col`) one ciphertext per kernel offset.
    ChannelFast(fast::Lanes, fast::InputForm),
    /// `batch`: batch-axis.
    Batch,
}

/// Runs `$body` with `$p` bound to the packing that `$id` names.
macro_rules! with_packing {
    ($id:expr, $p:ident => $body:expr) => {
        match $id {
            PackingId::Channel => {
                let $p = &channel::ChannelWise;
                $body
            }
            PackingId::ChannelFast(lanes, input) => {
                let $p = &fast::ChannelFast::new(lanes, input);
                $body
            }
            PackingId::Batch => {
                let $p = &batch::BatchAxis;
                $body
            }
        }
    };
}

impl PackingId {
    /// Its name (as [`Packing::name`], without the trait in scope).
    pub fn name(self) -> &'static str {
        Packing::name(&self)
    }

    /// Every packing, in the order the documentation lists them.
    pub fn all() -> impl Iterator<Item = PackingId> {
        std::iter::once(PackingId::Channel)
            .chain(fast::InputForm::ALL.into_iter().flat_map(|input| {
                fast::Lanes::ALL
                    .into_iter()
                    .map(move |lanes| PackingId::ChannelFast(lanes, input))
            }))
            .chain(std::iter::once(PackingId::Batch))
    }

    /// Whether it is channel-wise (one image's channels across ciphertexts: the paper's
    /// method and `channel-fast`), as opposed to batch-axis.
    pub fn is_channel_wise(self) -> bool {
        !matches!(self, PackingId::Batch)
    }
}

impl Packing for PackingId {
    fn name(&self) -> &'static str {
        with_packing!(*self, p => p.name())
    }
    fn images_per_run(&self, slots: usize) -> usize {
        with_packing!(*self, p => p.images_per_run(slots))
    }
    fn lanes(&self) -> usize {
        with_packing!(*self, p => p.lanes())
    }
    fn fits(&self, net: &Network, slots: usize) -> Result<(), String> {
        with_packing!(*self, p => p.fits(net, slots))
    }
    fn noise_gain(&self, net: &Network, slots: usize) -> f64 {
        with_packing!(*self, p => p.noise_gain(net, slots))
    }
    fn input_count(&self, net: &Network, slots: usize) -> usize {
        with_packing!(*self, p => p.input_count(net, slots))
    }
    fn input_vectors(&self, net: &Network, slots: usize, images: &[Vec<f64>]) -> Vec<Vec<f64>> {
        with_packing!(*self, p => p.input_vectors(net, slots, images))
    }
    fn evaluate<B: Backend>(
        &self,
        exec: &Exec<B>,
        net: &Network,
        input: Vec<B::Ct>,
        stages: &mut StageLog,
    ) -> Result<Vec<B::Ct>, HeError> {
        with_packing!(*self, p => p.evaluate(exec, net, input, stages))
    }
    fn logits(&self, net: &Network, outputs: &[Vec<f64>], images: usize) -> Vec<Vec<f64>> {
        with_packing!(*self, p => p.logits(net, outputs, images))
    }
}

/// Ordered by name, as reports list packings.
impl Ord for PackingId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl PartialOrd for PackingId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for PackingId {
    type Err = HeError;

    fn from_str(name: &str) -> Result<Self, HeError> {
        PackingId::all()
            .find(|p| p.name() == name)
            .ok_or_else(|| HeError::UnknownPacking(name.to_string()))
    }
}

impl fmt::Display for PackingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for PackingId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for PackingId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Names of all packings.
pub fn names() -> Vec<&'static str> {
    PackingId::all().map(|p| p.name()).collect()
}

/// Operations and time of one stage of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    pub counts: OpTally,
    pub seconds: f64,
}

/// A stopwatch for stages: wall time, or the modelled time while a cost trace is active (the
/// cost model's per-stage prediction).
#[derive(Clone, Copy)]
pub(crate) enum Clock {
    Wall(Instant),
    Modelled(f64),
}

impl Clock {
    /// Started now.
    pub(crate) fn start() -> Self {
        match crate::he::cost::trace::now() {
            Some(s) => Clock::Modelled(s),
            None => Clock::Wall(Instant::now()),
        }
    }

    /// Seconds since it started.
    pub(crate) fn seconds(self) -> f64 {
        match self {
            Clock::Wall(t) => t.elapsed().as_secs_f64(),
            Clock::Modelled(s) => crate::he::cost::trace::now().map_or(0.0, |now| now - s),
        }
    }
}

/// The stages of one evaluation as a packing reports them: each one's name, the operations
/// counted during it and its wall time (modelled under a cost trace).
pub struct StageLog {
    last: (OpTally, Clock),
    stages: Vec<Stage>,
}

impl StageLog {
    /// A log whose first stage starts now.
    pub fn new<B: Backend>(exec: &Exec<B>) -> Self {
        Self {
            last: (exec.tally(), Clock::start()),
            stages: Vec::new(),
        }
    }

    /// The stage `name` has just finished: it is everything since the last report.
    pub fn done<B: Backend>(&mut self, exec: &Exec<B>, name: &str) {
        let now = exec.tally();
        self.stages.push(Stage {
            name: name.to_string(),
            counts: now - self.last.0,
            seconds: self.last.1.seconds(),
        });
        self.last = (now, Clock::start());
    }

    /// Stages that ran interleaved, each measured by the packing itself; together they are
    /// everything since the last report.
    pub fn interleaved<B: Backend>(&mut self, exec: &Exec<B>, stages: Vec<Stage>) {
        self.stages.extend(stages);
        self.last = (exec.tally(), Clock::start());
    }

    /// The stages reported, in order.
    pub fn into_stages(self) -> Vec<Stage> {
        self.stages
    }
}

/// What one evaluation cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub stages: Vec<Stage>,
    pub totals: OpTally,
    pub seconds: f64,
}

/// Client side: encrypts the images of one run at the top level with the public key.
pub fn encrypt_run(
    encryptor: &Encryptor,
    packing: PackingId,
    net: &Network,
    images: &[Vec<f64>],
) -> Result<Vec<Ciphertext>, HeError> {
    encrypt_run_with(
        encryptor.context(),
        packing,
        net,
        images,
        |v, level, scale| encryptor.encrypt(v, level, scale),
    )
}

/// Client side: lays the images of one run out as the packing's input vectors and encrypts
/// each at the top level with `encrypt` (values, level, scale), in parallel.
pub fn encrypt_run_with<C: Send>(
    ctx: &Context,
    packing: PackingId,
    net: &Network,
    images: &[Vec<f64>],
    encrypt: impl Fn(&[f64], usize, f64) -> Result<C, crate::seal::SealError> + Sync,
) -> Result<Vec<C>, HeError> {
    let capacity = packing.images_per_run(ctx.slots());
    if images.len() > capacity {
        return Err(HeError::TooManyImages(images.len(), capacity));
    }
    let top = ctx.top_level();
    let scale = super::exec::level_scales(ctx)?[top];
    use rayon::prelude::*;
    packing
        .input_vectors(net, ctx.slots(), images)
        .par_iter()
        .map(|v| Ok(encrypt(v, top, scale)?))
        .collect()
}

/// Server side, once per model: encodes every weight plaintext the packing stores, at the
/// level where the evaluation uses it (a symbolic pass of the evaluation finds those levels).
pub fn prepare(
    evaluator: &Evaluator,
    packing: PackingId,
    net: &Network,
) -> Result<Store<Plaintext>, HeError> {
    let store = Store::default();
    let pass = OpCounts::default();
    {
        let exec = Exec::new(Prepare::new(evaluator, &store)?, &pass, packing.lanes())?;
        let ctx = evaluator.context();
        let (top, slots) = (ctx.top_level(), ctx.slots());
        let input = (0..packing.input_count(net, slots))
            .map(|_| exec.backend().input(top))
            .collect();
        let mut stages = StageLog::new(&exec);
        packing.evaluate(&exec, net, input, &mut stages)?;
    }
    Ok(store)
}

/// Server side: evaluates one run with the model's prepared `store`, counting every operation
/// per stage.
pub fn evaluate_run(
    evaluator: &Evaluator,
    store: &Store<Plaintext>,
    packing: PackingId,
    net: &Network,
    input: Vec<Ciphertext>,
) -> Result<(Vec<Ciphertext>, Evaluation), HeError> {
    let counts = OpCounts::default();
    let exec = Exec::new(Real::new(evaluator, store)?, &counts, packing.lanes())?;
    let start = Instant::now();
    let mut stages = StageLog::new(&exec);
    let out = packing.evaluate(&exec, net, input, &mut stages)?;
    let evaluation = Evaluation {
        stages: stages.into_stages(),
        totals: counts.snapshot(),
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((out, evaluation))
}

/// Client side: decrypts a run's outputs into each image's logits.
pub fn decrypt_run(
    client: &Client,
    packing: PackingId,
    net: &Network,
    outputs: &[Ciphertext],
    images: usize,
) -> Result<Vec<Vec<f64>>, HeError> {
    use rayon::prelude::*;
    let slots = outputs
        .par_iter()
        .map(|c| Ok(client.decrypt(c)?))
        .collect::<Result<Vec<_>, HeError>>()?;
    Ok(packing.logits(net, &slots, images))
}

/// A dense layer on replicated values: `out_u = Σ_f w[u][f]·x_f + b_u`, all scalar products,
/// each output one fused sum over the inputs' coefficients ([`Exec::dot_scalars`]; the inputs
/// are copied out of SEAL once, not once per output).
pub(crate) fn dense_flat<B: Backend>(
    exec: &Exec<B>,
    d: &Dense,
    cts: Vec<B::Ct>,
    zero: impl Fn(usize) -> HeError + Sync,
) -> Result<Vec<B::Ct>, HeError> {
    let level = exec.level(
        cts.first()
            .ok_or(HeError::Internal("a dense layer without inputs".into()))?,
    );
    let s = exec.scale(level);
    let raw = par_each(cts, |ct, _| exec.to_raw(ct))?;
    par_map(d.out, |u| {
        let mut terms = Vec::with_capacity(raw.len());
        for (f, x) in raw.iter().enumerate() {
            let w = d.weight[u * d.inp + f];
            if w == 0.0 {
                exec.skip_zero();
            } else {
                terms.push((x, w));
            }
        }
        let mut acc = exec.dot_scalars(&terms)?.ok_or_else(|| zero(u))?;
        if d.bias[u] != 0.0 {
            exec.add_plain_assign(&mut acc, &exec.encode_scalar(d.bias[u], level, s * s)?)?;
        }
        exec.rescale(&mut acc)?;
        Ok(acc)
    })
}

/// `m·x + off` on one ciphertext; `constant` encodes the offset where it belongs.
pub(crate) fn affine<B: Backend>(
    exec: &Exec<B>,
    ct: B::Ct,
    m: f64,
    off: f64,
    constant: &dyn Fn(f64, usize, f64) -> Result<B::Pt, HeError>,
) -> Result<B::Ct, HeError> {
    let level = exec.level(&ct);
    let s = exec.scale(level);
    let pm = exec.encode_scalar(m, level, s)?;
    let mut y = exec
        .multiply_plain(&ct, &pm)?
        .ok_or_else(|| HeError::Internal("batch-norm multiplier is zero".into()))?;
    if off != 0.0 {
        exec.add_plain_assign(&mut y, &constant(off, level, s * s)?)?;
    }
    exec.rescale(&mut y)?;
    Ok(y)
}
