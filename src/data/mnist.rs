//! MNIST in its official IDX format (`*-idx3-ubyte`, `*-idx1-ubyte`, gzipped or raw).

use std::path::Path;

use super::Shape;
use super::{read_maybe_gz, DataError, Images, Split};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// The file stems of a split, images then labels.
pub fn files(split: Split) -> (&'static str, &'static str) {
    match split {
        Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
}

/// Expected number of images of a split.
pub fn expected_count(split: Split) -> usize {
    match split {
        Split::Train => 60_000,
        Split::Test => 10_000,
    }
}

/// Reads and validates one split from `dir`.
pub fn load(dir: &Path, split: Split) -> Result<Images, DataError> {
    let (images_name, labels_name) = files(split);
    let (ipath, ibytes) = read_maybe_gz(dir, images_name)?;
    let (lpath, lbytes) = read_maybe_gz(dir, labels_name)?;
    let expected = expected_count(split);
    let pixels = parse_images(&ipath, &ibytes, expected)?;
    let labels = parse_labels(&lpath, &lbytes, expected)?;
    Ok(Images {
        shape: Shape::new(1, 28, 28),
        pixels,
        labels,
    })
}

fn header(path: &Path, bytes: &[u8], words: usize) -> Result<Vec<u32>, DataError> {
    if bytes.len() < 4 * words {
        return Err(DataError::file(
            path,
            format!("truncated IDX header ({} bytes)", bytes.len()),
        ));
    }
    Ok(bytes[..4 * words]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Validates an IDX3 image file (magic, count, 28×28, size) and returns its pixels.
pub fn parse_images(path: &Path, bytes: &[u8], expected: usize) -> Result<Vec<u8>, DataError> {
    let h = header(path, bytes, 4)?;
    if h[0] != IMAGES_MAGIC {
        return Err(DataError::file(
            path,
            format!(
                "bad magic number {:#010x} (expected {IMAGES_MAGIC:#010x} for IDX images)",
                h[0]
            ),
        ));
    }
    let (n, rows, cols) = (h[1] as usize, h[2] as usize, h[3] as usize);
    if (rows, cols) != (28, 28) {
        return Err(DataError::file(
            path,
            format!("images are {rows}×{cols}, expected 28×28"),
        ));
    }
    if n != expected {
        return Err(DataError::file(
            path,
            format!("holds {n} images, expected {expected}"),
        ));
    }
    let body = &bytes[16..];
    if body.len() != n * 784 {
        return Err(DataError::file(
            path,
            format!(
                "truncated or padded: {} pixel bytes, expected {}",
                body.len(),
                n * 784
            ),
        ));
    }
    Ok(body.to_vec())
}

/// Validates an IDX1 label file (magic, count, size, labels 0..9) and returns its labels.
pub fn parse_labels(path: &Path, bytes: &[u8], expected: usize) -> Result<Vec<u8>, DataError> {
    let h = header(path, bytes, 2)?;
    if h[0] != LABELS_MAGIC {
        return Err(DataError::file(
            path,
            format!(
                "bad magic number {:#010x} (expected {LABELS_MAGIC:#010x} for IDX labels)",
                h[0]
            ),
        ));
    }
    let n = h[1] as usize;
    if n != expected {
        return Err(DataError::file(
            path,
            format!("holds {n} labels, expected {expected}"),
        ));
    }
    let body = &bytes[8..];
    if body.len() != n {
        return Err(DataError::file(
            path,
            format!(
                "truncated or padded: {} label bytes, expected {n}",
                body.len()
            ),
        ));
    }
    if let Some(i) = body.iter().position(|&l| l > 9) {
        return Err(DataError::file(
            path,
            format!("label {i} is {}, not a digit", body[i]),
        ));
    }
    Ok(body.to_vec())
}
