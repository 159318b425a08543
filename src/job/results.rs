//! The result file: one HDF5 file per job (layout in `docs/RESULT_FORMAT.md`), written under a
//! temporary name and renamed, so a reader never sees half a file.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use hdf5::types::VarLenUnicode;

use super::JobError;
use crate::he::counts::OpTally;
use crate::he::infer::ImageRecord;
use crate::he::packing::Evaluation;
use crate::he::plan::Plan;
use crate::model::file::write_str;
use crate::model::Model;

/// The value of the root `format` attribute and the layout version.
pub const FORMAT: &str = "hejob-result";
pub const VERSION: i64 = 1;

/// Which job made a result and how it ran: what every result file records, encrypted or not.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRun {
    pub job_text: String,
    /// The job's identity (`checkpoint::fingerprint`): model contents, dataset, packing, scale
    /// (and in private mode the keys and inputs).
    pub fingerprint: String,
    pub model_path: PathBuf,
    pub ranks: usize,
    pub threads: usize,
    /// Runs each rank kept in flight.
    pub runs_in_flight: usize,
    pub start: String,
    pub end: String,
}

impl JobRun {
    /// Writes the attributes `job_toml`, `fingerprint`, `model`, `ranks`, `threads_per_rank`,
    /// `runs_in_flight`, `start_time`, `end_time`, and the writing build's `hejob_version`
    /// and `hejob_build`.
    pub(crate) fn write_attrs(&self, f: &hdf5::File) -> hdf5::Result<()> {
        for (name, value) in [
            ("job_toml", self.job_text.as_str()),
            ("fingerprint", &self.fingerprint),
            ("model", &self.model_path.display().to_string()),
            ("start_time", &self.start),
            ("end_time", &self.end),
            ("hejob_version", env!("CARGO_PKG_VERSION")),
            ("hejob_build", env!("HEJOB_BUILD")),
        ] {
            write_str(f, name, value)?;
        }
        for (name, value) in [
            ("ranks", self.ranks),
            ("threads_per_rank", self.threads),
            ("runs_in_flight", self.runs_in_flight),
        ] {
            f.new_attr::<u64>()
                .create(name)?
                .write_scalar(&(value as u64))?;
        }
        Ok(())
    }

    /// Reads what [`JobRun::write_attrs`] wrote.
    pub(crate) fn read_attrs(f: &hdf5::File) -> Result<Self, String> {
        use crate::model::file::{read_str, read_u64};
        let string = |name: &str| read_str(f, name).map_err(|e| e.to_string());
        let number = |name: &str| read_u64(f, name).map(|v| v as usize);
        Ok(Self {
            job_text: string("job_toml")?,
            fingerprint: string("fingerprint")?,
            model_path: PathBuf::from(string("model")?),
            ranks: number("ranks")?,
            threads: number("threads_per_rank")?,
            runs_in_flight: number("runs_in_flight")?,
            start: string("start_time")?,
            end: string("end_time")?,
        })
    }
}

/// Everything a result file holds.
pub struct JobResult<'a> {
    pub job: &'a JobRun,
    pub model: &'a Model,
    pub plan: &'a Plan,
    /// Every image once, in test-set order.
    pub records: &'a [(usize, ImageRecord)],
    /// Every run (one per image for channel-wise, one per batch for batch-axis), in order.
    pub runs: &'a [Evaluation],
}

/// The job an existing result file belongs to.
#[derive(Debug, PartialEq)]
pub enum Owner {
    /// Its `fingerprint` attribute.
    Fingerprint(String),
    /// A private-mode result still encrypted (`super::sealed`): its `fingerprint` attribute.
    Sealed(String),
    /// A file written before results recorded their fingerprint: its model path and packing.
    Older { model: String, packing: String },
}

