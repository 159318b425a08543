//! Command-line definitions of every hejob command (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Least-squares polynomial fit of ReLU or Swish over [-R, R].
    Fit {
        #[arg(long, value_enum)]
        function: Function,
        /// Half-width R of the interval [-R, R].
        #[arg(long)]
        range: f64,
        #[arg(long)]
        degree: usize,
        /// Print {"coefficients": [c0, c1, ..., cD]}.
        #[arg(long)]
        json: bool,
    },
    /// Create or inspect model files.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Plain (unencrypted) test accuracy of a model on the test set it names.
    Eval {
        #[arg(long)]
        model: PathBuf,
        /// Evaluate only the first N test images.
        #[arg(long)]
        limit: Option<usize>,
        /// Dataset folder (else $HEJOB_DATASETS, else data/datasets).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Plan encrypted evaluation (depth, parameters, rotation keys, operation counts) without
    /// encrypting anything.
    Plan {
        #[arg(long)]
        model: PathBuf,
        /// channel (the paper's channel-wise method) or batch (batch-axis).
        #[arg(long)]
        packing: String,
        #[arg(long)]
        json: bool,
    },
    /// Verify or download the official dataset files.
    #[command(subcommand)]
    Datasets(DatasetsCommand),
    /// Time every CKKS operation on one thread and print key and ciphertext sizes.
    BenchOps {
        /// Ring degrees to measure.
        #[arg(long, value_delimiter = ',', default_values_t = [8192u64, 16384, 32768])]
        degrees: Vec<u64>,
        /// Minimum seconds spent timing each operation.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Print JSON instead of a markdown table.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark the packings on the paper's networks (random weights): latency with each
    /// thread count, per-stage time, operation counts, peak memory, key sizes.
    BenchPackings {
        #[arg(long, value_delimiter = ',', default_value = "mnist-3layer")]
        arch: Vec<Arch>,
        #[arg(long, value_delimiter = ',', default_values_t = ["square".to_string(), "swish-rg5-deg2".to_string(), "swish-rg7-deg4".to_string()])]
        activations: Vec<String>,
        #[arg(long, value_delimiter = ',', default_values_t = ["channel".to_string(), "batch".to_string()])]
        packings: Vec<String>,
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
        threads: Vec<usize>,
        /// Consecutive runs per configuration; the last is reported.
        #[arg(long, default_value_t = 1)]
        runs: usize,
        /// Images per batch-axis run (default: a full batch of N/2).
        #[arg(long)]
        batch_images: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Classify test images encrypted (client encrypts, server evaluates, client decrypts)
    /// and compare each with the plaintext reference.
    Infer {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        packing: String,
        #[arg(long, default_value_t = 1)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// A model file of one of the paper's architectures with random (He-initialised) weights.
    New {
        #[arg(long, value_enum)]
        arch: Arch,
        /// Activation name (square, relu, swish, relu-rg5-deg2, ..., swish-rg7-deg4).
        #[arg(long)]
        activation: String,
        /// Width of conv2 (pruned widths: MNIST 40, 32; CIFAR-10 58, 52, 45).
        #[arg(long)]
        conv2_channels: Option<usize>,
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
