//! The batch job: a TOML job file, a checkpoint that loses nothing a killed job finished, the
//! result HDF5 file, and the runner that ties them to encrypted inference.

pub mod checkpoint;
pub mod config;
pub mod lock;
pub mod predictions;
pub mod results;
pub mod runner;
pub mod sealed;

use std::path::PathBuf;

/// Everything that can go wrong with a job, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    He(#[from] crate::he::HeError),
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    ThreadPool(#[from] crate::pool::PoolError),
    #[error(transparent)]
    Keys(#[from] crate::private::KeysError),
    #[error("job file {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("result file {path}: {reason}")]
    Results { path: PathBuf, reason: String },
    #[error(
        "output {output} is being written by another job ({holder}); wait for it to finish or \
         name another output"
    )]
    OutputInUse { output: PathBuf, holder: String },
    #[error("MPI was already initialized")]
    MpiInitialized,
    #[error(
        "the launcher started {processes} processes ({var}={processes}), but MPI would see each \
         as the only rank: the launcher does not match hejob's MPI library (OpenMPI). Launch \
         with `mpirun -n {processes} --bind-to none hejob --config FILE` from OpenMPI, or under \
         Slurm with `srun --mpi=pmix hejob --config FILE`"
    )]
    Launcher { processes: usize, var: String },
    #[error("rank(s) {0:?} could not prepare the job (their messages say why); nothing was run")]
    NotReady(Vec<usize>),
    #[error(
        "{}; every finished image is kept in the checkpoints: run the job again to finish it",
        .0.join("; ")
    )]
    RanksFailed(Vec<String>),
    #[error("rank 0 stopped the job: {0}")]
    Stopped(String),
    #[error("rank 0 sent {0}")]
    Malformed(&'static str),
    #[error("rank 0 announced {announced} evaluation-key pieces, and the keys need more")]
    KeyPiecesMissing { announced: usize },
    #[error("rank 0 announced {announced} evaluation-key pieces, {left} more than the keys hold")]
    KeyPiecesLeft { announced: usize, left: usize },
    #[error(
        "rank {rank} reads a different job than rank 0 ({here} here, {root} on rank 0): every \
         rank must see the same model file, dataset and packing"
    )]
    DifferentJob {
        rank: usize,
        here: String,
        root: String,
    },
}
