//! Reads a result file (docs/RESULT_FORMAT.md) back: which network and packing it measured,
//! its summary, and its per-stage breakdown.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;

use super::ReportError;
use crate::he::counts::OpTally;
use crate::he::packing::PackingId;
use crate::job::results::{Summary, FORMAT, VERSION};
use crate::model::file::{bounded_dataset, read_str, scalar, R};
use crate::seal::CkksParams;

/// One stage (a layer, or a convolution with the layers streamed with it), summed over runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub name: String,
    pub seconds: f64,
    pub counts: OpTally,
}

/// An image whose encrypted prediction is not the plain one.
#[derive(Clone, Debug, PartialEq)]
pub struct Disagreement {
    pub index: i64,
    pub label: i64,
    pub plain_pred: i64,
    pub he_pred: i64,
    /// The gap between its two largest plain logits.
    pub margin: f64,
    /// Its largest |HE − plain| logit difference.
    pub error: f64,
    /// Its largest |plain logit|.
    pub largest_logit: f64,
}

/// What one result file holds that a report uses.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub path: PathBuf,
    pub packing: PackingId,
    /// The model file the job read, as its job named it.
    pub model: PathBuf,
    /// The job's fixed `scale_bits`, if it set one (else the planner searched).
    pub fixed_scale: Option<u32>,
    /// The CKKS parameters it ran under.
    pub params: CkksParams,
    /// The hejob version and the commit of the build that wrote it (`None` before files
    /// recorded it).
    pub version: String,
    pub build: Option<String>,
    /// The MD5 of the model file the job read, from its fingerprint (`None` before files
    /// recorded one).
    pub model_md5: Option<String>,
    pub disagreements: Vec<Disagreement>,
    /// The model's architecture (`mnist-3layer`, `cifar10-4layer`), from its provenance;
    /// `None` for a model file without one.
    pub architecture: Option<String>,
    pub activation: Option<String>,
    /// conv2's width, which names the pruning step of the paper's networks.
    pub conv2: Option<usize>,
    /// Whether the weights are random (provenance `weights` says so), not trained.
    pub random_weights: bool,
    pub ranks: u64,
    pub threads: u64,
    pub runs: u64,
    pub summary: Summary,
    pub stages: Vec<Stage>,
}

