//! The report's tables: one row per result file (Markdown and CSV) with the paper's figures
//! beside ours, the grid in the shape of the paper's Tables 5.9/5.10, and the per-layer breakdown.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::paper::COUNTED;
use super::Row;
use crate::he::counts::OpTally;
use crate::he::packing::PackingId;

/// How a number is printed.
#[derive(Clone, Copy)]
enum Kind {
    Percent,
    Count,
    Seconds,
    Error,
}

impl Kind {
    fn show(self, x: f64) -> String {
        match self {
            Kind::Percent => format!("{x:.2}"),
            Kind::Count => thousands(x.round() as u64),
            Kind::Seconds if x >= 100.0 => format!("{x:.1}"),
            Kind::Seconds if x >= 1.0 => format!("{x:.2}"),
            Kind::Seconds => format!("{x:.3}"),
            Kind::Error => format!("{x:.1e}"),
        }
    }
}

/// One measured quantity of a row, with the paper's figure where the configuration matches.
struct Metric {
    title: &'static str,
    csv: &'static str,
    ours: f64,
    paper: Option<f64>,
    /// Whether the paper reports this quantity (so the results table has a column for it).
    in_paper: bool,
    kind: Kind,
}

impl Metric {
    /// The paper's figure, or a dash where it has none for this configuration.
    fn paper_cell(&self) -> String {
        self.paper.map_or("–".into(), |p| self.kind.show(p))
    }

    /// Ours over the paper's, where the paper has a non-zero figure.
    fn ratio(&self) -> Option<f64> {
        self.paper.filter(|&p| p != 0.0).map(|p| self.ours / p)
    }

    /// `ours [paper]`, or `ours` alone.
    fn cell(&self) -> String {
        match self.paper {
            Some(p) => format!("{} [{}]", self.kind.show(self.ours), self.kind.show(p)),
            None => self.kind.show(self.ours),
        }
    }
}

