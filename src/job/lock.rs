//! One job per output at a time: an advisory lock (`flock`) on `<output>.lock`, taken by rank 0
//! before any key is made and held until the result file is written. The kernel drops the lock
//! when its holder dies, so a crash leaves no stale lock; the file itself stays, naming the last
//! holder.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use super::JobError;

/// The held lock of one output; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct OutputLock {
    _file: File,
}

impl OutputLock {
    /// Takes the lock of `output`, or fails at once naming the job that holds it.
    pub fn take(output: &Path) -> Result<Self, JobError> {
        let path = PathBuf::from(format!("{}.lock", output.display()));
        let fail = |reason: String| JobError::Results {
            path: path.clone(),
            reason,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| fail(e.to_string()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(JobError::OutputInUse {
                    output: output.to_path_buf(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(fail(e.to_string())),
        }
        let me = format!("pid {} on host {}", std::process::id(), host());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|e| fail(e.to_string()))?;
        log::debug!("locked {} ({me})", path.display());
        Ok(Self { _file: file })
    }
}

/// This machine's name (Linux), for the message another job gets.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}
