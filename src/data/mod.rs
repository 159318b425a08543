//! The test and training sets: official MNIST and CIFAR-10 files, read and validated from a
//! configurable folder; checksums; and a downloader for users with internet access.

pub mod checksums;
pub mod cifar10;
pub mod fetch;
pub mod mnist;
mod shape;

pub use shape::Shape;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything that can be wrong with a dataset, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: not found ({hint})")]
    Missing { path: PathBuf, hint: String },
    #[error("unknown dataset {0:?} (expected mnist or cifar10)")]
    UnknownDataset(String),
    #[error("downloading {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("{bad} dataset file(s) under {dir} are missing or fail their checksum")]
    Incomplete { dir: PathBuf, bad: usize },
}

impl DataError {
    pub(crate) fn file(path: &Path, reason: impl Into<String>) -> Self {
        DataError::File {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// The datasets hejob knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    Mnist,
    Cifar10,
}

impl std::str::FromStr for Dataset {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        match s {
            "mnist" => Ok(Dataset::Mnist),
            "cifar10" => Ok(Dataset::Cifar10),
            _ => Err(DataError::UnknownDataset(s.to_string())),
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Dataset {
    pub const ALL: [Dataset; 2] = [Dataset::Mnist, Dataset::Cifar10];

    /// The name used in files, configs and folder names.
    pub fn name(&self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::Cifar10 => "cifar10",
        }
    }

    /// The shape of one image.
    pub fn shape(&self) -> Shape {
        match self {
            Dataset::Mnist => Shape::new(1, 28, 28),
            Dataset::Cifar10 => Shape::new(3, 32, 32),
        }
    }

    /// The class names, in label order.
    pub fn classes(&self) -> Vec<String> {
        let names: &[&str] = match self {
            Dataset::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            Dataset::Cifar10 => &[
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ],
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Reads the 10,000-image test set from `root/<name>/`.
    pub fn load_test(&self, root: &Path) -> Result<Images, DataError> {
        self.load(root, Split::Test)
    }

    /// Reads the training set from `root/<name>/`.
    pub fn load_train(&self, root: &Path) -> Result<Images, DataError> {
        self.load(root, Split::Train)
    }

    fn load(&self, root: &Path, split: Split) -> Result<Images, DataError> {
        let dir = root.join(self.name());
        match self {
            Dataset::Mnist => mnist::load(&dir, split),
            Dataset::Cifar10 => cifar10::load(&dir, split),
        }
    }
}

/// Which part of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Images as raw bytes (`n × c × h × w`, channel-major like PyTorch) with their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub shape: Shape,
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.len();
        &self.pixels[i * n..(i + 1) * n]
    }
}

/// The dataset folder: the explicit one, else `$HEJOB_DATASETS`, else `data/datasets`.
pub fn resolve_dir(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("HEJOB_DATASETS").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data/datasets"))
}

/// The most bytes a dataset file may hold, raw or decompressed (the largest official one,
/// MNIST's training images, has 47 MB): a larger or endless file is refused before it is read.
pub const MAX_FILE: u64 = 64 << 20;

/// Reads a whole file of at most [`MAX_FILE`] bytes.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, DataError> {
    let len = std::fs::metadata(path)
        .map_err(|e| DataError::file(path, e.to_string()))?
        .len();
    if len > MAX_FILE {
        return Err(DataError::file(
            path,
            format!("{len} bytes, more than the {MAX_FILE} a dataset file may have"),
        ));
    }
    std::fs::read(path).map_err(|e| DataError::file(path, e.to_string()))
}

/// Reads a whole file, transparently gunzipping `name.gz` when `name` is absent; either is
/// refused beyond [`MAX_FILE`] bytes.
pub(crate) fn read_maybe_gz(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>), DataError> {
    use std::io::Read;
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if raw.exists() {
        let bytes = read_bounded(&raw)?;
        return Ok((raw, bytes));
    }
    if gz.exists() {
        let file = std::fs::File::open(&gz).map_err(|e| DataError::file(&gz, e.to_string()))?;
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(file)
            .take(MAX_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::file(&gz, format!("not a valid gzip file: {e}")))?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(DataError::file(
                &gz,
                format!("decompresses to more than the {MAX_FILE} bytes a dataset file may have"),
            ));
        }
        return Ok((gz, bytes));
    }
    Err(DataError::Missing {
        path: raw,
        hint: format!(
            "nor {name}.gz; get the official files with `hejob datasets fetch {}` or set --data-dir / HEJOB_DATASETS",
            dir.parent().unwrap_or(dir).display()
        ),
    })
}
