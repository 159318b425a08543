//! CIFAR-10 in its official binary format (records of 1 label byte + 3072 pixel bytes).

use std::path::Path;

use super::Shape;
use super::{DataError, Images, Split};

const RECORD: usize = 1 + 3072;
const PER_FILE: usize = 10_000;

/// The files of a split.
pub fn files(split: Split) -> Vec<String> {
    match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    }
}

/// Reads and validates one split from `dir`.
pub fn load(dir: &Path, split: Split) -> Result<Images, DataError> {
    let mut images = Images {
        shape: Shape::new(3, 32, 32),
        pixels: Vec::new(),
        labels: Vec::new(),
    };
    for name in files(split) {
        let path = dir.join(&name);
        if !path.exists() {
            return Err(DataError::Missing {
                path,
                hint: format!(
                    "get the official binary version with `hejob datasets fetch {}` or set --data-dir / HEJOB_DATASETS",
                    dir.parent().unwrap_or(dir).display()
                ),
            });
        }
        let bytes = super::read_bounded(&path)?;
        parse_batch(&path, &bytes, &mut images)?;
    }
    Ok(images)
}

/// Validates one batch file (exactly 10,000 records, labels 0..9) and appends its records.
pub fn parse_batch(path: &Path, bytes: &[u8], into: &mut Images) -> Result<(), DataError> {
    if bytes.len() != RECORD * PER_FILE {
        return Err(DataError::file(
            path,
            format!(
                "{} bytes, expected {} ({PER_FILE} records of {RECORD} bytes){}",
                bytes.len(),
                RECORD * PER_FILE,
                if bytes.len() < RECORD * PER_FILE {
                    ": truncated"
                } else {
                    ""
                }
            ),
        ));
    }
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] > 9 {
            return Err(DataError::file(
                path,
                format!("record {i} has label {}, expected 0..9", record[0]),
            ));
        }
        into.labels.push(record[0]);
        into.pixels.extend_from_slice(&record[1..]);
    }
    Ok(())
}
