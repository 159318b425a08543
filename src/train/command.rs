//! The `train`, `prune` and `retrain` commands: datasets, initialisation, the checkpoint
//! folder's life, and the provenance each written model carries.

use std::path::{Path, PathBuf};

use super::augment::Augment;
use super::{fit, EpochLog, Schedule, TrainError};
use crate::data;
use crate::model::arch::{self, Arch, WeightInit};
use crate::model::{file, plain, prune, recalibrate, LayerKind, Model};

/// Which of the paper's networks to train.
#[derive(Clone, Debug)]
pub struct Network {
    pub arch: Arch,
    /// An activation name of `model::poly::NAMES`.
    pub activation: String,
    /// conv2's width (default: the paper's).
    pub conv2_channels: Option<usize>,
}

/// How to train (the schedule's settings; the epochs come with each command) and where the
/// run reads and keeps its files.
#[derive(Clone, Debug)]
pub struct Options {
    pub batch: usize,
    /// Peak learning rate of AdamW.
    pub lr: f64,
    /// Cosine decay after the warm-up (else the peak rate throughout).
    pub cosine: bool,
    pub warmup_epochs: f64,
    /// Per-tensor gradient-norm clip (0: none).
    pub clip: f64,
    pub weight_decay: f64,
    pub seed: u64,
    /// The paper's augmentation.
    pub augment: bool,
    /// Train on the first N images only.
    pub train_images: Option<usize>,
    /// Re-estimate batch-norm statistics on unaugmented images after training.
    pub recalibrate_bn: bool,
    /// Default: `data/training/<stem of the output>`.
    pub checkpoint_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    /// Default: all cores.
    pub threads: Option<usize>,
}

/// `hejob train`: weights drawn by `init`, batch norms at identity, then `epochs` of training.
pub fn train(
    net: &Network,
    init: WeightInit,
    out: &Path,
    epochs: usize,
    args: &Options,
) -> Result<Model, TrainError> {
    file::check_output(out, &[])?;
    let mut start = arch::random_model_with(
        net.arch,
        &net.activation,
        net.conv2_channels,
        args.seed,
        init,
    )?;
    for layer in &mut start.layers {
        if let LayerKind::BatchNorm(b) = &mut layer.kind {
            b.gamma.fill(1.0);
            b.beta.fill(0.0);
            b.mean.fill(0.0);
            b.var.fill(1.0);
        }
    }
    start.provenance.remove("weights");
    let trained = run(&start, out, epochs, args, |m, schedule, history| {
        m.provenance.insert(
            "weights".into(),
            format!(
                "trained by hejob train from {} initialisation (seed {})",
                init.describe(),
                args.seed
            ),
        );
        m.provenance.insert("training".into(), schedule.describe());
        m.provenance
            .insert("epochs".into(), history.len().to_string());
        m.provenance.insert("pruning".into(), "none".into());
    })?;
    Ok(trained)
}

/// `hejob prune`: L1-norm filter pruning of one conv layer, then `epochs` of retraining.
pub fn prune(
    input: &Path,
    layer: &str,
    ratio: f64,
    out: &Path,
    epochs: usize,
    args: &Options,
) -> Result<Model, TrainError> {
    file::check_output(out, &[input])?;
    let parent = file::load(input)?;
    let (start, info) = prune::prune(&parent, layer, ratio)?;
    log::info!(
        "{}: {} {} → {} channels (removed {:?})",
        input.display(),
        layer,
        info.before,
        info.after,
        info.removed
    );
    let step = format!(
        "{layer} {} → {} (L1-norm filter pruning, ratio {ratio}, from {})",
        info.before,
        info.after,
        input.display()
    );
    let history = match parent.provenance.get("pruning").map(String::as_str) {
        None | Some("none") => step,
        Some(before) => format!("{before}; {step}"),
    };
    let tag = format!("{layer}_channels");
    let finish = |m: &mut Model, schedule: &Schedule, log: &[EpochLog]| {
        m.provenance.insert("pruning".into(), history.clone());
        m.provenance.insert(tag.clone(), info.after.to_string());
        if layer == "conv2" {
            m.provenance
                .insert("conv2_channels".into(), info.after.to_string());
        }
        m.provenance.insert(
            "retraining".into(),
            if log.is_empty() {
                "none".into()
            } else {
                schedule.describe()
            },
        );
    };
    if epochs == 0 {
        let mut m = start;
        let test = m
            .dataset
            .load_test(&data::resolve_dir(args.data_dir.as_deref()))?;
        let none = schedule(args, 0, m.dataset);
        finish(&mut m, &none, &[]);
        plain::record_accuracy(&mut m, &test);
        file::save(&m, out)?;
        return Ok(m);
    }
    run(&start, out, epochs, args, finish)
}