/// What a row reports, in column order: accuracies, errors, the paper's five counts per
/// inference, latency.
fn metrics(row: &Row) -> Vec<Metric> {
    let s = &row.entry.summary;
    let per: BTreeMap<&str, u64> = OpTally::NAMES
        .iter()
        .copied()
        .zip(s.per_inference.values())
        .collect();
    let mut m = vec![
        Metric {
            title: "plain acc. %",
            csv: "plain_accuracy_pct",
            ours: s.plain_accuracy * 100.0,
            paper: row.paper_plain,
            in_paper: true,
            kind: Kind::Percent,
        },
        Metric {
            title: "HE acc. %",
            csv: "he_accuracy_pct",
            ours: s.he_accuracy * 100.0,
            paper: row.paper_he,
            in_paper: true,
            kind: Kind::Percent,
        },
        Metric {
            title: "agreement %",
            csv: "agreement_pct",
            ours: s.agreement * 100.0,
            paper: None,
            in_paper: false,
            kind: Kind::Percent,
        },
        Metric {
            title: "max logit error",
            csv: "max_abs_error",
            ours: s.max_abs_error,
            paper: None,
            in_paper: false,
            kind: Kind::Error,
        },
    ];
    for (i, (name, title)) in COUNTED.iter().enumerate() {
        m.push(Metric {
            title,
            csv: name,
            ours: per[name] as f64,
            paper: row.paper.map(|p| p.counts[i]),
            in_paper: true,
            kind: Kind::Count,
        });
    }
    m.push(Metric {
        title: "latency s",
        csv: "latency_s",
        ours: s.mean_latency_s,
        paper: row.paper.map(|p| p.latency_s),
        in_paper: true,
        kind: Kind::Seconds,
    });
    m
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn md_row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

fn md_header(cells: &[String]) -> String {
    let rule: Vec<String> = cells.iter().map(|_| "---".to_string()).collect();
    md_row(cells) + &md_row(&rule)
}

/// The whole Markdown report.
pub fn markdown(rows: &[Row]) -> String {
    let mut md = String::from("# hejob report\n\n");
    md += "Ours, then the paper's figure (in its own column, or in brackets in the grid) where \
           it evaluated the same network and packing (Tables 5.9 and 5.10; 72 threads of 4× \
           Xeon E7-8880 v3). Counts are per \
           inference: per image channel-wise, per run batch-axis. Latency: channel-wise, mean \
           per image; batch-axis, mean per run of runs 2..k. Accuracies are compared only for \
           trained weights.\n\n";
    md += "## Results\n\n";
    md += &results_table(rows);
    md += "\n## Images whose encrypted prediction differs from the plain one\n\n";
    md += &disagreements(rows);
    md += "\n## Which build made each file\n\n";
    md += &builds(rows);
    md += "\n## In the shape of the paper's tables\n\n";
    md += &grids(rows);
    md += "\n## Fig. 5.1: accuracy against latency\n\n![Fig. 5.1](fig-5-1.svg)\n\n";
    md += "\n## Per layer\n\n";
    for row in rows {
        md += &layers(row);
    }
    md
}

/// Every image whose HE prediction is not the plain one, with its plain margin, its logit
/// error and what explains it.
fn disagreements(rows: &[Row]) -> String {
    let images: usize = rows.iter().map(|r| r.entry.summary.images).sum();
    let listed: usize = rows.iter().map(|r| r.entry.disagreements.len()).sum();
    if listed == 0 {
        return format!(
            "None: in all {} files, every one of the {} encrypted predictions equals the plain \
             one.\n",
            rows.len(),
            thousands(images as u64)
        );
    }
    let mut md = format!(
        "{listed} of {} images, each explained where the margin between its two largest plain \
         logits is within twice its logit error, or where a plain logit is beyond the range \
         the modulus chain decrypts.\n\n",
        thousands(images as u64)
    );
    md += &md_header(
        &[
            "file",
            "image",
            "label",
            "plain",
            "HE",
            "plain margin",
            "logit error",
            "why",
        ]
        .map(String::from),
    );
    for row in rows {
        let range = row.entry.params.logit_range();
        for d in &row.entry.disagreements {
            md += &md_row(&[
                row.entry.path.display().to_string(),
                d.index.to_string(),
                d.label.to_string(),
                d.plain_pred.to_string(),
                d.he_pred.to_string(),
                format!("{:.2e}", d.margin),
                format!("{:.2e}", d.error),
                super::evidence::explain(d, range),
            ]);
        }
    }
    md
}

/// Each file's hejob version and build, and whether this build still plans what it measured.
fn builds(rows: &[Row]) -> String {
    let mut md = String::from(
        "A file is evidence for this build while this build plans its model to the same \
         parameters and operation counts (planned again from the model file its job named).\n\n",
    );
    md += &md_header(&["file", "hejob", "build", "this build's plan"].map(String::from));
    for row in rows {
        let e = &row.entry;
        let standing = match super::evidence::standing(e) {
            super::evidence::Standing::Current => "the same".to_string(),
            super::evidence::Standing::Differs(what) => format!("differs: {what}"),
            super::evidence::Standing::Unchecked(why) => format!("not checked: {why}"),
        };
        md += &md_row(&[
            e.path.display().to_string(),
            e.version.clone(),
            e.build.clone().unwrap_or_else(|| "not recorded".into()),
            standing,
        ]);
    }
    md
}

fn results_table(rows: &[Row]) -> String {
    let mut head: Vec<String> = [
        "network",
        "activation",
        "packing",
        "N",
        "ranks × threads",
        "images",
    ]
    .map(String::from)
    .to_vec();
    if let Some(first) = rows.first() {
        for m in metrics(first) {
            head.push(m.title.to_string());
            if m.in_paper {
                head.push("paper".into());
            }
        }
    }
    head.push("latency ÷ paper".into());
    let mut md = md_header(&head);
    for row in rows {
        let e = &row.entry;
        let mut cells = vec![
            row.network.clone(),
            row.activation.clone(),
            e.packing.to_string(),
            e.params.poly_modulus_degree.to_string(),
            format!("{} × {}", e.ranks, e.threads),
            thousands(e.summary.images as u64),
        ];
        let metrics = metrics(row);
        for m in &metrics {
            cells.push(m.kind.show(m.ours));
            if m.in_paper {
                cells.push(m.paper_cell());
            }
        }
        // the last metric is latency
        let ratio = metrics.last().and_then(Metric::ratio);
        cells.push(ratio.map_or("–".into(), |r| format!("{r:.2}×")));
        md += &md_row(&cells);
    }
    md
}

/// Per dataset: activations down, networks × packings across, as the paper lays them out.
fn grids(rows: &[Row]) -> String {
    let mut md = String::new();
    let mut datasets: Vec<String> = rows.iter().map(Row::dataset).collect();
    datasets.sort();
    datasets.dedup();
    for dataset in datasets {
        let of: Vec<&Row> = rows.iter().filter(|r| r.dataset() == dataset).collect();
        let mut columns: Vec<(Option<usize>, String, PackingId)> = of
            .iter()
            .map(|r| (r.entry.conv2, r.network.clone(), r.entry.packing))
            .collect();
        columns.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)).then(a.1.cmp(&b.1)));
        columns.dedup();
        let mut activations: Vec<&str> = of.iter().map(|r| r.activation.as_str()).collect();
        activations.sort();
        activations.dedup();
        let titles: Vec<&str> = metrics(of[0]).iter().map(|m| m.title).collect();
        let _ = writeln!(md, "### {dataset}\n");
        let mut head = vec!["activation".to_string(), String::new()];
        head.extend(columns.iter().map(|(_, n, p)| format!("{n} {p}")));
        md += &md_header(&head);
        for act in activations {
            // each column's metrics, from its file with the most images
            let cells: Vec<Option<Vec<Metric>>> = columns
                .iter()
                .map(|(c, n, p)| {
                    of.iter()
                        .filter(|r| r.activation == act && r.entry.conv2 == *c)
                        .filter(|r| &r.network == n && r.entry.packing == *p)
                        .max_by_key(|r| r.entry.summary.images)
                        .map(|r| metrics(r))
                })
                .collect();
            for (k, title) in titles.iter().enumerate() {
                let first = if k == 0 { act } else { "" };
                let mut line = vec![first.to_string(), title.to_string()];
                line.extend(
                    cells
                        .iter()
                        .map(|m| m.as_ref().map_or("–".into(), |m| m[k].cell())),
                );
                md += &md_row(&line);
            }
        }
        md += "\n";
    }
    md
}

