//! hejob: privacy-preserving CNN inference over CKKS (Microsoft SEAL), run as an MPI batch job.

// sealy builds and links SEAL's static libraries; `seal::ffi` declares the C API against them.
extern crate sealy;

pub mod bench;
pub mod cli;
pub mod commands;
pub mod data;
mod error;
mod frame;
pub mod he;
pub mod job;
pub mod model;
mod place;
mod pool;
pub mod private;
pub mod report;
pub mod seal;
pub mod sys;
#[cfg(feature = "train")]
pub mod train;

pub use error::{Error, UsageError};
