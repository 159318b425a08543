//! Command-line definitions of every hejob command (clap derive).

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};

use crate::data::Dataset;
use crate::he::packing::PackingId;
use crate::model::arch::Arch;
use crate::model::poly::Function;

#[derive(Debug, Parser)]
#[command(
    name = "hejob",
    version,
    about = "CNN inference over CKKS homomorphic encryption",
    args_conflicts_with_subcommands = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Run the job in this TOML file (see jobs/README.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override the job's image count.
    #[arg(long, requires = "config")]
    pub limit: Option<usize>,
    /// Override the job's first image.
    #[arg(long, requires = "config")]
    pub offset: Option<usize>,
    /// Override the job's result file.
    #[arg(long, requires = "config")]
    pub output: Option<PathBuf>,
    /// Override the job's threads per rank.
    #[arg(long, requires = "config")]
    pub threads: Option<usize>,
    /// Override the job's runs in flight per rank (`auto` or a number).
    #[arg(long, requires = "config")]
    pub runs_in_flight: Option<crate::he::cost::Flight>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Least-squares polynomial fit of ReLU or Swish over [-R, R].
    Fit(FitArgs),
    /// Create or inspect model files.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Plain (unencrypted) test accuracy of a model on the test set it names.
    Eval(EvalArgs),
    /// Plan encrypted evaluation (depth, parameters, rotation keys, operation counts) without
    /// encrypting any image; the private-mode upload per image is measured on one ciphertext of
    /// zeros under a throwaway key.
    Plan(PlanArgs),
    /// Turn result files into the paper's tables (Markdown, CSV), a per-layer breakdown and
    /// Fig. 5.1 (SVG, PNG): DIR/report.md, report.csv, layers.csv, fig-5-1.svg, fig-5-1.png.
    Report(ReportArgs),
    /// Verify or download the official dataset files.
    #[command(subcommand)]
    Datasets(DatasetsCommand),
    /// Time every CKKS operation on one thread and print key and ciphertext sizes.
    BenchOps(BenchOpsArgs),
    /// Benchmark the packings on the paper's networks (random weights): latency with each
    /// thread count, per-stage time, operation counts, peak memory, key sizes.
    BenchPackings(BenchPackingsArgs),
    /// Train one of the paper's architectures from random weights and write the model file
    /// (resumable: a checkpoint after every epoch).
    #[cfg(feature = "train")]
    Train(TrainArgs),
    /// Remove the smallest-L1 fraction of a conv layer's filters (and what reads them), then
    /// retrain (resumable).
    #[cfg(feature = "train")]
    Prune(PruneArgs),
    /// Continue training a trained model, from its weights and batch-norm statistics, on a
    /// fresh learning-rate schedule: a warm restart for a network that stopped short of its
    /// accuracy (resumable).
    #[cfg(feature = "train")]
    Retrain(RetrainArgs),
    /// Re-estimate every batch norm's mean and variance on the unaugmented training images
    /// (for a model trained with augmentation before hejob did this itself); weights untouched.
    Recalibrate(RecalibrateArgs),
    /// Classify test images encrypted (client encrypts, server evaluates, client decrypts)
    /// and compare each with the plaintext reference.
    Infer(InferArgs),
    /// Private mode's key folders: the secret key stays on the machine that made it.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Private mode, on the key owner's machine: encrypt test images with the secret key, laid
    /// out as the keys' packing reads them, into a file for the cluster (ciphertexts and the
    /// images' indices; never pixels or labels).
    Encrypt(EncryptArgs),
    /// Private mode, on the key owner's machine: decrypt the logits of a private-mode job's
    /// result file and compare them with the plaintext network, completing the file (or
    /// writing a new one) so that it reads as a measuring-mode result.
    Decrypt(DecryptArgs),
    /// (Internal) read an HDF5 file as a model, a result or an output, in a child process that
    /// may crash on a damaged file without taking the command down.
    #[command(name = "probe-hdf5", hide = true)]
    ProbeHdf5 {
        #[arg(value_parser = one_of(&ProbeKind::ALL, ProbeKind::name))]
        kind: ProbeKind,
        file: PathBuf,
    },
}

/// What a probed HDF5 file is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// A model file, loaded and validated.
    Model,
    /// A result file, read as `hejob report` reads it.
    Result,
    /// An existing file a command is to write over: its kind and owner.
    Output,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [ProbeKind::Model, ProbeKind::Result, ProbeKind::Output];

    pub fn name(&self) -> &'static str {
        match self {
            ProbeKind::Model => "model",
            ProbeKind::Result => "result",
            ProbeKind::Output => "output",
        }
    }
}

