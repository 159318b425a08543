//! Job files: flat TOML, every key documented in `jobs/README.md`, unknown keys refused, and
//! every field checked before any key is generated.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::JobError;
use crate::data::{self, Dataset};
use crate::he::cost::{Flight, OpCosts};
use crate::he::packing::PackingId;
use crate::place::writable_dir;
use crate::private::inputs::Inputs;
use crate::private::Manifest;

/// A job as written in its TOML file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// The model file (HDF5).
    pub model: PathBuf,
    /// `mnist` or `cifar10`; must be the model's dataset.
    pub dataset: Dataset,
    /// Dataset folder (else `$HEJOB_DATASETS`, else `data/datasets`).
    pub data_dir: Option<PathBuf>,
    /// The packing, by name: `channel`, `channel-fast`, `channel-fast-x2|x4|x8|x16` (each also
    /// with `-im2col`) or `batch`.
    pub packing: PackingId,
    /// A fixed CKKS scale in bits, with the compact modulus chain (default: the planner's
    /// search from 40 down to 30 bits; see `he::plan::plan`).
    pub scale_bits: Option<u32>,
    /// Number of test images (default: all from `offset` on).
    pub limit: Option<usize>,
    /// First test image.
    #[serde(default)]
    pub offset: usize,
    /// Threads per rank (default: `$SLURM_CPUS_PER_TASK`, else the node's cores shared equally
    /// among the ranks on it).
    pub threads: Option<usize>,
    /// Runs each rank evaluates at once, sharing its keys and stored weights, each on its share
    /// of the rank's threads: a number, or `"auto"` (the default): the number the cost model
    /// predicts to finish soonest within `memory_gb`.
    #[serde(default)]
    pub runs_in_flight: Flight,
    /// Each rank's memory budget in GB (default: the Slurm allocation, else the cgroup limit,
    /// else the machine's memory, shared among the node's ranks).
    pub memory_gb: Option<f64>,
    /// Operation costs for the cost model, as `hejob bench-ops --json` writes them (default:
    /// the built-in table).
    pub costs: Option<PathBuf>,
    /// Private mode: the encrypted inputs file (`hejob encrypt`) whose images the job
    /// evaluates instead of test images it encrypts itself; needs `keys`. The result file then
    /// holds encrypted logits, for `hejob decrypt` on the key owner's machine.
    pub inputs: Option<PathBuf>,
    /// Private mode: the key folder the inputs were encrypted for. Only its public and
    /// evaluation keys are read; its secret key may be absent (and should be).
    pub keys: Option<PathBuf>,
    /// The result file (HDF5).
    pub output: PathBuf,
    /// Folder for the per-rank checkpoints (default: `<output>.checkpoint/`).
    pub checkpoint_dir: Option<PathBuf>,
    /// `error`, `warn`, `info`, `debug` or `trace` (default `info`; `RUST_LOG` overrides).
    pub log_level: Option<String>,
}

/// Command-line overrides of job fields.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    pub output: Option<PathBuf>,
    pub threads: Option<usize>,
    pub runs_in_flight: Option<Flight>,
}

/// A checked job, ready to run.
#[derive(Clone, Debug)]
pub struct Job {
    pub file: JobFile,
    /// The job file's text, kept in the result file.
    pub text: String,
    pub path: PathBuf,
    pub data_dir: PathBuf,
    pub threads: usize,
    /// Each rank's memory budget in bytes, and where the figure comes from.
    pub memory: (u64, String),
    /// The operation costs the cost model uses.
    pub costs: OpCosts,
    pub checkpoint_dir: PathBuf,
    /// What fixes each image's result (`checkpoint::fingerprint`, and in private mode the key
    /// id and the inputs' images); the result file records it.
    pub fingerprint: String,
}

