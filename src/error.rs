//! The crate-level error: every module's error, each already naming its file, layer or operation.

/// Any failure of an hejob command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Import(#[from] crate::model::onnx::ImportError),
    #[error(transparent)]
    He(#[from] crate::he::HeError),
    #[error(transparent)]
    Job(#[from] crate::job::JobError),
    #[error(transparent)]
    Keys(#[from] crate::private::KeysError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[cfg(feature = "train")]
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),
}

/// A command line that asks for something impossible: each names the argument.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("give --config FILE or a command (see --help)")]
    NoCommand,
    #[error(
        "fit needs a positive finite --range and --degree of at most 12 (got {range}, {degree})"
    )]
    Fit { range: f64, degree: usize },
    #[error("--limit {limit} is beyond the {available} images of the {dataset} test set")]
    Limit {
        limit: usize,
        available: usize,
        dataset: crate::data::Dataset,
    },
    #[error("--logit-error {0} must be a finite number ≥ 0")]
    LogitError(f64),
    #[error("--offset {offset} and --limit {limit} reach beyond the {available} test images")]
    Range {
        offset: usize,
        limit: usize,
        available: usize,
    },
    #[error("image {index} is beyond the {available} test images")]
    Image { index: usize, available: usize },
    #[error("--{name} {value} must be {want}")]
    Layout {
        name: &'static str,
        value: String,
        want: &'static str,
    },
}
