//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hejob::model::{BatchNorm, Conv, Dense, Layer, LayerKind};

/// The official datasets: `$HEJOB_DATASETS`, else hejob's default folder `data/datasets` (where
/// the README's first command fetches them), else `../shared/datasets` beside the repo.
/// Panics with a clear message when absent (a test that needs them must not pass silently).
pub fn datasets_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let complete = |d: &PathBuf| d.join("mnist").is_dir() && d.join("cifar10").is_dir();
    let dir = std::env::var_os("HEJOB_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            [root.join("data/datasets"), root.join("../shared/datasets")]
                .into_iter()
                .find(complete)
                .unwrap_or_else(|| root.join("data/datasets"))
        });
    assert!(
        dir.join("mnist").is_dir() && dir.join("cifar10").is_dir(),
        "official datasets not found in {} (run `hejob datasets fetch data/datasets` or set HEJOB_DATASETS)",
        dir.display()
    );
    dir
}

/// A command running the hejob binary with quiet logs. The test process does HDF5 I/O on other
/// threads while it spawns children, and HDF5 opens files without close-on-exec, so a child can
/// inherit another test's file lock: children run with HDF5's file locking off.
pub fn hejob_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hejob"));
    cmd.env("RUST_LOG", "warn")
        .env("HDF5_USE_FILE_LOCKING", "FALSE");
    cmd
}

/// Serialises the tests of one test binary that do HDF5 I/O in this process and spawn children:
/// a child forked while another thread holds an HDF5 file open inherits its lock.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
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

/// A random convolution, weights uniform in ±1/√fan-in.
pub fn conv(
    r: &mut Rng,
    ic: usize,
    oc: usize,
    k: usize,
    stride: usize,
    padding: usize,
) -> LayerKind {
    let std = (1.0 / (ic * k * k) as f64).sqrt();
    LayerKind::Conv(Conv::square(
        (oc, ic, k),
        (stride, padding),
        r.vec(oc * ic * k * k, -std, std),
        r.vec(oc, -0.1, 0.1),
    ))
}

/// A random batch-norm with plausible statistics.
pub fn bn(r: &mut Rng, c: usize) -> LayerKind {
    LayerKind::BatchNorm(BatchNorm {
        gamma: r.vec(c, 0.8, 1.2),
        beta: r.vec(c, -0.2, 0.2),
        mean: r.vec(c, -0.2, 0.2),
        var: r.vec(c, 0.5, 1.5),
        eps: 1e-5,
    })
}

/// A random dense layer, weights uniform in ±1/√inputs.
pub fn dense(r: &mut Rng, inp: usize, out: usize) -> LayerKind {
    let std = (1.0 / inp as f64).sqrt();
    LayerKind::Dense(Dense {
        out,
        inp,
        weight: r.vec(out * inp, -std, std),
        bias: r.vec(out, -0.1, 0.1),
    })
}

/// Names layers `l0`, `l1`, … in order.
pub fn named(kinds: Vec<LayerKind>) -> Vec<Layer> {
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, k)| Layer::new(format!("l{i}"), k))
        .collect()
}

/// A small MNIST network that plans at N=8192 (about half a second per image channel-wise).
pub fn tiny_model(dir: &Path) -> PathBuf {
    let mut r = Rng(5);
    use hejob::data::Dataset;
    use hejob::model::{file, Activation, Model, Preprocess};
    let model = Model {
        dataset: Dataset::Mnist,
        input: Dataset::Mnist.shape(),
        classes: Dataset::Mnist.classes(),
        preprocess: Preprocess::standard(Dataset::Mnist),
        layers: named(vec![
            conv(&mut r, 1, 2, 5, 2, 0),
            LayerKind::Activation(Activation::Poly(vec![0.0, 0.0, 1.0]), "square".into()),
            LayerKind::Flatten,
            dense(&mut r, 288, 10),
        ]),
        provenance: std::collections::BTreeMap::from([(
            "weights".into(),
            "random, for runner tests".into(),
        )]),
    };
    let path = dir.join("tiny.h5");
    file::save(&model, &path).unwrap();
    path
}