/// Whose results an existing file at `path` holds, or what the file is when it is not an hejob
/// result file at all.
pub fn owner(path: &Path) -> Result<Owner, String> {
    use crate::model::file::{open_as, read_str};
    if let Ok(file) = open_as(path, super::sealed::FORMAT) {
        let fingerprint = read_str(&file, "fingerprint").map_err(|e| e.to_string())?;
        return Ok(Owner::Sealed(fingerprint));
    }
    let file = open_as(path, FORMAT).map_err(|what| format!("it is {what}"))?;
    Ok(match read_str(&file, "fingerprint") {
        Ok(fingerprint) => Owner::Fingerprint(fingerprint),
        Err(_) => Owner::Older {
            model: read_str(&file, "model").unwrap_or_default(),
            packing: read_str(&file, "packing").unwrap_or_default(),
        },
    })
}

/// Creates the HDF5 file `path` as `path.tmp`, fills it with `fill` and renames it, so that a
/// reader never sees half a file; nothing is left behind on failure.
pub(crate) fn write_file(
    path: &Path,
    fill: impl FnOnce(&hdf5::File) -> Result<(), String>,
) -> Result<(), JobError> {
    let fail = |reason: String| JobError::Results {
        path: path.to_path_buf(),
        reason,
    };
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let written = hdf5::File::create(&tmp)
        .map_err(|e| e.to_string())
        .and_then(|f| fill(&f));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| fail(e.to_string()))
}

/// The summary numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub images: usize,
    pub plain_accuracy: f64,
    pub he_accuracy: f64,
    pub agreement: f64,
    pub max_abs_error: f64,
    pub mean_latency_s: f64,
    pub amortized_latency_s: f64,
    pub totals: OpTally,
    pub per_inference: OpTally,
}

