//! Turns result files into the paper's tables (Markdown and CSV), a per-layer breakdown, and
//! the accuracy–latency plot of its Fig. 5.1 (SVG and PNG).

pub mod evidence;
mod figure;
pub mod paper;
pub mod read;
mod table;

use std::path::{Path, PathBuf};

use read::Entry;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("result file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("writing {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// One result file with the names and paper figures it is reported under.
#[derive(Clone, Debug)]
pub struct Row {
    pub entry: Entry,
    /// The paper's name of the network (`3layer-CNN-Pruned-R1`), else the file's stem.
    pub network: String,
    pub activation: String,
    /// The paper's plain and encrypted accuracy for this network and packing, compared only
    /// when our weights are trained.
    pub paper_plain: Option<f64>,
    pub paper_he: Option<f64>,
    /// The paper's measurement with this packing (counts and latency).
    pub paper: Option<paper::Measured>,
}

impl Row {
    fn new(entry: Entry) -> Self {
        let activation = entry.activation.clone().unwrap_or_else(|| "?".into());
        let (mut network, figures) = match (&entry.architecture, entry.conv2) {
            (Some(a), Some(c)) => (paper::network_name(a, c), paper::figures(a, &activation, c)),
            _ => (stem(&entry.path), None),
        };
        if entry.random_weights {
            network += " (random weights)";
        }
        let paper = figures.and_then(|f| f.packing(entry.packing));
        let trained = !entry.random_weights;
        Self {
            network,
            activation,
            paper_plain: figures.filter(|_| trained).map(|f| f.plain_accuracy),
            paper_he: paper.filter(|_| trained).map(|m| m.he_accuracy),
            paper,
            entry,
        }
    }

    /// The dataset heading this row belongs under.
    pub fn dataset(&self) -> String {
        self.entry
            .architecture
            .as_deref()
            .map_or("other".into(), paper::dataset_name)
    }

    /// The fraction of conv2 pruned away, when the architecture is known.
    pub fn pruning_ratio(&self) -> Option<f64> {
        paper::pruning_ratio(self.entry.architecture.as_deref()?, self.entry.conv2?)
    }
}

fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into(),
    )
}

/// Reads `files` and writes `out/report.md`, `out/report.csv`, `out/layers.csv`,
/// `out/fig-5-1.svg` and `out/fig-5-1.png`; returns the paths written.
pub fn report(files: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>, ReportError> {
    if out.exists() && !out.is_dir() {
        return Err(ReportError::Write {
            path: out.to_path_buf(),
            reason: "is a file, not a folder; name a folder for the report".into(),
        });
    }
    let mut rows: Vec<Row> = files
        .iter()
        .map(|f| read::read(f).map(Row::new))
        .collect::<Result<_, _>>()?;
    rows.sort_by(|a, b| {
        (
            a.dataset(),
            &a.activation,
            b.entry.conv2,
            a.entry.packing,
            &a.entry.path,
        )
            .cmp(&(
                b.dataset(),
                &b.activation,
                a.entry.conv2,
                b.entry.packing,
                &b.entry.path,
            ))
    });
    std::fs::create_dir_all(out).map_err(|e| ReportError::Write {
        path: out.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut written = Vec::new();
    for (name, text) in [
        ("report.md", table::markdown(&rows)),
        ("report.csv", table::csv(&rows)),
        ("layers.csv", table::layers_csv(&rows)),
    ] {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| ReportError::Write {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        written.push(path);
    }
    written.extend(figure::draw(&rows, out)?);
    Ok(written)
}