/// Reads `path`, refusing anything but a complete result file of this layout version.
pub fn read(path: &Path) -> Result<Entry, ReportError> {
    let fail = |reason: String| ReportError::Read {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_file() {
        return Err(fail("no such file".into()));
    }
    let file =
        hdf5::File::open(path).map_err(|e| fail(format!("not a readable HDF5 file ({e})")))?;
    match read_str(&file, "format") {
        Ok(f) if f == FORMAT => {}
        Ok(f) if f == crate::job::sealed::FORMAT => {
            return Err(fail(
                "holds encrypted logits (a private-mode job): decrypt it first, where the secret \
                 key is, with `hejob decrypt --keys DIR --result FILE`"
                    .into(),
            ))
        }
        _ => {
            return Err(fail(format!(
                "not an hejob result file (no format = \"{FORMAT}\")"
            )))
        }
    }
    let version: i64 = scalar(&file, "format_version").map_err(fail)?;
    if version != VERSION {
        return Err(fail(format!(
            "result layout version {version}; this hejob reads version {VERSION} (re-run the job)"
        )));
    }
    read_entry(path, &file).map_err(fail)
}

fn read_entry(path: &Path, f: &hdf5::File) -> R<Entry> {
    let prov = f
        .group("provenance")
        .map_err(|_| "missing group 'provenance'".to_string())?;
    let provenance = |key: &str| read_str(&prov, key).ok();
    let s = f
        .group("summary")
        .map_err(|_| "missing group 'summary'".to_string())?;
    let totals = counts(|name| scalar::<u64>(&s, name))?;
    let per_inference = counts(|name| scalar::<u64>(&s, &format!("{name}_per_inference")))?;
    let summary = Summary {
        images: scalar::<u64>(&s, "images")? as usize,
        plain_accuracy: scalar(&s, "plain_accuracy")?,
        he_accuracy: scalar(&s, "he_accuracy")?,
        agreement: scalar(&s, "agreement")?,
        max_abs_error: scalar(&s, "max_abs_error")?,
        mean_latency_s: scalar(&s, "mean_latency_s")?,
        amortized_latency_s: scalar(&s, "amortized_latency_s")?,
        totals,
        per_inference,
    };
    let columns = Columns::read(f)?;
    check_summary(&columns, &summary)?;
    let job: toml::Table = read_str(f, "job_toml")?
        .parse()
        .map_err(|e| format!("attribute 'job_toml' is not a job file ({e})"))?;
    let fixed_scale = match job.get("scale_bits") {
        None => None,
        Some(v) => Some(
            v.as_integer()
                .and_then(|s| u32::try_from(s).ok())
                .ok_or("attribute 'job_toml' has a scale_bits that is not a bit count")?,
        ),
    };
    let params = CkksParams {
        poly_modulus_degree: scalar(f, "poly_modulus_degree")?,
        coeff_modulus_bits: f
            .attr("coeff_modulus_bits")
            .and_then(|a| a.read_raw::<i32>())
            .map_err(|_| "unreadable attribute 'coeff_modulus_bits'".to_string())?,
        scale_bits: scalar(f, "scale_bits")?,
    };
    Ok(Entry {
        path: path.to_path_buf(),
        packing: read_str(f, "packing")?
            .parse()
            .map_err(|e: crate::he::HeError| e.to_string())?,
        model: PathBuf::from(read_str(f, "model")?),
        fixed_scale,
        params,
        version: read_str(f, "hejob_version")?,
        build: read_str(f, "hejob_build").ok(),
        model_md5: read_str(f, "fingerprint").ok().and_then(|fp| {
            fp.split(';')
                .find_map(|part| part.strip_prefix("model-md5="))
                .map(String::from)
        }),
        disagreements: disagreements(f, &columns)?,
        architecture: provenance("architecture"),
        activation: provenance("activation"),
        conv2: provenance("conv2_channels").and_then(|c| c.parse().ok()),
        random_weights: provenance("weights").is_some_and(|w| w.starts_with("random")),
        ranks: scalar(f, "ranks")?,
        threads: scalar(f, "threads_per_rank")?,
        runs: scalar(&s, "runs")?,
        summary,
        stages: stages(f)?,
    })
}

/// The per-image datasets that the summary and the disagreements come from.
struct Columns {
    labels: Vec<i64>,
    plain: Vec<i64>,
    he: Vec<i64>,
    errors: Vec<f64>,
}

impl Columns {
    fn read(f: &hdf5::File) -> R<Self> {
        Ok(Self {
            labels: ints(f, "label")?,
            plain: ints(f, "plain_pred")?,
            he: ints(f, "he_pred")?,
            errors: bounded_dataset(f, "max_abs_error", "max_abs_error")?
                .read_raw::<f64>()
                .map_err(|_| "unreadable dataset 'max_abs_error'".to_string())?,
        })
    }
}

/// A per-image dataset of integers.
fn ints(f: &hdf5::File, name: &str) -> R<Vec<i64>> {
    bounded_dataset(f, name, name)?
        .read_raw::<i64>()
        .map_err(|_| format!("unreadable dataset '{name}'"))
}

/// Refuses a summary that holds a NaN, an infinite or a negative number, a share above 1, or
/// figures that the per-image datasets contradict (image count, accuracies, agreement, largest
/// logit error), naming the field.
fn check_summary(c: &Columns, s: &Summary) -> R<()> {
    let fields = [
        ("plain_accuracy", s.plain_accuracy, true),
        ("he_accuracy", s.he_accuracy, true),
        ("agreement", s.agreement, true),
        ("max_abs_error", s.max_abs_error, false),
        ("mean_latency_s", s.mean_latency_s, false),
        ("amortized_latency_s", s.amortized_latency_s, false),
    ];
    for (name, v, share) in fields {
        if !v.is_finite() || v < 0.0 || (share && v > 1.0) {
            return Err(format!(
                "summary field '{name}' is {v}, not a possible value"
            ));
        }
    }
    let (labels, plain, he, errors) = (&c.labels, &c.plain, &c.he, &c.errors);
    let n = labels.len();
    if [plain.len(), he.len(), errors.len()] != [n; 3] || s.images != n {
        return Err(format!(
            "summary field 'images' is {}, but the per-image datasets hold {n}, {}, {} and {} entries",
            s.images,
            plain.len(),
            he.len(),
            errors.len()
        ));
    }
    let share = |agree: &dyn Fn(usize) -> bool| {
        (0..n).filter(|&i| agree(i)).count() as f64 / n.max(1) as f64
    };
    let largest = errors.iter().copied().fold(0.0, f64::max);
    for (name, stated, data) in [
        (
            "plain_accuracy",
            s.plain_accuracy,
            share(&|i| plain[i] == labels[i]),
        ),
        ("he_accuracy", s.he_accuracy, share(&|i| he[i] == labels[i])),
        ("agreement", s.agreement, share(&|i| he[i] == plain[i])),
        ("max_abs_error", s.max_abs_error, largest),
    ] {
        if (stated - data).abs() > 1e-12 * data.abs().max(1.0) {
            return Err(format!(
                "summary field '{name}' is {stated}, but the per-image data give {data}"
            ));
        }
    }
    Ok(())
}

/// The images whose HE prediction differs from the plain one (`c`, already checked against
/// the summary to be of one length), with their margins and errors.
fn disagreements(f: &hdf5::File, c: &Columns) -> R<Vec<Disagreement>> {
    let (plain, he) = (&c.plain, &c.he);
    let differ: Vec<usize> = (0..plain.len()).filter(|&i| plain[i] != he[i]).collect();
    if differ.is_empty() {
        return Ok(Vec::new());
    }
    let index = ints(f, "index")?;
    let logits = bounded_dataset(f, "plain_logits", "plain_logits")?
        .read_2d::<f64>()
        .map_err(|_| "unreadable dataset 'plain_logits'".to_string())?;
    if [index.len(), logits.nrows()] != [plain.len(); 2] {
        return Err("the per-image datasets differ in length".into());
    }
    Ok(differ
        .into_iter()
        .map(|i| {
            let row: Vec<f64> = logits.row(i).to_vec();
            Disagreement {
                index: index[i],
                label: c.labels[i],
                plain_pred: plain[i],
                he_pred: he[i],
                margin: crate::model::plain::margin(&row),
                error: c.errors[i],
                largest_logit: crate::model::plain::largest_abs(&row),
            }
        })
        .collect())
}

/// A tally read one counted operation at a time.
fn counts(read: impl Fn(&str) -> R<u64>) -> R<OpTally> {
    let values = OpTally::NAMES
        .iter()
        .map(|name| read(name))
        .collect::<R<Vec<u64>>>()?;
    OpTally::from_values(&values).ok_or_else(|| "operation counts do not match".to_string())
}

fn stages(f: &hdf5::File) -> R<Vec<Stage>> {
    let Ok(g) = f.group("stages") else {
        return Ok(Vec::new()); // a job with no runs has no stages
    };
    // each dataset's declared size is checked before anything is allocated for it
    let open = |name: &str| bounded_dataset(&g, name, &format!("stages/{name}"));
    let unreadable = |name: &str| format!("unreadable dataset 'stages/{name}'");
    let column =
        |name: &str| -> R<Vec<u64>> { open(name)?.read_raw::<u64>().map_err(|_| unreadable(name)) };
    let names = open("name")?
        .read_raw::<VarLenUnicode>()
        .map_err(|_| unreadable("name"))?;
    let seconds = open("seconds")?
        .read_raw::<f64>()
        .map_err(|_| unreadable("seconds"))?;
    let columns = OpTally::NAMES
        .iter()
        .map(|name| column(name))
        .collect::<R<Vec<Vec<u64>>>>()?;
    if seconds.len() != names.len() || columns.iter().any(|c| c.len() != names.len()) {
        return Err("the datasets of group 'stages' differ in length".into());
    }
    Ok(names
        .iter()
        .enumerate()
        .map(|(i, name)| Stage {
            name: name.as_str().to_string(),
            seconds: seconds[i],
            counts: OpTally::from_values(&columns.iter().map(|c| c[i]).collect::<Vec<_>>())
                .unwrap_or_default(),
        })
        .collect())
}