impl JobResult<'_> {
    /// Accuracy, agreement, latency and counts. Latency: channel-wise, the mean per image;
    /// batch-axis, the mean of runs 2..k (run 1 if there is only one), as the paper reports.
    pub fn summary(&self) -> Summary {
        let n = self.records.len().max(1) as f64;
        let frac = |f: &dyn Fn(&ImageRecord) -> bool| {
            self.records.iter().filter(|(_, r)| f(r)).count() as f64 / n
        };
        let totals: OpTally = self.runs.iter().map(|r| r.totals).sum();
        let timed: Vec<f64> = match self.runs.len() {
            0 => vec![0.0],
            1 => vec![self.runs[0].seconds],
            _ if self.plan.images_per_run > 1 => self.runs[1..].iter().map(|r| r.seconds).collect(),
            _ => self.runs.iter().map(|r| r.seconds).collect(),
        };
        let mean_latency_s = timed.iter().sum::<f64>() / timed.len() as f64;
        let runs = self.runs.len().max(1) as u64;
        Summary {
            images: self.records.len(),
            plain_accuracy: frac(&|r| r.plain_pred == r.label as usize),
            he_accuracy: frac(&|r| r.he_pred == r.label as usize),
            agreement: frac(&|r| r.he_pred == r.plain_pred),
            max_abs_error: self
                .records
                .iter()
                .map(|(_, r)| r.max_abs_error)
                .fold(0.0, f64::max),
            mean_latency_s,
            amortized_latency_s: self.runs.iter().map(|r| r.seconds).sum::<f64>() / n,
            totals,
            per_inference: totals.divided_by(runs),
        }
    }

    /// Writes the file to `path` through `path.tmp`.
    pub fn write(&self, path: &Path) -> Result<Summary, JobError> {
        let summary = self.summary();
        write_file(path, |f| {
            self.write_to(f, &summary).map_err(|e| e.to_string())
        })?;
        Ok(summary)
    }

    fn write_to(&self, f: &hdf5::File, s: &Summary) -> hdf5::Result<()> {
        let p = &self.plan.params;
        write_str(f, "format", FORMAT)?;
        f.new_attr::<i64>()
            .create("format_version")?
            .write_scalar(&VERSION)?;
        self.job.write_attrs(f)?;
        write_str(f, "packing", &self.plan.packing.to_string())?;
        f.new_attr::<u64>()
            .create("poly_modulus_degree")?
            .write_scalar(&p.poly_modulus_degree)?;
        f.new_attr_builder()
            .with_data(&p.coeff_modulus_bits[..])
            .create("coeff_modulus_bits")?;
        f.new_attr::<u32>()
            .create("scale_bits")?
            .write_scalar(&p.scale_bits)?;
        f.new_attr::<i64>()
            .create("security_level")?
            .write_scalar(&128)?;
        let prov = f.create_group("provenance")?;
        for (k, v) in &self.model.provenance {
            write_str(&prov, k, v)?;
        }

        let r: Vec<&ImageRecord> = self.records.iter().map(|(_, r)| r).collect();
        let classes = r.first().map_or(0, |x| x.plain_logits.len());
        let col = |name: &str, v: Vec<i64>| {
            f.new_dataset_builder()
                .with_data(&v[..])
                .create(name)
                .map(drop)
        };
        col("index", r.iter().map(|x| x.index as i64).collect())?;
        col("label", r.iter().map(|x| x.label as i64).collect())?;
        col(
            "plain_pred",
            r.iter().map(|x| x.plain_pred as i64).collect(),
        )?;
        col("he_pred", r.iter().map(|x| x.he_pred as i64).collect())?;
        col(
            "rank",
            self.records.iter().map(|(rank, _)| *rank as i64).collect(),
        )?;
        let fcol = |name: &str, v: Vec<f64>| {
            f.new_dataset_builder()
                .with_data(&v[..])
                .create(name)
                .map(drop)
        };
        fcol("max_abs_error", r.iter().map(|x| x.max_abs_error).collect())?;
        fcol("latency_s", r.iter().map(|x| x.latency_s).collect())?;
        for (name, get) in [
            (
                "plain_logits",
                (|x: &ImageRecord| x.plain_logits.clone()) as fn(&ImageRecord) -> Vec<f64>,
            ),
            ("he_logits", |x: &ImageRecord| x.he_logits.clone()),
        ] {
            let flat: Vec<f64> = r.iter().flat_map(|x| get(x)).collect();
            let arr = ndarray::Array2::from_shape_vec((r.len(), classes), flat)
                .map_err(|e| hdf5::Error::from(e.to_string()))?;
            f.new_dataset_builder().with_data(&arr).create(name)?;
        }

        let g = f.create_group("summary")?;
        let scalar = |name: &str, v: f64| g.new_attr::<f64>().create(name)?.write_scalar(&v);
        scalar("plain_accuracy", s.plain_accuracy)?;
        scalar("he_accuracy", s.he_accuracy)?;
        scalar("agreement", s.agreement)?;
        scalar("max_abs_error", s.max_abs_error)?;
        scalar("mean_latency_s", s.mean_latency_s)?;
        scalar("amortized_latency_s", s.amortized_latency_s)?;
        g.new_attr::<u64>()
            .create("images")?
            .write_scalar(&(s.images as u64))?;
        g.new_attr::<u64>()
            .create("runs")?
            .write_scalar(&(self.runs.len() as u64))?;
        for ((name, total), per) in OpTally::NAMES
            .iter()
            .zip(s.totals.values())
            .zip(s.per_inference.values())
        {
            g.new_attr::<u64>().create(*name)?.write_scalar(&total)?;
            g.new_attr::<u64>()
                .create(format!("{name}_per_inference").as_str())?
                .write_scalar(&per)?;
        }

        // per-stage breakdown, summed over runs
        if let Some(first) = self.runs.first() {
            let st = f.create_group("stages")?;
            let names: Vec<VarLenUnicode> = first
                .stages
                .iter()
                .map(|x| {
                    VarLenUnicode::from_str(&x.name).map_err(|e| hdf5::Error::from(e.to_string()))
                })
                .collect::<hdf5::Result<_>>()?;
            st.new_dataset_builder()
                .with_data(&names[..])
                .create("name")?;
            let k = first.stages.len();
            let mut seconds = vec![0.0; k];
            let mut counts = vec![OpTally::default(); k];
            for run in self.runs {
                for (i, stage) in run.stages.iter().enumerate().take(k) {
                    seconds[i] += stage.seconds;
                    counts[i] += stage.counts;
                }
            }
            st.new_dataset_builder()
                .with_data(&seconds[..])
                .create("seconds")?;
            for (j, name) in OpTally::NAMES.iter().enumerate() {
                let v: Vec<u64> = counts.iter().map(|c| c.values()[j]).collect();
                st.new_dataset_builder().with_data(&v[..]).create(*name)?;
            }
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil-from-days (H. Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