/// The arguments of `hejob fit`.
#[derive(Debug, clap::Args)]
pub struct FitArgs {
    #[arg(long, value_parser = one_of(&Function::ALL, Function::name))]
    pub function: Function,
    /// Half-width R of the interval [-R, R].
    #[arg(long)]
    pub range: f64,
    #[arg(long)]
    pub degree: usize,
    /// Print {"coefficients": [c0, c1, ..., cD]}.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `hejob eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Evaluate only the first N test images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Dataset folder (else $HEJOB_DATASETS, else data/datasets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also list the images whose two largest logits are within 2×E of each other: the only
    /// ones that an encrypted evaluation with every logit error below E can classify
    /// differently from the plain network.
    #[arg(long, value_name = "E")]
    pub logit_error: Option<f64>,
    #[arg(long)]
    pub json: bool,
    /// With --json: every image's plain logits too ("logits": one list per image), to
    /// compare with another framework's outputs.
    #[arg(long, requires = "json")]
    pub logits: bool,
}

/// A model and how it is to be evaluated encrypted: what a plan is made for.
#[derive(Debug, clap::Args)]
pub struct PlanTarget {
    #[arg(long)]
    pub model: PathBuf,
    /// channel (the paper's channel-wise method), channel-fast (channel-wise with many
    /// channels per ciphertext, 20–40× faster), channel-fast-xK (K = 2, 4, 8, 16 images per
    /// ciphertext), each also as -im2col (more input ciphertexts, less server time), or batch
    /// (batch-axis).
    #[arg(long)]
    pub packing: PackingId,
    #[command(flatten)]
    pub precision: Precision,
}

/// The arguments of `hejob plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: PlanTarget,
    #[arg(long)]
    pub json: bool,
    /// Threads per rank the prediction is for (default: this machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Ranks per node.
    #[arg(long, default_value_t = 1)]
    pub ranks: usize,
    /// Nodes.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Test images in the job.
    #[arg(long, default_value_t = 10_000)]
    pub images: usize,
    /// Each rank's memory budget in GB (default: the node's memory as a job sees it, shared
    /// among its ranks).
    #[arg(long)]
    pub memory_gb: Option<f64>,
    /// Runs each rank keeps in flight: `auto` or a number.
    #[arg(long, default_value = "auto")]
    pub runs_in_flight: crate::he::cost::Flight,
    /// Operation costs measured by `hejob bench-ops --json` (default: the built-in table).
    #[arg(long)]
    pub costs: Option<PathBuf>,
}

/// The arguments of `hejob report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Result files written by jobs (results/*.h5).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Folder for the report (created if absent).
    #[arg(long, default_value = "results/report")]
    pub out: PathBuf,
}

/// The arguments of `hejob bench-ops`.
#[derive(Debug, clap::Args)]
pub struct BenchOpsArgs {
    /// Ring degrees to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [8192u64, 16384, 32768])]
    pub degrees: Vec<u64>,
    /// Minimum seconds spent timing each operation.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Print JSON instead of a markdown table.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `hejob bench-packings`.
#[derive(Debug, clap::Args)]
pub struct BenchPackingsArgs {
    #[arg(long, value_delimiter = ',', default_value = "mnist-3layer", value_parser = one_of(&Arch::ALL, Arch::name))]
    pub arch: Vec<Arch>,
    #[arg(long, value_delimiter = ',', default_values_t = ["square".to_string(), "swish-rg5-deg2".to_string(), "swish-rg7-deg4".to_string()])]
    pub activations: Vec<String>,
    #[arg(long, value_delimiter = ',', default_values_t = [PackingId::Channel, PackingId::Batch])]
    pub packings: Vec<PackingId>,
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
    pub threads: Vec<usize>,
    /// Consecutive runs per configuration; the median of runs 2.. is reported.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Images per batch-axis run (default: a full batch of N/2).
    #[arg(long)]
    pub batch_images: Option<usize>,
    #[command(flatten)]
    pub precision: Precision,
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `hejob train`.
#[cfg(feature = "train")]
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub net: NetArgs,
    /// How the conv and dense weights are drawn before training (default: PyTorch's, as the
    /// paper trained).
    #[arg(long, default_value = "torch", value_parser = one_of(&crate::model::arch::WeightInit::ALL, crate::model::arch::WeightInit::name))]
    pub init: crate::model::arch::WeightInit,
    /// The trained model file to write.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    #[command(flatten)]
    pub training: TrainingArgs,
}

/// The arguments of `hejob prune`.
#[cfg(feature = "train")]
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// The conv layer to prune.
    #[arg(long)]
    pub layer: String,
    /// Fraction of its filters to remove (floor(ratio × filters) are removed).
    #[arg(long)]
    pub ratio: f64,
    #[arg(long)]
    pub out: PathBuf,
    /// Retraining epochs (0: prune only).
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[command(flatten)]
    pub training: TrainingArgs,
}

