//! The official MD5 checksums of every dataset file, and `hejob datasets check`.

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::Serialize;

use super::{DataError, Dataset};

/// `(dataset, file name, md5)` of the official distributions. MNIST's raw files are the
/// decompressed official `.gz` files; either form is accepted.
pub const OFFICIAL: &[(Dataset, &str, &str)] = &[
    (
        Dataset::Mnist,
        "train-images-idx3-ubyte.gz",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    (
        Dataset::Mnist,
        "train-labels-idx1-ubyte.gz",
        "d53e105ee54ea40749a09fcbcd1e9432",
    ),
    (
        Dataset::Mnist,
        "t10k-images-idx3-ubyte.gz",
        "9fb629c4189551a2d022fa330f9573f3",
    ),
    (
        Dataset::Mnist,
        "t10k-labels-idx1-ubyte.gz",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
    (
        Dataset::Mnist,
        "train-images-idx3-ubyte",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    (
        Dataset::Mnist,
        "train-labels-idx1-ubyte",
        "a25bea736e30d166cdddb491f175f624",
    ),
    (
        Dataset::Mnist,
        "t10k-images-idx3-ubyte",
        "2646ac647ad5339dbf082846283269ea",
    ),
    (
        Dataset::Mnist,
        "t10k-labels-idx1-ubyte",
        "27ae3e4e09519cfbb04c329615203637",
    ),
    (
        Dataset::Cifar10,
        "data_batch_1.bin",
        "5dd7e06a14cb22eb9f671a540d1b7c25",
    ),
    (
        Dataset::Cifar10,
        "data_batch_2.bin",
        "5ea93a67294ea407fff1d09f752e9692",
    ),
    (
        Dataset::Cifar10,
        "data_batch_3.bin",
        "942cd6a4bcdd0dd3c604fbe906cb4421",
    ),
    (
        Dataset::Cifar10,
        "data_batch_4.bin",
        "ae636b3ba5c66a11e91e8cb52e771fcb",
    ),
    (
        Dataset::Cifar10,
        "data_batch_5.bin",
        "53f37980c15c3d472c316c40844f3f0d",
    ),
    (
        Dataset::Cifar10,
        "test_batch.bin",
        "803d5f7f4d78ea53de84dbe85f74fb6d",
    ),
];

/// The outcome for one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "status")]
pub enum Status {
    Ok,
    Mismatch { md5: String },
    Missing,
}

/// One checked file.
#[derive(Clone, Debug, Serialize)]
pub struct Checked {
    pub dataset: Dataset,
    pub path: PathBuf,
    #[serde(flatten)]
    pub status: Status,
}

/// MD5 of a file, streamed.
pub fn md5_file(path: &Path) -> Result<String, DataError> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::file(path, e.to_string()))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| DataError::file(path, e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hexadecimal of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks every official file of `dataset` under `root/<name>/`. For MNIST a file counts as
/// present in either form; only the forms present are hashed.
pub fn check(root: &Path, dataset: Dataset) -> Result<Vec<Checked>, DataError> {
    let dir = root.join(dataset.name());
    let mut out = Vec::new();
    let entries: Vec<_> = OFFICIAL.iter().filter(|(d, ..)| *d == dataset).collect();
    for (_, name, want) in &entries {
        let path = dir.join(name);
        let status = if path.exists() {
            let got = md5_file(&path)?;
            if got == *want {
                Status::Ok
            } else {
                Status::Mismatch { md5: got }
            }
        } else {
            let other = name
                .strip_suffix(".gz")
                .map(str::to_string)
                .unwrap_or_else(|| format!("{name}.gz"));
            if dataset == Dataset::Mnist && dir.join(&other).exists() {
                continue; // the other form of this file is present and checked on its own
            }
            if dataset == Dataset::Mnist && !name.ends_with(".gz") {
                continue; // a missing file is reported once, under its official .gz name
            }
            Status::Missing
        };
        out.push(Checked {
            dataset,
            path,
            status,
        });
    }
    Ok(out)
}
