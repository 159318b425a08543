//! Command-line definitions of every hejob command (clap derive).

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hejob",
    version,
    about = "CNN inference over CKKS homomorphic encryption"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
}
