//! `hejob datasets fetch`: downloads the official files for users with internet access and
//! verifies them against the official checksums. Nothing else in hejob downloads anything.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::checksums::{self, Status};
use super::{mnist, DataError, Dataset, Split};

/// Where MNIST's four `.gz` files are published.
pub const MNIST_URL: &str = "http://yann.lecun.com/exdb/mnist/";
/// The CIFAR-10 binary version tarball.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";

/// Download sources (overridable for mirrors and tests).
#[derive(Clone, Debug)]
pub struct Sources {
    /// Base URL under which the MNIST `.gz` files live (ending in `/`).
    pub mnist: String,
    /// URL of the CIFAR-10 binary tarball.
    pub cifar10: String,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            mnist: MNIST_URL.to_string(),
            cifar10: CIFAR10_URL.to_string(),
        }
    }
}

/// Downloads whatever of `dataset` is missing or damaged under `root`, then verifies every file.
pub fn fetch(root: &Path, dataset: Dataset, sources: &Sources) -> Result<(), DataError> {
    let dir = root.join(dataset.name());
    std::fs::create_dir_all(&dir).map_err(|e| DataError::file(&dir, e.to_string()))?;
    if all_ok(root, dataset)? {
        log::info!(
            "{dataset}: all files present and verified in {}",
            dir.display()
        );
        return Ok(());
    }
    match dataset {
        Dataset::Mnist => {
            for split in [Split::Train, Split::Test] {
                let (images, labels) = mnist::files(split);
                for stem in [images, labels] {
                    let name = format!("{stem}.gz");
                    let url = format!("{}{name}", sources.mnist);
                    let bytes = download(&url)?;
                    write_atomic(&dir.join(&name), &bytes)?;
                }
            }
        }
        Dataset::Cifar10 => {
            let bytes = download(&sources.cifar10)?;
            extract_cifar(&sources.cifar10, &bytes, &dir)?;
        }
    }
    let bad: Vec<String> = checksums::check(root, dataset)?
        .into_iter()
        .filter(|c| c.status != Status::Ok)
        .map(|c| format!("{} ({:?})", c.path.display(), c.status))
        .collect();
    if bad.is_empty() {
        log::info!("{dataset}: downloaded and verified in {}", dir.display());
        Ok(())
    } else {
        Err(DataError::Download {
            url: match dataset {
                Dataset::Mnist => sources.mnist.clone(),
                Dataset::Cifar10 => sources.cifar10.clone(),
            },
            reason: format!("files failed verification: {}", bad.join(", ")),
        })
    }
}

fn all_ok(root: &Path, dataset: Dataset) -> Result<bool, DataError> {
    Ok(checksums::check(root, dataset)?
        .iter()
        .all(|c| c.status == Status::Ok))
}

fn download(url: &str) -> Result<Vec<u8>, DataError> {
    log::info!("downloading {url}");
    let fail = |reason: String| DataError::Download {
        url: url.to_string(),
        reason,
    };
    let response = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    Ok(bytes)
}

/// Writes through a temporary name so that a killed download never leaves a partial file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let tmp = PathBuf::from(format!("{}.part", path.display()));
    std::fs::write(&tmp, bytes).map_err(|e| DataError::file(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| DataError::file(path, e.to_string()))
}

/// Extracts the `.bin` files of `cifar-10-batches-bin/` from the tarball into `dir`.
fn extract_cifar(url: &str, bytes: &[u8], dir: &Path) -> Result<(), DataError> {
    let fail = |reason: String| DataError::Download {
        url: url.to_string(),
        reason,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let entries = archive.entries().map_err(|e| fail(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(format!("bad tar archive: {e}")))?;
        let path = entry.path().map_err(|e| fail(e.to_string()))?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".bin") || name == "batches.meta.txt" {
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| fail(e.to_string()))?;
            write_atomic(&dir.join(name), &data)?;
        }
    }
    Ok(())
}