/// What a job evaluates, by mode.
pub enum Work {
    /// Measuring mode: test images encrypted on the cluster under keys made for the job,
    /// decrypted by rank 0 and compared with the plaintext network.
    Measure {
        images: data::Images,
        /// The test images to evaluate, in order.
        indices: std::ops::Range<usize>,
    },
    /// Private mode: the key owner's encrypted inputs.
    Private(Box<Private>),
}

/// A private-mode job's inputs and key folder, checked against each other and the model.
pub struct Private {
    pub inputs: Inputs,
    pub keys: PathBuf,
    pub manifest: Manifest,
}

/// The most threads a rank may be given: more than any node has cores.
pub const MAX_THREADS: usize = 4096;

impl JobFile {
    /// Reads and parses a job file; a syntax error or unknown key names the file and the key.
    pub fn read(path: &Path) -> Result<(Self, String), JobError> {
        let fail = |reason: String| JobError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let file = toml::from_str(&text).map_err(|e| fail(one_line(&e.to_string())))?;
        Ok((file, text))
    }

    /// The log level, checked.
    pub fn log_level(&self) -> &str {
        self.log_level.as_deref().unwrap_or("info")
    }
}

impl Job {
    /// Applies overrides and checks everything that can be checked without keys: the model
    /// loads and matches the dataset, the images exist, the packing is known, the output and
    /// checkpoint folders are writable. `ranks_on_node` ranks share this node's cores.
    pub fn prepare(
        path: &Path,
        overrides: &Overrides,
        ranks_on_node: usize,
    ) -> Result<(Self, crate::model::Model, Work), JobError> {
        let (mut file, text) = JobFile::read(path)?;
        let fail = |reason: String| JobError::Config {
            path: path.to_path_buf(),
            reason,
        };
        file.limit = overrides.limit.or(file.limit);
        file.offset = overrides.offset.unwrap_or(file.offset);
        file.threads = overrides.threads.or(file.threads);
        file.runs_in_flight = overrides.runs_in_flight.unwrap_or(file.runs_in_flight);
        if let Some(o) = &overrides.output {
            file.output = o.clone();
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&file.log_level()) {
            return Err(fail(format!(
                "log_level {:?} is not error, warn, info, debug or trace",
                file.log_level()
            )));
        }
        if let Some(s) = file.scale_bits {
            crate::he::plan::check_scale_bits(s).map_err(|e| fail(e.to_string()))?;
        }
        let threads = match file.threads {
            Some(t) if !(1..=MAX_THREADS).contains(&t) => {
                return Err(fail(format!(
                    "threads {t} is not between 1 and {MAX_THREADS}"
                )))
            }
            Some(t) => t,
            None => std::env::var("SLURM_CPUS_PER_TASK")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| {
                    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                    (cores / ranks_on_node.max(1)).max(1)
                }),
        };
        if let Flight::Fixed(f) = file.runs_in_flight {
            if f > threads {
                return Err(fail(format!(
                    "runs_in_flight {f} is more than the rank's {threads} threads"
                )));
            }
        }
        let memory = match file.memory_gb {
            Some(g) if g.is_finite() && g > 0.0 => ((g * 1e9) as u64, "memory_gb".to_string()),
            Some(g) => return Err(fail(format!("memory_gb {g} is not a positive number"))),
            None => crate::he::cost::rank_memory(ranks_on_node),
        };
        let costs = match &file.costs {
            Some(c) => OpCosts::read(c).map_err(|e| fail(format!("costs: {e}")))?,
            None => OpCosts::built_in(),
        };
        if !file.model.exists() {
            return Err(fail(format!(
                "model {} does not exist",
                file.model.display()
            )));
        }
        let model = crate::model::file::load(&file.model)?;
        if model.dataset != file.dataset {
            return Err(fail(format!(
                "dataset is {}, but model {} is a {} model",
                file.dataset,
                file.model.display(),
                model.dataset
            )));
        }
        let data_dir = data::resolve_dir(file.data_dir.as_deref());
        let mut fingerprint = super::checkpoint::fingerprint(
            &file.model,
            file.dataset.name(),
            file.packing.name(),
            file.scale_bits,
        )?;
        let work = match (&file.inputs, &file.keys) {
            (None, None) => {
                let images = file.dataset.load_test(&data_dir)?;
                let end = match file.limit {
                    Some(l) => file.offset.checked_add(l),
                    None => Some(images.len()),
                };
                let Some(end) = end.filter(|&e| e <= images.len() && file.offset < e) else {
                    return Err(fail(format!(
                        "offset {} and limit {} do not name images within the {} test images of {}",
                        file.offset,
                        file.limit.map_or("(all)".to_string(), |l| l.to_string()),
                        images.len(),
                        file.dataset
                    )));
                };
                Work::Measure {
                    images,
                    indices: file.offset..end,
                }
            }
            (Some(inputs), Some(keys)) => {
                let private = Private::open(&file, inputs, keys).map_err(fail)?;
                fingerprint += &private.fingerprint();
                Work::Private(Box::new(private))
            }
            _ => {
                return Err(fail(
                    "inputs and keys go together: a private-mode job names both".into(),
                ))
            }
        };
        let checkpoint_dir = file
            .checkpoint_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.checkpoint", file.output.display())));
        writable_dir(crate::place::folder(&file.output)).map_err(|e| {
            fail(format!(
                "output {} is not writable: {e}",
                file.output.display()
            ))
        })?;
        writable_dir(&checkpoint_dir).map_err(|e| {
            fail(format!(
                "checkpoint_dir {} is not writable: {e}",
                checkpoint_dir.display()
            ))
        })?;
        // a private-mode job writes (and may replace) only its own encrypted result, never its
        // result once decrypted
        let this = match file.inputs {
            Some(_) => super::results::Owner::Sealed(fingerprint.clone()),
            None => super::results::Owner::Fingerprint(fingerprint.clone()),
        };
        let older = super::results::Owner::Older {
            model: file.model.display().to_string(),
            packing: file.packing.name().to_string(),
        };
        let mut own: Vec<(&Path, &str)> = vec![(&file.model, "model"), (path, "job file")];
        if let Some(i) = &file.inputs {
            own.push((i, "inputs file"));
        }
        let accepted = match file.inputs {
            Some(_) => [&this, &this],
            None => [&this, &older],
        };
        check_output(&file.output, accepted, &own)
            .map_err(|reason| fail(format!("output {}: {reason}", file.output.display())))?;
        let job = Job {
            file,
            text,
            path: path.to_path_buf(),
            data_dir,
            threads,
            memory,
            costs,
            checkpoint_dir,
            fingerprint,
        };
        Ok((job, model, work))
    }
}

