//! HDF5 files read first in a child process: the HDF5 C library (1.10.8) can crash with a
//! segmentation fault on a damaged file (inside `H5HG_read`, on a corrupt global heap), so a
//! command reads every HDF5 file it was handed once in a child `hejob probe-hdf5` before it
//! reads it itself. A child that dies of a signal turns into one clear error naming the file;
//! a child that merely fails leaves the message to the parent's own read.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::cli::ProbeKind;
use crate::data::DataError;
use crate::Error;

/// Reads `path` as `kind` in a child process first, if it exists; an error if the child was
/// killed by a signal (the file crashes the HDF5 library).
pub fn probe(kind: ProbeKind, path: &Path) -> Result<(), Error> {
    if !path.is_file() {
        return Ok(());
    }
    let exe = std::env::current_exe()
        .map_err(|e| DataError::file(path, format!("cannot start a probe: {e}")))?;
    let status = Command::new(exe)
        .args(["probe-hdf5", kind.name()])
        .arg(path)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| DataError::file(path, format!("cannot start a probe: {e}")))?;
    match status.signal() {
        Some(signal) => Err(DataError::file(
            path,
            format!("damaged: the HDF5 library crashed reading it (signal {signal})"),
        )
        .into()),
        None => Ok(()),
    }
}

/// The child's side: reads `path` as `kind` and exits; its outcome is only whether it lived.
pub fn read(kind: ProbeKind, path: &Path) -> Result<(), Error> {
    match kind {
        ProbeKind::Model => {
            crate::model::file::load(path)?;
        }
        ProbeKind::Result => {
            crate::report::read::read(path)?;
        }
        ProbeKind::Output => {
            let _ = crate::job::results::owner(path);
            crate::model::file::check_output(path, &[])?;
        }
    }
    Ok(())
}
