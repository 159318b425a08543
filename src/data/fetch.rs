//! `hejob datasets fetch`: downloads the official files for users with internet access, bounded
//! in size, verifies them against the official checksums in a staging folder, and only then puts
//! them in place. Nothing else in hejob downloads anything.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::checksums::{self, Status};
use super::{DataError, Dataset};

/// Where MNIST's four `.gz` files are downloaded from: the mirror PyTorch's torchvision uses,
/// since the original site (http://yann.lecun.com/exdb/mnist/, `--mnist-url`) often refuses
/// downloads. Every file is verified against the official MD5 either way.
pub const MNIST_URL: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";
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

/// The most bytes one download may bring (the CIFAR-10 tarball has 170 MB).
pub const MAX_DOWNLOAD: u64 = 200 << 20;
/// The most bytes one extracted file may have (a CIFAR-10 batch has 30.7 MB).
pub const MAX_MEMBER: u64 = 32 << 20;
/// The most bytes a tarball may decompress to in all (the official one: 185 MB).
pub const MAX_EXTRACTED: u64 = 256 << 20;

/// Downloads whatever of `dataset` is missing or damaged under `root`, into a staging folder
/// beside it on the same file system; verifies every downloaded file against its official
/// MD5; only when all pass, renames them into place. A good file already present is never
/// touched, and a download that fails verification leaves the folder as it was.
pub fn fetch(root: &Path, dataset: Dataset, sources: &Sources) -> Result<(), DataError> {
    let dir = root.join(dataset.name());
    std::fs::create_dir_all(&dir).map_err(|e| DataError::file(&dir, e.to_string()))?;
    let needed = needed(root, dataset)?;
    if needed.is_empty() {
        log::info!(
            "{dataset}: all files present and verified in {}",
            dir.display()
        );
        return Ok(());
    }
    let url = match dataset {
        Dataset::Mnist => sources.mnist.clone(),
        Dataset::Cifar10 => sources.cifar10.clone(),
    };
    let fail = |reason: String| DataError::Download {
        url: url.clone(),
        reason,
    };
    let staging =
        Staging::new(root.join(format!(".{}-fetch-{}", dataset.name(), std::process::id())))?;
    match dataset {
        Dataset::Mnist => {
            for (name, _) in &needed {
                let bytes = download(&format!("{}{name}", sources.mnist))?;
                staging.write(name, &bytes)?;
            }
        }
        Dataset::Cifar10 => {
            let bytes = download(&sources.cifar10)?;
            let names: Vec<&str> = needed.iter().map(|(n, _)| *n).collect();
            extract_cifar(&bytes, &names, &staging).map_err(fail)?;
        }
    }
    let mut bad = Vec::new();
    for (name, want) in &needed {
        let staged = staging.path.join(name);
        if !staged.exists() {
            bad.push(format!("{name} (not in the download)"));
        } else if checksums::md5_file(&staged)? != *want {
            bad.push(format!("{name} (wrong checksum)"));
        }
    }
    if !bad.is_empty() {
        return Err(fail(format!(
            "files failed verification, nothing was changed in {}: {}",
            dir.display(),
            bad.join(", ")
        )));
    }
    for (name, _) in &needed {
        let to = dir.join(name);
        std::fs::rename(staging.path.join(name), &to)
            .map_err(|e| DataError::file(&to, e.to_string()))?;
    }
    log::info!(
        "{dataset}: downloaded, verified and placed {} file(s) in {}",
        needed.len(),
        dir.display()
    );
    Ok(())
}

/// The official files of `dataset` to download, with their MD5: those missing or damaged (for
/// MNIST, under their `.gz` names). A damaged raw MNIST file is not replaced by a download of
/// another form: it is an error naming it.
fn needed(root: &Path, dataset: Dataset) -> Result<Vec<(&'static str, &'static str)>, DataError> {
    let mut out = Vec::new();
    for c in checksums::check(root, dataset)? {
        if c.status == Status::Ok {
            continue;
        }
        let name = c.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let wanted =
            match dataset {
                Dataset::Mnist if !name.ends_with(".gz") => return Err(DataError::file(
                    &c.path,
                    "damaged (wrong checksum): remove it, and fetch again to get the official .gz",
                )),
                _ => name,
            };
        let entry = checksums::OFFICIAL
            .iter()
            .find(|(d, n, _)| *d == dataset && *n == wanted)
            .map(|(_, n, md5)| (*n, *md5));
        out.extend(entry);
    }
    Ok(out)
}

/// A staging folder, removed with whatever is left in it when dropped.
struct Staging {
    path: PathBuf,
}

impl Staging {
    fn new(path: PathBuf) -> Result<Self, DataError> {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).map_err(|e| DataError::file(&path, e.to_string()))?;
        Ok(Self { path })
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), DataError> {
        let to = self.path.join(name);
        std::fs::write(&to, bytes).map_err(|e| DataError::file(&to, e.to_string()))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The body of `url`, refused beyond [`MAX_DOWNLOAD`] bytes.
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
        .take(MAX_DOWNLOAD + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_DOWNLOAD {
        return Err(fail(format!("larger than {MAX_DOWNLOAD} bytes")));
    }
    Ok(bytes)
}

/// Extracts the `names` among the official members `cifar-10-batches-bin/<name>` of the
/// tarball into `staging`: regular files only, each at most [`MAX_MEMBER`] bytes and the
/// whole archive at most [`MAX_EXTRACTED`] decompressed; every other member is skipped.
fn extract_cifar(bytes: &[u8], names: &[&str], staging: &Staging) -> Result<(), String> {
    let limited = Limited {
        inner: flate2::read::GzDecoder::new(bytes),
        left: MAX_EXTRACTED,
    };
    let mut archive = tar::Archive::new(limited);
    let entries = archive
        .entries()
        .map_err(|e| format!("bad tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("bad tar archive: {e}"))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let Some(name) = path
            .strip_prefix("cifar-10-batches-bin")
            .ok()
            .and_then(|p| p.to_str())
            .filter(|n| names.contains(n))
        else {
            continue;
        };
        if !entry.header().entry_type().is_file() {
            return Err(format!("member {} is not a regular file", path.display()));
        }
        if entry.size() > MAX_MEMBER {
            return Err(format!(
                "member {} declares {} bytes, more than the {MAX_MEMBER} a CIFAR-10 file may have",
                path.display(),
                entry.size()
            ));
        }
        let mut data = Vec::new();
        (&mut entry)
            .take(MAX_MEMBER + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("member {}: {e}", path.display()))?;
        staging.write(name, &data).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A reader that fails once more than `left` bytes have come through.
struct Limited<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::other(format!(
                "the archive decompresses to more than {MAX_EXTRACTED} bytes"
            ))
        })?;
        Ok(n)
    }
}