impl Private {
    /// Opens the inputs of a private-mode job `file` and the manifest of its key folder, and
    /// checks that they belong together and to the job's model, dataset, packing and scale.
    fn open(file: &JobFile, inputs: &Path, keys: &Path) -> Result<Self, String> {
        if file.limit.is_some() || file.offset != 0 {
            return Err(
                "limit and offset choose test images to encrypt here, and a \
                        private-mode job evaluates the images of its inputs file: leave them out"
                    .into(),
            );
        }
        let manifest = Manifest::read(keys).map_err(|e| e.to_string())?;
        let md5 = data::checksums::md5_file(&file.model).map_err(|e| e.to_string())?;
        let refuse = |made_for: String, job: String| {
            Err(format!(
                "keys {} were made for {made_for}, and the job names {job}",
                keys.display()
            ))
        };
        if manifest.model_md5 != md5 {
            return refuse(
                format!("another model (md5 {})", manifest.model_md5),
                format!("{} (md5 {md5})", file.model.display()),
            );
        }
        if manifest.packing != file.packing {
            return refuse(
                format!("packing {}", manifest.packing),
                format!("packing {}", file.packing),
            );
        }
        if manifest.dataset != file.dataset {
            return refuse(
                format!("dataset {}", manifest.dataset),
                format!("dataset {}", file.dataset),
            );
        }
        if manifest.scale_bits != file.scale_bits {
            let bits = |s: Option<u32>| {
                s.map_or("the planner's scale".into(), |b| format!("scale_bits {b}"))
            };
            return refuse(bits(manifest.scale_bits), bits(file.scale_bits));
        }
        let inputs = Inputs::open(inputs).map_err(|e| e.to_string())?;
        inputs.check(&manifest).map_err(|e| e.to_string())?;
        Ok(Self {
            inputs,
            keys: keys.to_path_buf(),
            manifest,
        })
    }

