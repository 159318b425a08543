//! Per-rank checkpoints: for each rank, an append-only JSON-lines file `rank-R.jsonl` of the
//! images and runs it finished, flushed to disk after every run, so that a killed job loses
//! nothing it finished. The first line binds the file to one job configuration (model contents,
//! dataset, packing). Rank 0 writes them all, as it decrypts each rank's runs.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
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
    /// Private mode: a run's encrypted outputs, in a file of their own ([`super::sealed`]).
    Sealed {
        rank: usize,
        images: Vec<usize>,
        file: PathBuf,
        /// The MD5 of the file (the line's own sum is `md5`).
        file_md5: String,
    },
}

/// A checkpoint line as written: the entry and the MD5 of the entry's JSON, so that a line
/// damaged or edited after it was written is found. Lines of files written before lines carried
/// a sum have none, and are checked against the job only (`resume`).
#[derive(Serialize, Deserialize)]
struct Line {
    #[serde(flatten)]
    entry: Entry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    md5: Option<String>,
}

impl Line {
    fn new(entry: &Entry) -> Result<Self, serde_json::Error> {
        Ok(Self {
            md5: Some(sum(entry)?),
            entry: entry.clone(),
        })
    }

    /// The entry of a line of bytes, if it parses and its sum (where it has one) holds.
    fn parse(bytes: &[u8]) -> Result<Entry, String> {
        let line: Line = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        match &line.md5 {
            Some(want) if sum(&line.entry).map_err(|e| e.to_string())? != *want => {
                Err("its checksum does not match its contents".into())
            }
            _ => Ok(line.entry),
        }
    }
}

/// The MD5 of an entry's JSON.
fn sum(entry: &Entry) -> Result<String, serde_json::Error> {
    use md5::{Digest, Md5};
    Ok(crate::data::checksums::hex(&Md5::digest(
        serde_json::to_vec(entry)?,
    )))
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
    /// the entries already there. A damaged line (one that does not parse or whose checksum
    /// fails, or a last line cut short by a kill) is reported with its number and dropped, and
    /// only it: the file is rewritten with the good lines. A file from a different job, or from
    /// the same job under another plan, is refused.
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
        let mut good = Vec::new();
        let mut dropped = false;
        if path.exists() {
            let bytes = std::fs::read(&path).map_err(|e| fail(e.to_string()))?;
            let mut lines = bytes.split(|&b| b == b'\n').enumerate().peekable();
            while let Some((number, line)) = lines.next() {
                let last = lines.peek().is_none();
                if last && line.is_empty() {
                    break; // the newline that ends the file
                }
                match Line::parse(line) {
                    Err(why) if number == 0 => {
                        return Err(fail(format!(
                            "its header line is damaged ({why}); remove the checkpoint to start \
                             the job over"
                        )))
                    }
                    Ok(entry) if !last => {
                        good.extend_from_slice(line);
                        good.push(b'\n');
                        entries.push(entry);
                    }
                    Ok(_) => {
                        log::warn!(
                            "{}: line {} has no newline (a write was cut short); it is dropped and its work done again",
                            path.display(),
                            number + 1
                        );
                        dropped = true;
                    }
                    Err(why) => {
                        log::warn!(
                            "{}: line {} is damaged ({why}); it is dropped and its work done again",
                            path.display(),
                            number + 1
                        );
                        dropped = true;
                    }
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
                None if !dropped => {}
                _ => return Err(fail("not an hejob checkpoint (no header line)".into())),
            }
        }
        if dropped {
            // only the good lines stay, swapped in whole so that a kill now loses nothing
            let tmp = dir.join(format!("rank-{rank}.jsonl.tmp"));
            std::fs::write(&tmp, &good)
                .and_then(|()| File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| fail(e.to_string()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| fail(e.to_string()))?;
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
            let line = Line::new(e).map_err(|e| fail(e.into()))?;
            serde_json::to_writer(&mut buf, &line).map_err(|e| fail(e.into()))?;
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

/// What a job takes over from its checkpoints.
#[derive(Debug, Default)]
pub struct Resumed {
    /// Image records by test-set index, with the rank that evaluated each.
    pub done: BTreeMap<usize, (usize, ImageRecord)>,
    /// Runs (their images and what they cost).
    pub runs: Vec<(Vec<usize>, Evaluation)>,
}

/// The finished work among `entries` that a job over `indices` can trust: image records inside
/// the range that pass `check` (the runner checks labels, predictions and plain logits against
/// the dataset and the model), each image once; and runs whose images all have such records,
/// each run once. Every other record or run is reported and left out, so that its images are
/// evaluated again; records of images outside the range are kept in the file, unused.
pub fn resume(
    entries: Vec<Entry>,
    indices: &std::ops::Range<usize>,
    check: impl Fn(&ImageRecord) -> Result<(), String> + Sync,
) -> Resumed {
    use rayon::prelude::*;
    let mut resumed = Resumed::default();
    let (mut images, mut runs, mut outside) = (Vec::new(), Vec::new(), (0, 0));
    for e in entries {
        match e {
            Entry::Image { rank, record } if indices.contains(&record.index) => {
                images.push((rank, record))
            }
            Entry::Image { .. } => outside.0 += 1,
            Entry::Run { images, .. } if !images.iter().all(|i| indices.contains(i)) => {
                outside.1 += 1
            }
            Entry::Run {
                images, evaluation, ..
            } => runs.push((images, evaluation)),
            Entry::Header { .. } | Entry::Sealed { .. } => {}
        }
    }
    if outside != (0, 0) {
        log::warn!(
            "{} record(s) and {} run(s) of the checkpoint are not (wholly) among this job's \
             images {indices:?}: not used",
            outside.0,
            outside.1
        );
    }
    let verdicts: Vec<Result<(), String>> = images.par_iter().map(|(_, r)| check(r)).collect();
    for ((rank, record), verdict) in images.into_iter().zip(verdicts) {
        let index = record.index;
        if let Err(why) = verdict {
            log::warn!(
                "checkpoint record of image {index} is not trusted ({why}): evaluated again"
            );
        } else if let std::collections::btree_map::Entry::Vacant(slot) = resumed.done.entry(index) {
            slot.insert((rank, record));
        } else {
            log::warn!("checkpoint holds image {index} twice: the first record is kept");
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (images, evaluation) in runs {
        if images.is_empty() || !images.iter().all(|i| resumed.done.contains_key(i)) {
            log::warn!(
                "checkpoint run of images {images:?} lacks trusted records of its images: ignored"
            );
        } else if !seen.insert(images.clone()) {
            log::warn!("checkpoint holds the run of images {images:?} twice: counted once");
        } else {
            resumed.runs.push((images, evaluation));
        }
    }
    // a trusted record whose run is missing is evaluated again, so that counts and latency
    // come from runs that exist
    let covered: std::collections::BTreeSet<usize> = resumed
        .runs
        .iter()
        .flat_map(|(i, _)| i.iter().copied())
        .collect();
    resumed.done.retain(|i, _| {
        let keep = covered.contains(i);
        if !keep {
            log::warn!("checkpoint record of image {i} has no run: evaluated again");
        }
        keep
    });
    resumed
}
