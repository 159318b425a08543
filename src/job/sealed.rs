//! Private mode's result file: every run's encrypted outputs as the cluster leaves them, with
//! what `hejob decrypt` needs to turn it into a measuring-mode result file on the key owner's
//! machine; and the runs a killed private-mode job keeps in its checkpoint folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdf5::types::VarLenArray;
use md5::{Digest, Md5};

use super::checkpoint::Entry;
use super::results::JobRun;
use super::JobError;
use crate::data::checksums::hex;
use crate::he::infer::RunOutput;
use crate::he::plan::Plan;
use crate::model::file::{open_as, read_str, read_u64, write_str};

/// The `format` of a result file that holds encrypted outputs.
pub const FORMAT: &str = "hejob-sealed-result";
const VERSION: u64 = 1;

/// One finished run of a private-mode job: its images and its serialized [`RunOutput`] in a
/// file of its own in the checkpoint folder, named by the run's first image.
#[derive(Clone, Debug)]
pub struct SealedRun {
    /// The rank that evaluated it.
    pub rank: usize,
    pub images: Vec<usize>,
    pub path: PathBuf,
    pub md5: String,
}

impl SealedRun {
    /// Writes `out` to `dir/run-<first image>.bin` (through a temporary file, forced to disk
    /// before it takes the name, so that the checkpoint line that follows names a whole file).
    pub fn save(dir: &Path, rank: usize, out: &RunOutput) -> Result<Self, JobError> {
        let path = dir.join(format!("run-{}.bin", out.images[0]));
        let fail = |e: &dyn ToString| JobError::Checkpoint {
            path: path.clone(),
            reason: e.to_string(),
        };
        let bytes = out.to_bytes()?;
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let tmp = path.with_extension("bin.tmp");
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| fail(&e))?;
        Ok(Self {
            rank,
            images: out.images.clone(),
            md5: hex(&Md5::digest(&bytes)),
            path,
        })
    }

    /// The checkpoint line of this run.
    pub fn entry(&self) -> Entry {
        Entry::Sealed {
            rank: self.rank,
            images: self.images.clone(),
            file: self.path.clone(),
            file_md5: self.md5.clone(),
        }
    }

    /// The run's bytes, checked against its MD5.
    fn read(&self) -> Result<Vec<u8>, String> {
        let bytes = std::fs::read(&self.path).map_err(|e| e.to_string())?;
        if hex(&Md5::digest(&bytes)) != self.md5 {
            return Err("its checksum does not match its contents".into());
        }
        Ok(bytes)
    }
}

/// The finished runs among checkpoint `entries` that a private-mode job over the uploaded
/// `runs` can trust, by first image: each run of the inputs once, its file whole. Every other
/// one is reported and left out, so that it is evaluated again.
pub fn resume(entries: Vec<Entry>, runs: &[Vec<usize>]) -> BTreeMap<usize, SealedRun> {
    let mut done = BTreeMap::new();
    for e in entries {
        let Entry::Sealed {
            rank,
            images,
            file,
            file_md5: md5,
        } = e
        else {
            continue;
        };
        let run = SealedRun {
            rank,
            images,
            path: file,
            md5,
        };
        if !runs.contains(&run.images) {
            log::warn!(
                "checkpoint run of images {:?} is not a run of the inputs: not used",
                run.images
            );
        } else if let Err(why) = run.read() {
            log::warn!("{}: {why}; its run is evaluated again", run.path.display());
        } else if let std::collections::btree_map::Entry::Vacant(slot) = done.entry(run.images[0]) {
            slot.insert(run);
        } else {
            log::warn!("checkpoint holds the run of images {:?} twice", run.images);
        }
    }
    done
}

/// Everything a private-mode result file holds.
pub struct SealedResult<'a> {
    pub job: &'a JobRun,
    pub plan: &'a Plan,
    /// The key pair the outputs are encrypted under.
    pub key_id: &'a str,
    /// Every run, in the order of the inputs file.
    pub runs: &'a [SealedRun],
}

impl SealedResult<'_> {
    /// Writes the file to `path` through `path.tmp`.
    pub fn write(&self, path: &Path) -> Result<(), JobError> {
        super::results::write_file(path, |f| self.write_to(f))
    }

    fn write_to(&self, f: &hdf5::File) -> Result<(), String> {
        let e = |e: hdf5::Error| e.to_string();
        let plan = serde_json::to_string(self.plan).map_err(|e| e.to_string())?;
        self.job.write_attrs(f).map_err(e)?;
        for (name, value) in [
            ("format", FORMAT),
            ("packing", &self.plan.packing.to_string()),
            ("key_id", self.key_id),
            ("plan", &plan),
            ("plan_digest", &self.plan.digest()),
        ] {
            write_str(f, name, value).map_err(e)?;
        }
        f.new_attr::<u64>()
            .create("format_version")
            .and_then(|a| a.write_scalar(&VERSION))
            .map_err(e)?;
        let ranks: Vec<u64> = self.runs.iter().map(|r| r.rank as u64).collect();
        f.new_dataset_builder()
            .with_data(&ranks[..])
            .create("rank")
            .map_err(e)?;
        let outputs = f
            .new_dataset::<VarLenArray<u8>>()
            .shape(self.runs.len())
            .create("outputs")
            .map_err(e)?;
        for (r, run) in self.runs.iter().enumerate() {
            let bytes = run
                .read()
                .map_err(|why| format!("{}: {why}", run.path.display()))?;
            outputs
                .write_slice(&[VarLenArray::from_slice(&bytes)], r..r + 1)
                .map_err(e)?;
        }
        Ok(())
    }
}

/// A private-mode result file, opened on the key owner's machine.
pub struct Sealed {
    pub job: JobRun,
    pub key_id: String,
    /// [`Plan::digest`] of the plan the runs were evaluated under.
    pub plan_digest: String,
    /// The rank that evaluated each run.
    pub run_ranks: Vec<usize>,
    outputs: hdf5::Dataset,
}

impl Sealed {
    /// Opens `path`; what it is, in words, when it is not a private-mode result file.
    pub fn open(path: &Path) -> Result<Self, String> {
        let f = open_as(path, FORMAT).map_err(|what| format!("it is {what}"))?;
        let version = read_u64(&f, "format_version")?;
        if version != VERSION {
            return Err(format!(
                "encrypted result layout version {version}; this hejob reads version {VERSION}"
            ));
        }
        let string = |name: &str| read_str(&f, name).map_err(|e| e.to_string());
        Ok(Self {
            job: JobRun::read_attrs(&f)?,
            key_id: string("key_id")?,
            plan_digest: string("plan_digest")?,
            run_ranks: f
                .dataset("rank")
                .and_then(|d| d.read_raw::<u64>())
                .map_err(|_| "unreadable dataset 'rank'".to_string())?
                .into_iter()
                .map(|r| r as usize)
                .collect(),
            outputs: f
                .dataset("outputs")
                .map_err(|_| "missing dataset 'outputs'".to_string())?,
        })
    }

    /// Every run's serialized [`RunOutput`], in order.
    pub fn outputs(&self) -> Result<Vec<Vec<u8>>, String> {
        let rows: Vec<VarLenArray<u8>> = self
            .outputs
            .read_raw()
            .map_err(|e| format!("dataset 'outputs': {e}"))?;
        Ok(rows.iter().map(|r| r.as_slice().to_vec()).collect())
    }
}