/// The arguments of `hejob retrain`.
#[cfg(feature = "train")]
#[derive(Debug, clap::Args)]
pub struct RetrainArgs {
    /// The trained model to start from.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Epochs of the restart: its schedule starts again from `--lr` (after the warm-up) and
    /// the model's epoch count grows by this many.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[command(flatten)]
    pub training: TrainingArgs,
}

/// The arguments of `hejob recalibrate`.
#[derive(Debug, clap::Args)]
pub struct RecalibrateArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Use only the first N training images (default: all).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Dataset folder (else $HEJOB_DATASETS, else data/datasets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// The arguments of `hejob infer`.
#[derive(Debug, clap::Args)]
pub struct InferArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub packing: PackingId,
    /// Classify test images offset..offset+limit.
    #[arg(long, default_value_t = 1)]
    pub limit: usize,
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Classify these test images instead (comma-separated indices, e.g. the `at_risk` ones of
    /// `hejob eval --logit-error`).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["limit", "offset"])]
    pub images: Vec<usize>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub precision: Precision,
    #[arg(long)]
    pub json: bool,
}

/// Training settings shared by `train`, `prune` and `retrain`.
#[cfg(feature = "train")]
#[derive(Debug, clap::Args)]
pub struct TrainingArgs {
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Peak learning rate of AdamW.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Learning-rate schedule after the warm-up.
    #[arg(long, value_enum, default_value_t = LrSchedule::Constant)]
    pub schedule: LrSchedule,
    /// Epochs of linear learning-rate warm-up (guards polynomial activations).
    #[arg(long, default_value_t = 1.0)]
    pub warmup_epochs: f64,
    /// Clip each parameter tensor's gradient to at most this L2 norm, tensor by tensor as burn
    /// does (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train without the paper's augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// Train on the first N training images only (quick trials; default: all).
    #[arg(long)]
    pub train_images: Option<usize>,
    /// After training, re-estimate the batch norms' statistics on the unaugmented training
    /// images (as `hejob recalibrate`): the running ones were gathered on augmented batches.
    #[arg(long)]
    pub recalibrate_bn: bool,
    /// Checkpoint folder (default: data/training/<name of --out>); removed once the run is done.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Dataset folder (else $HEJOB_DATASETS, else data/datasets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Learning-rate schedules.
#[cfg(feature = "train")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LrSchedule {
    /// The peak rate throughout (the paper).
    Constant,
    /// Cosine decay to zero over the epochs.
    Cosine,
}

/// The planner's choice of CKKS scale.
#[derive(Debug, clap::Args)]
pub struct Precision {
    /// Fix the CKKS scale at this many bits (24..=50) and use the compact modulus chain:
    /// smaller rings for shallow networks, larger logit errors (README, "Precision").
    /// Default: the largest scale from 40 down to 30 bits that the smallest ring holds.
    #[arg(long)]
    pub scale_bits: Option<u32>,
}

/// Which of the paper's networks: architecture, activation, conv2 width.
#[derive(Debug, clap::Args)]
pub struct NetArgs {
    #[arg(long, value_parser = one_of(&Arch::ALL, Arch::name))]
    pub arch: Arch,
    /// Activation name (square, relu, swish, relu-rg5-deg2, ..., swish-rg7-deg4).
    #[arg(long)]
    pub activation: String,
    /// Width of conv2 (default: the paper's 50 for MNIST, 64 for CIFAR-10; pruned widths:
    /// MNIST 40, 32; CIFAR-10 58, 52, 45).
    #[arg(long)]
    pub conv2_channels: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Plan a model and write a key folder for it: DIR/secret.key (mode 0600, the only file
    /// with the secret), DIR/public.key, DIR/evaluation.keys and DIR/plan.json. Copy all but
    /// secret.key to the cluster.
    New(KeysNewArgs),
}

/// The arguments of `hejob keys new`.
#[derive(Debug, clap::Args)]
pub struct KeysNewArgs {
    /// The model and the packing the cluster will evaluate with (see `hejob plan`).
    #[command(flatten)]
    pub target: PlanTarget,
    /// The key folder: a new or empty folder (never written over).
    #[arg(long)]
    pub out: PathBuf,
}

/// The arguments of `hejob encrypt`.
#[derive(Debug, clap::Args)]
pub struct EncryptArgs {
    /// The key folder (`hejob keys new`); its secret key is read.
    #[arg(long)]
    pub keys: PathBuf,
    /// The dataset of the test images: must be the model's.
    #[arg(long, value_parser = one_of(&Dataset::ALL, Dataset::name))]
    pub dataset: Dataset,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The model the keys were made for, where it is not where `keys new` read it.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Encrypt test images offset..offset+limit (default: all from offset on).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Encrypt these test images instead (comma-separated indices).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["limit", "offset"])]
    pub images: Vec<usize>,
    /// The encrypted inputs file (HDF5): a new file, never written over.
    #[arg(long)]
    pub out: PathBuf,
}

