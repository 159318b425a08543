//! Training and retraining with burn on its pure-Rust CPU backend (`flex`): AdamW, the
//! paper's augmentation, a learning-rate schedule with warm-up, gradient-norm clipping against
//! the divergence polynomial activations can cause, and a checkpoint after every epoch from
//! which a killed run resumes. Models come in and go out in hejob's own model format.

pub mod augment;
pub mod command;
pub mod net;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use self::augment::Augment;
use self::net::Net;
use crate::data::Images;
use crate::model::{file, plain, Model, ModelError};

/// Everything that can go wrong in training, naming the file or the epoch.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    ThreadPool(#[from] crate::pool::PoolError),
    #[error("training checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("training diverged in epoch {epoch} (loss {loss}); lower --lr, lengthen --warmup-epochs or tighten --clip")]
    Diverged { epoch: usize, loss: f64 },
    #[error("training: {0}")]
    Invalid(String),
}

/// How to train: optimiser settings, schedule, seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub epochs: usize,
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Cosine decay from `lr` to 0 over the epochs (else constant after warm-up).
    pub cosine: bool,
    /// Linear warm-up from 0 over this many epochs.
    pub warmup_epochs: f64,
    /// Gradients are rescaled to at most this L2 norm (0: no clipping).
    pub clip_norm: f64,
    pub weight_decay: f64,
    pub seed: u64,
    /// Train on the first N training images only (default: all).
    #[serde(default)]
    pub train_images: Option<usize>,
    pub augment: Augment,
}

impl Schedule {
    /// The learning rate at fractional epoch `t`.
    pub fn lr_at(&self, t: f64) -> f64 {
        let warm = if self.warmup_epochs > 0.0 {
            (t / self.warmup_epochs).min(1.0)
        } else {
            1.0
        };
        let decay = if self.cosine {
            0.5 * (1.0 + (std::f64::consts::PI * t / self.epochs.max(1) as f64).cos())
        } else {
            1.0
        };
        self.lr * warm * decay
    }

    /// How many of `available` training images an epoch uses (`train_images` caps them).
    pub fn images(&self, available: usize) -> usize {
        self.train_images.map_or(available, |n| n.min(available))
    }

    /// The schedule in words, for provenance.
    pub fn describe(&self) -> String {
        format!(
            "AdamW (lr {}, betas 0.9/0.999, eps 1e-8, weight decay {}), batch {}, {} epochs, {} schedule, {} warm-up epochs, gradient-norm clipping at {} per parameter tensor, seed {}, augmentation: {}",
            self.lr,
            self.weight_decay,
            self.batch,
            self.epochs,
            if self.cosine { "cosine" } else { "constant" },
            self.warmup_epochs,
            self.clip_norm,
            self.seed,
            self.augment.describe()
        ) + &self
            .train_images
            .map_or(String::new(), |n| format!(", first {n} training images only"))
    }
}

/// One epoch's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub loss: f64,
    pub test_accuracy: f64,
    pub seconds: f64,
}

/// What a checkpoint folder records besides the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct State {
    schedule: Schedule,
    history: Vec<EpochLog>,
}

