//! Rayon thread pools of a chosen size, and the one error of starting one.

/// A pool that could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {threads} threads: {source}")]
pub struct PoolError {
    threads: usize,
    source: rayon::ThreadPoolBuildError,
}

/// A pool of `threads` worker threads.
pub fn threads(threads: usize) -> Result<rayon::ThreadPool, PoolError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|source| PoolError { threads, source })
}