/// The operations worth a column in a breakdown: those some stage performed.
fn used_ops(stages: &[super::read::Stage]) -> Vec<usize> {
    (0..OpTally::NAMES.len())
        .filter(|&j| stages.iter().any(|s| s.counts.values()[j] > 0))
        .collect()
}

/// Time and operations per layer of one result file, per run.
fn layers(row: &Row) -> String {
    let e = &row.entry;
    let runs = e.runs.max(1);
    let mut md = format!(
        "### {} ({} {} {})\n\nPer run, {} run(s) of {} image(s) on {} × {} threads.\n\n",
        e.path.display(),
        row.network,
        row.activation,
        e.packing,
        e.runs,
        e.summary.images,
        e.ranks,
        e.threads
    );
    let ops = used_ops(&e.stages);
    let mut head = vec!["stage".to_string(), "seconds".into(), "share %".into()];
    head.extend(ops.iter().map(|&j| OpTally::NAMES[j].to_string()));
    md += &md_header(&head);
    let total: f64 = e
        .stages
        .iter()
        .map(|s| s.seconds)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    for s in &e.stages {
        let per = s.counts.divided_by(runs).values();
        let mut cells = vec![
            s.name.clone(),
            Kind::Seconds.show(s.seconds / runs as f64),
            format!("{:.1}", 100.0 * s.seconds / total),
        ];
        cells.extend(ops.iter().map(|&j| thousands(per[j])));
        md += &md_row(&cells);
    }
    md + "\n"
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_line(cells: &[String]) -> String {
    cells
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",")
        + "\n"
}

/// One line per result file: ours, the paper's and their ratio for every metric.
pub fn csv(rows: &[Row]) -> String {
    let mut head: Vec<String> = [
        "file",
        "dataset",
        "network",
        "activation",
        "conv2_channels",
        "pruning_ratio",
        "packing",
        "poly_modulus_degree",
        "ranks",
        "threads_per_rank",
        "images",
        "runs",
    ]
    .map(String::from)
    .to_vec();
    if let Some(first) = rows.first() {
        for m in metrics(first) {
            head.extend([
                m.csv.to_string(),
                format!("paper_{}", m.csv),
                format!("{}_ratio", m.csv),
            ]);
        }
    }
    let mut out = csv_line(&head);
    let opt = |x: Option<f64>| x.map_or(String::new(), |v| v.to_string());
    for row in rows {
        let e = &row.entry;
        let mut cells = vec![
            e.path.display().to_string(),
            row.dataset(),
            row.network.clone(),
            row.activation.clone(),
            e.conv2.map_or(String::new(), |c| c.to_string()),
            opt(row.pruning_ratio()),
            e.packing.to_string(),
            e.params.poly_modulus_degree.to_string(),
            e.ranks.to_string(),
            e.threads.to_string(),
            e.summary.images.to_string(),
            e.runs.to_string(),
        ];
        for m in metrics(row) {
            cells.extend([m.ours.to_string(), opt(m.paper), opt(m.ratio())]);
        }
        out += &csv_line(&cells);
    }
    out
}

/// One line per stage of every result file, per run.
pub fn layers_csv(rows: &[Row]) -> String {
    let mut head: Vec<String> = ["file", "stage", "seconds_per_run"]
        .map(String::from)
        .to_vec();
    head.extend(OpTally::NAMES.iter().map(|n| format!("{n}_per_run")));
    let mut out = csv_line(&head);
    for row in rows {
        let runs = row.entry.runs.max(1);
        for s in &row.entry.stages {
            let mut cells = vec![
                row.entry.path.display().to_string(),
                s.name.clone(),
                (s.seconds / runs as f64).to_string(),
            ];
            cells.extend(
                s.counts
                    .divided_by(runs)
                    .values()
                    .iter()
                    .map(u64::to_string),
            );
            out += &csv_line(&cells);
        }
    }
    out
}