/// The arguments of `hejob decrypt`.
#[derive(Debug, clap::Args)]
pub struct DecryptArgs {
    /// The key folder the job's inputs were encrypted for; its secret key is read.
    #[arg(long)]
    pub keys: PathBuf,
    /// The private-mode job's result file, completed in place (through a temporary file and a
    /// rename) unless --out is given.
    #[arg(long)]
    pub result: PathBuf,
    /// Write the decrypted result here instead: a new file, never written over.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The model the keys were made for, where it is not where `keys new` read it.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// A model file of one of the paper's architectures with random (He-initialised) weights.
    New {
        #[command(flatten)]
        net: NetArgs,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a model's layers, shapes, parameter count and provenance.
    Info {
        #[arg(long)]
        model: PathBuf,
    },
    /// Write a model file from an ONNX graph (PyTorch's torch.onnx.export, tf2onnx): Conv,
    /// BatchNormalization, AveragePool, GlobalAveragePool, Flatten/Reshape, Gemm, MatMul + Add,
    /// Relu, and polynomial activations however they were spelled; anything else is refused
    /// by node before a file is written.
    Import(ImportArgs),
}

/// The arguments of `hejob model import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The ONNX file: one image input [N, C, H, W], one output of logits.
    #[arg(long, value_name = "FILE.onnx")]
    pub onnx: PathBuf,
    /// The images the network classifies.
    #[arg(long, value_parser = one_of(&Dataset::ALL, Dataset::name))]
    pub dataset: Dataset,
    /// Per-channel means the network's training subtracted (comma-separated; default: the
    /// dataset's usual normalisation).
    #[arg(long, value_delimiter = ',', num_args = 1.., allow_negative_numbers = true)]
    pub mean: Option<Vec<f64>>,
    /// Per-channel standard deviations it divided by (comma-separated).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub std: Option<Vec<f64>>,
    /// What each pixel byte is multiplied by before normalisation (default 1/255).
    #[arg(long)]
    pub scale: Option<f64>,
    /// The model file to write.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// Verify the official files under DIR by their MD5 checksums.
    Check {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Download the official files into DIR (needs internet) and verify them.
    Fetch {
        dir: PathBuf,
        /// Base URL of the MNIST .gz files (a mirror).
        #[arg(long, default_value = crate::data::fetch::MNIST_URL)]
        mnist_url: String,
        /// URL of the CIFAR-10 binary tarball (a mirror).
        #[arg(long, default_value = crate::data::fetch::CIFAR10_URL)]
        cifar10_url: String,
        /// Only this dataset (default: both).
        #[arg(long)]
        dataset: Option<crate::data::Dataset>,
    },
}

/// A parser that takes exactly the names of `all` (listed in `--help`) and gives the value
/// named: the library's enums stay free of clap.
fn one_of<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    name: fn(&T) -> &'static str,
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(all.iter().map(name)).map(move |s: String| {
        *all.iter()
            .find(|v| name(v) == s)
            .expect("clap passes only a listed name")
    })
}

#[cfg(feature = "train")]
impl From<&NetArgs> for crate::train::command::Network {
    fn from(a: &NetArgs) -> Self {
        Self {
            arch: a.arch,
            activation: a.activation.clone(),
            conv2_channels: a.conv2_channels,
        }
    }
}

#[cfg(feature = "train")]
impl From<&TrainingArgs> for crate::train::command::Options {
    fn from(a: &TrainingArgs) -> Self {
        Self {
            batch: a.batch,
            lr: a.lr,
            cosine: a.schedule == LrSchedule::Cosine,
            warmup_epochs: a.warmup_epochs,
            clip: a.clip,
            weight_decay: a.weight_decay,
            seed: a.seed,
            augment: !a.no_augment,
            train_images: a.train_images,
            recalibrate_bn: a.recalibrate_bn,
            checkpoint_dir: a.checkpoint_dir.clone(),
            data_dir: a.data_dir.clone(),
            threads: a.threads,
        }
    }
}
