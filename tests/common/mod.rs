//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The official datasets: `$HEJOB_DATASETS`, else `../shared/datasets` beside the repo.
/// Panics with a clear message when absent (a test that needs them must not pass silently).
pub fn datasets_dir() -> PathBuf {
    let dir = std::env::var_os("HEJOB_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets"));
    assert!(
        dir.join("mnist").is_dir() && dir.join("cifar10").is_dir(),
        "official datasets not found in {} (set HEJOB_DATASETS)",
        dir.display()
    );
    dir
}

/// A tiny deterministic generator (xorshift) so tests need no RNG crate setup.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
