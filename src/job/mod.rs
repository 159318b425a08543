//! The batch job: a TOML job file, a checkpoint that loses nothing a killed job finished, the
//! result HDF5 file, and the runner that ties them to encrypted inference.

pub mod checkpoint;
pub mod config;
pub mod results;
pub mod runner;

use std::path::PathBuf;

/// Everything that can go wrong with a job, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("job file {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("result file {path}: {reason}")]
    Results { path: PathBuf, reason: String },
    #[error("{0}")]
    Launch(String),
}