/// Trains `start` (its weights are the initialisation) on `train`, measuring plain test
/// accuracy on `test` after each epoch with hejob's own forward pass. With a checkpoint folder,
/// each epoch is saved there and a run of the same schedule resumes from the last one.
/// Returns the trained model and the per-epoch log.
pub fn fit(
    start: &Model,
    train: &Images,
    test: &Images,
    schedule: &Schedule,
    checkpoint: Option<&Path>,
) -> Result<(Model, Vec<EpochLog>), TrainError> {
    if schedule.batch == 0 || schedule.epochs == 0 {
        return Err(TrainError::Invalid(
            "epochs and batch size must be positive".into(),
        ));
    }
    let device = Device::flex().autodiff();
    device.seed(schedule.seed);
    let mut optim = optimizer(schedule);
    let resumed = match checkpoint {
        Some(dir) => resume(dir, start, schedule, &device)?,
        None => None,
    };
    let (mut net, mut history) = match (resumed, checkpoint) {
        (Some(state), Some(dir)) => {
            let saved = dir.join(LATEST).join("optimizer.bpk");
            optim = optim.load(&saved).map_err(|e| fail(&saved, e))?;
            state
        }
        (_, dir) => {
            if let Some(dir) = dir {
                save_start(dir, start)?;
            }
            (Net::from_model(start, &device)?, Vec::new())
        }
    };
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let images = schedule.images(train.len());
    let steps = images.div_ceil(schedule.batch);
    let mut progress = Progress::new(schedule.epochs);
    for epoch in history.len()..schedule.epochs {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..images).collect();
        order.shuffle(&mut StdRng::seed_from_u64(
            schedule.seed ^ (epoch as u64) << 20,
        ));
        let mut loss_sum = 0.0;
        for (step, batch) in order.chunks(schedule.batch).enumerate() {
            let (x, y) = make_batch(start, train, batch, schedule, epoch, &device);
            let logits = net.forward(x);
            let loss = loss_fn.forward(logits, y);
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch: epoch + 1,
                    loss: value,
                });
            }
            loss_sum += value * batch.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            let lr = schedule.lr_at(epoch as f64 + (step + 1) as f64 / steps as f64);
            net = optim.step(lr, net, grads);
            progress.step(epoch, step + 1, steps, value);
        }
        let model = net.to_model(start);
        let (_, accuracy) = plain::accuracy(&model, test, None);
        let log = EpochLog {
            epoch: epoch + 1,
            loss: loss_sum / images as f64,
            test_accuracy: accuracy,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress.epoch_done(&log);
        history.push(log);
        if let Some(dir) = checkpoint {
            save(dir, &net, &model, &optim, schedule, &history)?;
        }
    }
    Ok((net.to_model(start), history))
}

fn optimizer(s: &Schedule) -> ModuleOptimizer {
    let clip = (s.clip_norm > 0.0).then_some(GradientClippingConfig::Norm(s.clip_norm as f32));
    AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(s.weight_decay as f32)
        .with_grad_clipping(clip)
        .init()
}

/// One batch: each image augmented with its own seeded generator (independent of threads),
/// preprocessed as the model's file says, and stacked.
fn make_batch(
    model: &Model,
    images: &Images,
    batch: &[usize],
    s: &Schedule,
    epoch: usize,
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let shape = model.input;
    let pixels: Vec<f32> = batch
        .par_iter()
        .flat_map_iter(|&i| {
            let mut rng = StdRng::seed_from_u64(s.seed ^ ((epoch as u64) << 32) ^ i as u64);
            let img = s.augment.apply(shape, images.image(i), &mut rng);
            model
                .preprocess
                .apply(shape, &img)
                .into_iter()
                .map(|v| v as f32)
        })
        .collect();
    let labels: Vec<i64> = batch.iter().map(|&i| images.labels[i] as i64).collect();
    let x = Tensor::from_data(
        TensorData::new(pixels, [batch.len(), shape.c, shape.h, shape.w]),
        device,
    );
    let y = Tensor::from_data(TensorData::new(labels, [batch.len()]), device);
    (x, y)
}

/// The folder of the last finished epoch inside a checkpoint folder.
const LATEST: &str = "latest";

fn fail(path: &Path, reason: impl ToString) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Keeps the starting model, so a resumed run can check it continues the same training.
fn save_start(dir: &Path, start: &Model) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    file::save(start, &dir.join("start.h5"))?;
    Ok(())
}

