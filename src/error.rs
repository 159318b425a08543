//! The crate-level error: every module's error, each already naming its file, layer or operation.

/// Any failure of an hejob command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    He(#[from] crate::he::HeError),
    #[error(transparent)]
    Job(#[from] crate::job::JobError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[cfg(feature = "train")]
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Usage(String),
}