/// `hejob retrain`: a trained model's weights and batch norms, then `epochs` more on a fresh
/// schedule (a warm restart of the learning rate). Its provenance keeps the first training's
/// and adds this one's.
pub fn retrain(
    input: &Path,
    out: &Path,
    epochs: usize,
    args: &Options,
) -> Result<Model, TrainError> {
    file::check_output(out, &[input])?;
    let parent = file::load(input)?;
    let was = |key: &str| {
        parent
            .provenance
            .get(key)
            .cloned()
            .unwrap_or_else(|| "not recorded".into())
    };
    let (weights, training, before) = (was("weights"), was("training"), was("epochs"));
    run(&parent, out, epochs, args, |m, schedule, history| {
        m.provenance.insert(
            "weights".into(),
            format!(
                "{weights}; then retrained by hejob retrain from {}",
                input.display()
            ),
        );
        m.provenance.insert(
            "training".into(),
            format!("{training}; then a restart: {}", schedule.describe()),
        );
        let epochs = match before.parse::<usize>() {
            Ok(n) => (n + history.len()).to_string(),
            Err(_) => format!("{before} + {}", history.len()),
        };
        m.provenance.insert("epochs".into(), epochs);
    })
}

fn schedule(args: &Options, epochs: usize, dataset: data::Dataset) -> Schedule {
    Schedule {
        epochs,
        batch: args.batch,
        lr: args.lr,
        cosine: args.cosine,
        warmup_epochs: args.warmup_epochs,
        clip_norm: args.clip,
        weight_decay: args.weight_decay,
        seed: args.seed,
        train_images: args.train_images,
        augment: if args.augment {
            Augment::paper(dataset)
        } else {
            Augment::None
        },
    }
}

/// Trains `start`, lets `describe` fill in the provenance, records the test accuracy, writes
/// `out`, and removes the finished run's checkpoint folder.
fn run(
    start: &Model,
    out: &Path,
    epochs: usize,
    args: &Options,
    describe: impl FnOnce(&mut Model, &Schedule, &[EpochLog]),
) -> Result<Model, TrainError> {
    let dir = data::resolve_dir(args.data_dir.as_deref());
    let train = start.dataset.load_train(&dir)?;
    let test = start.dataset.load_test(&dir)?;
    let schedule = schedule(args, epochs, start.dataset);
    let checkpoint = checkpoint_dir(args, out);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = crate::pool::threads(threads)?;
    log::info!(
        "training {} on {} images ({}), checkpoints in {}",
        out.display(),
        schedule.images(train.len()),
        schedule.describe(),
        checkpoint.display()
    );
    let (mut model, history) =
        pool.install(|| fit(start, &train, &test, &schedule, Some(&checkpoint)))?;
    describe(&mut model, &schedule, &history);
    if args.recalibrate_bn {
        recalibrate::batch_norm_statistics(&mut model, &train, schedule.train_images);
    }
    plain::record_accuracy(&mut model, &test);
    file::save(&model, out)?;
    log::info!(
        "wrote {}: plain test accuracy {}",
        out.display(),
        model.provenance["plain_test_accuracy"]
    );
    std::fs::remove_dir_all(&checkpoint).map_err(|e| TrainError::Checkpoint {
        path: checkpoint.clone(),
        reason: format!(
            "{} is written, but this folder could not be removed: {e}",
            out.display()
        ),
    })?;
    Ok(model)
}

/// `--checkpoint-dir`, else `data/training/<file stem of out>`.
fn checkpoint_dir(args: &Options, out: &Path) -> PathBuf {
    args.checkpoint_dir.clone().unwrap_or_else(|| {
        let stem = out
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy());
        Path::new("data/training").join(stem.as_ref())
    })
}