    /// What the job's fingerprint adds in private mode: the key pair and the inputs' images.
    fn fingerprint(&self) -> String {
        use md5::{Digest, Md5};
        let h = &self.inputs.head;
        let runs = serde_json::json!([h.index, h.run_images]).to_string();
        format!(
            ";key-id={};inputs={}",
            self.manifest.key_id,
            data::checksums::hex(&Md5::digest(runs.as_bytes()))
        )
    }
}

/// Whether this job may write its result file at `output`: a new file, or a result file of this
/// very job (`this`: its fingerprint, or for an older file its model path and packing), never a
/// folder, one of the job's own `inputs` (path, what it is) or any other existing file, which
/// stays as it is.
fn check_output(
    output: &Path,
    this: [&super::results::Owner; 2],
    inputs: &[(&Path, &str)],
) -> Result<(), String> {
    use super::results::Owner;
    if output.is_dir() {
        return Err("is a folder; name a file".into());
    }
    if let Some((_, what)) = inputs
        .iter()
        .find(|(p, _)| crate::place::same_file(p, output))
    {
        return Err(format!("is the job's own {what}; name another file"));
    }
    if !output.exists() {
        return Ok(());
    }
    match super::results::owner(output) {
        Ok(owner) if this.contains(&&owner) => Ok(()),
        Ok(Owner::Fingerprint(other)) if this.contains(&&Owner::Sealed(other.clone())) => Err(
            "holds this job's results, decrypted (hejob decrypt); it is left as it is: name \
             another file"
                .into(),
        ),
        Ok(Owner::Fingerprint(other) | Owner::Sealed(other)) => Err(format!(
            "holds the results of another job ({other}); it is left as it is: remove it or \
             name another file"
        )),
        Ok(Owner::Older { model, packing }) => Err(format!(
            "holds the results of another job (model {model}, packing {packing}); it is left \
             as it is: remove it or name another file"
        )),
        Err(what) => Err(format!(
            "exists and is not an hejob result file ({what}); it is left as it is: name another \
             file"
        )),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every job shipped in `jobs/` and `jobs/paper/` parses, names a known packing and a valid
    /// scale, matches the dataset of its model where that model is shipped, and writes a result
    /// file of its own.
    #[test]
    fn shipped_jobs_are_valid_and_write_distinct_files() {
        let mut outputs = std::collections::HashMap::new();
        let mut count = 0;
        for dir in ["jobs", "jobs/paper"] {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "toml") {
                    continue;
                }
                let (job, _) = JobFile::read(&path).unwrap_or_else(|e| panic!("{e}"));
                if let Some(s) = job.scale_bits {
                    crate::he::plan::check_scale_bits(s).unwrap();
                }
                if job.model.exists() {
                    let model = crate::model::file::load(&job.model).unwrap();
                    assert_eq!(model.dataset, job.dataset, "{}", path.display());
                }
                if let Some(other) = outputs.insert(job.output.clone(), path.clone()) {
                    panic!(
                        "{} and {} both write {}",
                        other.display(),
                        path.display(),
                        job.output.display()
                    );
                }
                count += 1;
            }
        }
        assert!(count >= 60, "only {count} job files");
    }
}