/// Writes epoch state to `dir/next/`, then swaps it in for `dir/latest/` by renames, so a kill
/// at any point leaves one complete epoch behind. `model` is `net` exported: burn's record
/// keeps the trainable parameters (with the identities the optimizer state refers to), the
/// model file the batch-norm running statistics.
fn save(
    dir: &Path,
    net: &Net,
    model: &Model,
    optim: &ModuleOptimizer,
    schedule: &Schedule,
    history: &[EpochLog],
) -> Result<(), TrainError> {
    let next = dir.join("next");
    let _ = std::fs::remove_dir_all(&next);
    std::fs::create_dir_all(&next).map_err(|e| fail(&next, e))?;
    net.clone()
        .save_file(next.join("net.bpk"))
        .map_err(|e| fail(&next, e))?;
    file::save(model, &next.join("model.h5"))?;
    optim
        .save(next.join("optimizer.bpk"))
        .map_err(|e| fail(&next, e))?;
    let state = State {
        schedule: schedule.clone(),
        history: history.to_vec(),
    };
    let json = serde_json::to_vec_pretty(&state).map_err(|e| fail(&next, e))?;
    std::fs::write(next.join("state.json"), json).map_err(|e| fail(&next, e))?;
    let latest = dir.join(LATEST);
    let old = dir.join("old");
    let _ = std::fs::remove_dir_all(&old);
    if latest.exists() {
        std::fs::rename(&latest, &old).map_err(|e| fail(&latest, e))?;
    }
    std::fs::rename(&next, &latest).map_err(|e| fail(&latest, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The state of the last finished epoch, if the folder holds one for this very run (the same
/// starting model and schedule); a checkpoint of another run is refused.
fn resume(
    dir: &Path,
    start: &Model,
    schedule: &Schedule,
    device: &Device,
) -> Result<Option<(Net, Vec<EpochLog>)>, TrainError> {
    // a kill between the two renames of `save` leaves only `old`: it is the last epoch
    let (latest, old) = (dir.join(LATEST), dir.join("old"));
    if !latest.exists() && old.exists() {
        std::fs::rename(&old, &latest).map_err(|e| fail(&old, e))?;
    }
    let start_file = dir.join("start.h5");
    if !latest.exists() {
        return Ok(None);
    }
    let same_start = file::load(&start_file)
        .map(|m| m.layers == start.layers)
        .unwrap_or(false);
    let text = std::fs::read_to_string(latest.join("state.json")).map_err(|e| fail(&latest, e))?;
    let state: State = serde_json::from_str(&text).map_err(|e| fail(&latest, e))?;
    if !same_start || state.schedule != *schedule {
        return Err(fail(
            dir,
            "it belongs to another training run (a different starting model or schedule); remove it or choose another --checkpoint-dir",
        ));
    }
    let saved = file::load(&latest.join("model.h5"))?;
    let record = ModuleRecord::load(latest.join("net.bpk")).map_err(|e| fail(&latest, e))?;
    let net = Net::from_model(&saved, device)?
        .try_load_record(record)
        .map_err(|e| fail(&latest, e))?
        .with_running_stats(&saved);
    log::info!(
        "{}: resuming after epoch {} of {}",
        dir.display(),
        state.history.len(),
        schedule.epochs
    );
    Ok(Some((net, state.history)))
}

/// Epoch lines in the log, and a progress bar on an interactive terminal.
struct Progress {
    epochs: usize,
    bar: bool,
}

impl Progress {
    fn new(epochs: usize) -> Self {
        use std::io::IsTerminal;
        Self {
            epochs,
            bar: std::io::stderr().is_terminal() && log::log_enabled!(log::Level::Info),
        }
    }

    fn step(&mut self, epoch: usize, step: usize, steps: usize, loss: f64) {
        if self.bar && (step.is_multiple_of(10) || step == steps) {
            let filled = 30 * step / steps;
            eprint!(
                "\repoch {}/{} [{}{}] {step}/{steps} loss {loss:.4}",
                epoch + 1,
                self.epochs,
                "#".repeat(filled),
                ".".repeat(30 - filled)
            );
        }
    }

    fn epoch_done(&self, e: &EpochLog) {
        if self.bar {
            eprint!("\r\x1b[2K");
        }
        log::info!(
            "epoch {}/{}: loss {:.4}, test accuracy {:.2}%, {:.1} s",
            e.epoch,
            self.epochs,
            e.loss,
            100.0 * e.test_accuracy,
            e.seconds
        );
    }
}
