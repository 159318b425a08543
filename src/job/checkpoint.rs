//! Per-rank checkpoints: for each rank, an append-only JSON-lines file `rank-R.jsonl` of the
//! images and runs it finished, flushed to disk after every run, so that a killed job loses
//! nothing it finished. The first line binds the file to one job configuration (model contents,
//! dataset, packing). Rank 0 writes them all, as it decrypts each rank's runs.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::JobError;
use crate::he::infer::ImageRecord;
use crate::he::packing::Evaluation;

/// The checkpoint format version.
pub const VERSION: u32 = 1;

/// One line of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Entry {
    Header {
        version: u32,
        fingerprint: String,
        /// [`crate::he::plan::Plan::digest`] of the plan its runs were made under (absent in
        /// checkpoints written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<String>,
    },
    Image {
        rank: usize,
        record: ImageRecord,
    },
    Run {
        rank: usize,
        images: Vec<usize>,
        evaluation: Evaluation,
    },
}

/// The open checkpoints of every rank of a job.
pub struct Checkpoints {
    files: Vec<Checkpoint>,
}

impl Checkpoints {
    /// Opens `dir/rank-R.jsonl` for ranks `0..ranks` and for any other rank whose file is
    /// there (from an earlier run with more ranks), for a job with `fingerprint` planned as
    /// `plan` (a digest); returns every entry already written.
    pub fn open(
        dir: &Path,
        ranks: usize,
        fingerprint: &str,
        plan: &str,
    ) -> Result<(Self, Vec<Entry>), JobError> {
        let listed = std::fs::read_dir(dir).into_iter().flatten().flatten();
        let highest = listed
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("rank-")?
                    .strip_suffix(".jsonl")?
                    .parse::<usize>()
                    .ok()
            })
            .max();
        let count = ranks.max(highest.map_or(0, |h| h + 1));
        let mut files = Vec::with_capacity(count);
        let mut entries = Vec::new();
        for rank in 0..count {
            let (file, found) = Checkpoint::open(dir, rank, fingerprint, plan)?;
            files.push(file);
            entries.extend(found);
        }
        Ok((Self { files }, entries))
    }

    /// Appends entries to `rank`'s checkpoint and forces them to disk.
    pub fn append(&mut self, rank: usize, entries: &[Entry]) -> Result<(), JobError> {
        self.files[rank].append(entries)
    }
}

/// An open checkpoint of one rank.
struct Checkpoint {
    path: PathBuf,
    file: File,
}

impl Checkpoint {
    /// Opens (or starts) `dir/rank-R.jsonl` for a job with `fingerprint` and `plan`; returns
    /// the entries already there. A torn last line (a kill during a write) is dropped; a file
    /// from a different job, or from the same job under another plan, is refused.
    fn open(
        dir: &Path,
        rank: usize,
        fingerprint: &str,
        plan: &str,
    ) -> Result<(Self, Vec<Entry>), JobError> {
        let path = dir.join(format!("rank-{rank}.jsonl"));
        let fail = |reason: String| JobError::Checkpoint {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        let mut entries = Vec::new();
        let mut good_bytes = 0u64;
        if path.exists() {
            let reader = BufReader::new(File::open(&path).map_err(|e| fail(e.to_string()))?);
            for line in reader.split(b'\n') {
                let line = line.map_err(|e| fail(e.to_string()))?;
                match serde_json::from_slice::<Entry>(&line) {
                    Ok(entry) => {
                        good_bytes += line.len() as u64 + 1;
                        entries.push(entry);
                    }
                    Err(_) => break, // torn tail: everything after it is dropped
                }
            }
            match entries.first() {
                Some(Entry::Header {
                    version,
                    fingerprint: f,
                    plan: p,
                }) if *version == VERSION && f == fingerprint => match p {
                    Some(p) if p == plan => {}
                    Some(_) => {
                        return Err(fail(
                            "its runs were made under another plan (CKKS parameters, rotations or \
                             operation counts differ: another hejob build or scale_bits); finish \
                             it with the build that began it, or remove it"
                                .into(),
                        ))
                    }
                    None => log::warn!(
                        "{}: written before checkpoints recorded their plan; its runs may come \
                         from another build",
                        path.display()
                    ),
                },
                Some(Entry::Header { .. }) => {
                    return Err(fail(
                        "it belongs to a different job configuration (model, dataset or packing differ); \
                         remove it or choose another checkpoint_dir"
                            .into(),
                    ))
                }
                _ if entries.is_empty() && good_bytes == 0 => {}
                _ => return Err(fail("not an hejob checkpoint (no header line)".into())),
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| fail(e.to_string()))?;
        file.set_len(good_bytes).map_err(|e| fail(e.to_string()))?;
        let mut cp = Self { path, file };
        if entries.is_empty() {
            let header = Entry::Header {
                version: VERSION,
                fingerprint: fingerprint.to_string(),
                plan: Some(plan.to_string()),
            };
            cp.append(std::slice::from_ref(&header))?;
        } else {
            entries.remove(0);
            log::info!(
                "{}: resuming after {} finished entries",
                cp.path.display(),
                entries.len()
            );
        }
        Ok((cp, entries))
    }

    /// Appends entries and forces them to disk.
    fn append(&mut self, entries: &[Entry]) -> Result<(), JobError> {
        let fail = |e: std::io::Error| JobError::Checkpoint {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let mut buf = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut buf, e).map_err(|e| fail(e.into()))?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf).map_err(fail)?;
        self.file.sync_data().map_err(fail)
    }
}

/// The fingerprint of what determines each image's result: the model file's bytes, the
/// dataset, the packing and a fixed scale.
pub fn fingerprint(
    model: &Path,
    dataset: &str,
    packing: &str,
    scale_bits: Option<u32>,
) -> Result<String, JobError> {
    let md5 = crate::data::checksums::md5_file(model).map_err(|e| JobError::Checkpoint {
        path: model.to_path_buf(),
        reason: e.to_string(),
    })?;
    let scale = scale_bits.map_or(String::new(), |s| format!(";scale_bits={s}"));
    Ok(format!(
        "model-md5={md5};dataset={dataset};packing={packing}{scale}"
    ))
}
