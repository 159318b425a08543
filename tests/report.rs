//! `hejob report`: tables, CSV and Fig. 5.1 from result files written by the job's own writer
//! with known numbers, and clear errors for files of another layout or damaged ones.

mod common;

use std::path::{Path, PathBuf};

use hejob::he::infer::ImageRecord;
use hejob::he::packing::{Evaluation, PackingId, Stage};
use hejob::he::{plan, Network};
use hejob::job::results::{JobResult, JobRun, Summary};
use hejob::model::arch::{self, Arch};
use hejob::report::evidence::{self, Standing};
use hejob::report::read;

/// Writes a result file for the paper's network of `arch` with `conv2` filters: `labels`
/// images with the given plain and HE predictions, one run per image (channel-wise) or one
/// run in all (batch), each run taking `seconds[i]`. Returns what the writer summarised.
#[allow(clippy::too_many_arguments)]
fn write_result(
    path: &Path,
    arch: Arch,
    activation: &str,
    conv2: usize,
    packing: &str,
    trained: bool,
    preds: &[(u8, usize, usize)],
    seconds: &[f64],
) -> Summary {
    let mut model = arch::random_model(arch, activation, Some(conv2), 1).unwrap();
    if trained {
        model
            .provenance
            .insert("weights".into(), "trained by the report test".into());
    }
    // the model beside the result, as the job read it
    let model_path = path.with_extension("model.h5");
    hejob::model::file::save(&model, &model_path).unwrap();
    let fingerprint = format!(
        "model-md5={};dataset={};packing={packing}",
        hejob::data::checksums::md5_file(&model_path).unwrap(),
        model.dataset
    );
    let net = Network::from_model(&model).unwrap();
    let plan = plan::plan(packing.parse::<PackingId>().unwrap(), &net, None).unwrap();
    let runs: Vec<Evaluation> = seconds
        .iter()
        .map(|&s| Evaluation {
            stages: plan
                .layers
                .iter()
                .map(|l| Stage {
                    name: l.name.clone(),
                    counts: l.counts,
                    seconds: s / plan.layers.len() as f64,
                })
                .collect(),
            totals: plan.totals,
            seconds: s,
        })
        .collect();
    let records: Vec<(usize, ImageRecord)> = preds
        .iter()
        .enumerate()
        .map(|(i, &(label, plain_pred, he_pred))| {
            let logits = |p: usize| (0..10).map(|k| f64::from(k == p as u32)).collect();
            (
                0,
                ImageRecord {
                    index: i,
                    label,
                    plain_logits: logits(plain_pred),
                    he_logits: logits(he_pred),
                    plain_pred,
                    he_pred,
                    max_abs_error: 1e-6 * (i + 1) as f64,
                    latency_s: seconds[i.min(seconds.len() - 1)],
                    counts: plan.totals,
                },
            )
        })
        .collect();
    let job = JobRun {
        job_text: "# written by tests/report.rs\n".into(),
        fingerprint: fingerprint.clone(),
        model_path: model_path.clone(),
        ranks: 1,
        threads: 2,
        runs_in_flight: 1,
        start: "2026-01-01T00:00:00Z".into(),
        end: "2026-01-01T00:01:00Z".into(),
    };
    let result = JobResult {
        job: &job,
        model: &model,
        plan: &plan,
        records: &records,
        runs: &runs,
    };
    result.write(path).unwrap()
}

/// Three result files: trained swish-rg7-deg4 3layer-CNN and its Pruned-R1 channel-wise, and a
/// random-weight square 3layer-CNN batch-axis.
fn three_files(dir: &Path) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = ["base.h5", "r1.h5", "random.h5"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let four = [(1, 1, 1), (2, 2, 2), (3, 3, 4), (4, 5, 5)];
    write_result(
        &files[0],
        Arch::Mnist3Layer,
        "swish-rg7-deg4",
        50,
        "channel",
        true,
        &four,
        &[2.0, 3.0, 4.0, 5.0],
    );
    write_result(
        &files[1],
        Arch::Mnist3Layer,
        "swish-rg7-deg4",
        40,
        "channel",
        true,
        &four,
        &[1.0, 1.5, 2.0, 2.5],
    );
    write_result(
        &files[2],
        Arch::Mnist3Layer,
        "square",
        50,
        "batch",
        false,
        &four,
        &[80.0],
    );
    files
}

fn run_report(files: &[PathBuf], out: &Path) -> std::process::Output {
    common::hejob_command()
        .arg("report")
        .args(files)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// The CSV as a list of column → value maps.
fn csv_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let head: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            head.iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

fn num(row: &std::collections::HashMap<String, String>, key: &str) -> f64 {
    row[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key} = {:?}", row[key]))
}

#[test]
fn result_files_read_back_to_what_was_written() {
    let _g = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.h5");
    let written = write_result(
        &path,
        Arch::Cifar10FourLayer,
        "square",
        52,
        "channel",
        true,
        &[(0, 0, 0), (1, 2, 1)],
        &[7.0, 9.0],
    );
    let e = read::read(&path).unwrap();
    assert_eq!(e.summary, written);
    assert_eq!(e.summary.mean_latency_s, 8.0);
    assert_eq!(e.summary.plain_accuracy, 0.5);
    assert_eq!(e.summary.he_accuracy, 1.0);
    assert_eq!(e.packing, PackingId::Channel);
    assert_eq!(e.architecture.as_deref(), Some("cifar10-4layer"));
    assert_eq!(e.conv2, Some(52));
    assert!(!e.random_weights);
    assert_eq!((e.ranks, e.threads, e.runs), (1, 2, 2));
    let stage_seconds: f64 = e.stages.iter().map(|s| s.seconds).sum();
    assert!((stage_seconds - 16.0).abs() < 1e-9);
    assert_eq!(e.model, path.with_extension("model.h5"));
    assert_eq!(e.build.as_deref(), Some(env!("HEJOB_BUILD")));
    // image 1: plain 2, HE 1, one-hot logits, an error of 2e-6
    assert_eq!(
        e.disagreements,
        [read::Disagreement {
            index: 1,
            label: 1,
            plain_pred: 2,
            he_pred: 1,
            margin: 1.0,
            error: 2e-6,
            largest_logit: 1.0,
        }]
    );
}

#[test]
fn a_file_stands_while_this_build_plans_its_model_the_same() {
    let _g = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let files = three_files(dir.path());
    let standing = |f: &Path| evidence::standing(&read::read(f).unwrap());
    assert_eq!(standing(&files[0]), Standing::Current);

    // the same file as if its job had fixed a 30-bit scale: this build plans that otherwise
    let fixed = dir.path().join("fixed.h5");
    std::fs::copy(&files[0], &fixed).unwrap();
    std::fs::copy(
        files[0].with_extension("model.h5"),
        fixed.with_extension("model.h5"),
    )
    .unwrap();
    {
        let f = hdf5::File::open_rw(&fixed).unwrap();
        f.delete_attr("job_toml").unwrap();
        let text: hdf5::types::VarLenUnicode = "scale_bits = 30\n".parse().unwrap();
        f.new_attr::<hdf5::types::VarLenUnicode>()
            .create("job_toml")
            .unwrap()
            .write_scalar(&text)
            .unwrap();
    }
    let Standing::Differs(what) = standing(&fixed) else {
        panic!("a 30-bit plan is not the file's")
    };
    assert!(what.contains("scale 2^30 (file: 2^"), "{what}");

    // a model file replaced since the job read it is not planned
    std::fs::copy(
        files[2].with_extension("model.h5"),
        files[0].with_extension("model.h5"),
    )
    .unwrap();
    let Standing::Unchecked(why) = standing(&files[0]) else {
        panic!("a replaced model was planned")
    };
    assert!(why.contains("is no longer the model the job read"), "{why}");
}

#[test]
fn report_has_the_expected_rows_numbers_and_figures() {
    let _g = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let files = three_files(dir.path());
    let out = dir.path().join("report");
    let o = run_report(&files, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let rows = csv_rows(&out.join("report.csv"));
    assert_eq!(rows.len(), 3);
    let row = |file: &str| {
        rows.iter()
            .find(|r| r["file"].ends_with(file))
            .unwrap_or_else(|| panic!("no row for {file}"))
    };
    let base = row("base.h5");
    assert_eq!(base["network"], "3layer-CNN");
    assert_eq!(base["activation"], "swish-rg7-deg4");
    assert_eq!(base["packing"], "channel");
    assert_eq!(num(base, "images"), 4.0);
    assert_eq!(num(base, "plain_accuracy_pct"), 75.0);
    assert_eq!(num(base, "he_accuracy_pct"), 50.0);
    assert_eq!(num(base, "agreement_pct"), 75.0);
    assert_eq!(num(base, "paper_plain_accuracy_pct"), 99.52);
    assert_eq!(num(base, "paper_he_accuracy_pct"), 99.52);
    assert_eq!(num(base, "latency_s"), 3.5);
    assert_eq!(num(base, "paper_latency_s"), 0.97);
    assert!((num(base, "latency_s_ratio") - 3.5 / 0.97).abs() < 1e-12);
    // the plan's own counts for this network, against Table 5.9's
    let e = read::read(&files[0]).unwrap();
    assert_eq!(
        num(base, "hmulplain"),
        e.summary.per_inference.hmulplain as f64
    );
    assert_eq!(num(base, "rotation"), 330.0);
    assert_eq!(num(base, "paper_hmulplain"), 6500.0);
    assert_eq!(num(base, "paper_rotation"), 330.0);

    let r1 = row("r1.h5");
    assert_eq!(r1["network"], "3layer-CNN-Pruned-R1");
    assert_eq!(num(r1, "pruning_ratio"), 0.2);
    assert_eq!(num(r1, "latency_s"), 1.75);
    assert_eq!(num(r1, "paper_latency_s"), 0.88);

    // random weights: counts and latency compared, accuracies not
    let random = row("random.h5");
    assert_eq!(random["network"], "3layer-CNN (random weights)");
    assert_eq!(random["packing"], "batch");
    assert_eq!(random["paper_he_accuracy_pct"], "");
    assert_eq!(random["paper_plain_accuracy_pct"], "");
    assert_eq!(num(random, "latency_s"), 80.0);
    assert_eq!(num(random, "paper_latency_s"), 6.44);
    assert_eq!(num(random, "hmulplain"), 126_000.0);
    assert_eq!(num(random, "paper_hmulplain"), 126_000.0);

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| 3layer-CNN | swish-rg7-deg4 | channel | 16384 | 1 × 2 | 4 | 75.00 | 99.52 | 50.00 | 99.52 | 75.00 |"), "{md}");
    assert!(md.contains("| 330 | 330 |"), "{md}");
    assert!(md.contains("| 3.50 | 0.970 | 3.61× |"), "{md}");
    // the random-weight row has no paper accuracies, but the paper's counts and latency
    assert!(md.contains("| 3layer-CNN (random weights) | square | batch | 16384 | 1 × 2 | 4 | 75.00 | – | 50.00 | – |"), "{md}");
    assert!(md.contains("| 80.00 | 6.44 | 12.42× |"), "{md}");
    // the grid in the paper's shape: ours [paper]
    assert!(md.contains("| 3.50 [0.970] | 1.75 [0.880] |"), "{md}");
    assert!(md.contains("### mnist"), "{md}");
    assert!(
        md.contains("| 3layer-CNN channel | 3layer-CNN-Pruned-R1 channel |"),
        "{md}"
    );
    // per-layer breakdown: every stage of each file, per run
    assert!(md.contains(&format!("### {} (3layer-CNN-Pruned-R1", files[1].display())));
    for s in &e.stages {
        assert!(md.contains(&format!("| {} |", s.name)), "stage {}", s.name);
    }
    let layers = std::fs::read_to_string(out.join("layers.csv")).unwrap();
    let stages: usize = files
        .iter()
        .map(|f| read::read(f).unwrap().stages.len())
        .sum();
    assert_eq!(layers.lines().count(), 1 + stages);

    // the disagreeing image of each file (image 2: plain 3, HE 4, an error of 3e-6), with its
    // margin, error and explanation
    for file in &files {
        let line = format!(
            "| {} | 2 | 3 | 3 | 4 | 1.00e0 | 3.00e-6 | not explained: the margin 1.00e0 exceeds \
             twice the error 3.00e-6 |",
            file.display()
        );
        assert!(md.contains(&line), "{line}\n{md}");
    }
    assert!(md.contains("3 of 12 images"), "{md}");
    // each file's build, and this build still plans what each measured
    for file in &files {
        let line = format!(
            "| {} | {} | {} | the same |",
            file.display(),
            env!("CARGO_PKG_VERSION"),
            env!("HEJOB_BUILD")
        );
        assert!(md.contains(&line), "{line}\n{md}");
    }

    let svg = std::fs::read_to_string(out.join("fig-5-1.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "not an SVG");
    for text in [
        "mnist swish-rg7-deg4, channel",
        "paper: mnist swish-rg7-deg4, channel (72 threads)",
        "pruned 20%",
        "latency per inference [s]",
        "encrypted test accuracy [%]",
    ] {
        assert!(svg.contains(text), "the plot lacks {text:?}");
    }
    // batch-axis lines too, in the dataset's panel; the paper's channel-wise line once for
    // both of our channel-wise files of an activation
    assert!(svg.contains("mnist square, batch"));
    assert!(svg.contains("\nMNIST\n"), "no MNIST panel");
    assert_eq!(
        svg.matches("paper: mnist swish-rg7-deg4, channel (72 threads)")
            .count(),
        1
    );
    let png = std::fs::read(out.join("fig-5-1.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 10_000, "PNG of {} bytes", png.len());
}

#[test]
fn one_file_gives_a_plot_with_one_point() {
    let _g = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let files = three_files(dir.path());
    let out = dir.path().join("one");
    let o = run_report(&files[2..], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(out.join("fig-5-1.svg")).unwrap();
    assert!(svg.contains("mnist square, batch"));
    assert!(out.join("fig-5-1.png").is_file());
    assert_eq!(csv_rows(&out.join("report.csv")).len(), 1);
}

/// Runs the report on `bad` beside a good file and returns its one-line error.
fn report_error(dir: &Path, bad: &Path) -> String {
    let files = three_files(dir);
    let out = dir.join("out");
    let o = run_report(&[files[0].clone(), bad.to_path_buf()], &out);
    assert!(!o.status.success());
    assert!(
        !out.join("report.md").exists(),
        "a failed report wrote files"
    );
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&bad.display().to_string()), "{err}");
    err
}

#[test]
fn an_older_layout_a_damaged_file_and_a_model_file_are_clear_errors() {
    let _g = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let files = three_files(dir.path());

    let old = dir.path().join("old.h5");
    std::fs::copy(&files[0], &old).unwrap();
    {
        let f = hdf5::File::open_rw(&old).unwrap();
        f.delete_attr("format_version").unwrap();
        f.new_attr::<i64>()
            .create("format_version")
            .unwrap()
            .write_scalar(&0)
            .unwrap();
    }
    let err = report_error(dir.path(), &old);
    assert!(
        err.contains("result layout version 0; this hejob reads version 1"),
        "{err}"
    );

    let damaged = dir.path().join("damaged.h5");
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 3]).unwrap();
    let err = report_error(dir.path(), &damaged);
    assert!(err.contains("not a readable HDF5 file"), "{err}");

    let no_summary = dir.path().join("no-summary.h5");
    std::fs::copy(&files[0], &no_summary).unwrap();
    hdf5::File::open_rw(&no_summary)
        .unwrap()
        .unlink("summary")
        .unwrap();
    let err = report_error(dir.path(), &no_summary);
    assert!(err.contains("missing group 'summary'"), "{err}");

    let model = dir.path().join("model.h5");
    hejob::model::file::save(
        &arch::random_model(Arch::Mnist3Layer, "square", None, 0).unwrap(),
        &model,
    )
    .unwrap();
    let err = report_error(dir.path(), &model);
    assert!(err.contains("not an hejob result file"), "{err}");

    let err = report_error(dir.path(), &dir.path().join("absent.h5"));
    assert!(err.contains("no such file"), "{err}");

    // summaries that hold impossible numbers or contradict their per-image data
    type Edit = Box<dyn Fn(&hdf5::Group)>;
    let set = |name: &'static str, v: f64| -> Edit {
        Box::new(move |g: &hdf5::Group| g.attr(name).unwrap().write_scalar(&v).unwrap())
    };
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "nan.h5",
            set("he_accuracy", f64::NAN),
            "summary field 'he_accuracy' is NaN",
        ),
        (
            "negative.h5",
            set("mean_latency_s", -1.0),
            "summary field 'mean_latency_s' is -1",
        ),
        (
            "above-one.h5",
            set("agreement", 1.5),
            "summary field 'agreement' is 1.5",
        ),
        (
            "contradicting.h5",
            set("he_accuracy", 0.25),
            "summary field 'he_accuracy' is 0.25, but the per-image data give",
        ),
        (
            "images.h5",
            Box::new(|g: &hdf5::Group| g.attr("images").unwrap().write_scalar(&7u64).unwrap()),
            "summary field 'images' is 7, but the per-image datasets hold",
        ),
    ];
    for (name, edit, says) in cases {
        let path = dir.path().join(name);
        std::fs::copy(&files[0], &path).unwrap();
        edit(
            &hdf5::File::open_rw(&path)
                .unwrap()
                .group("summary")
                .unwrap(),
        );
        let err = report_error(dir.path(), &path);
        assert!(err.contains(name) && err.contains(says), "{name}: {err}");
    }

    // a stages dataset that declares 10^10 entries (chunked: the file stays small) is refused
    // before anything is allocated for it
    let huge = dir.path().join("huge-stages.h5");
    std::fs::copy(&files[0], &huge).unwrap();
    {
        let f = hdf5::File::open_rw(&huge).unwrap();
        let g = f.group("stages").unwrap();
        g.unlink("seconds").unwrap();
        g.new_dataset::<f64>()
            .chunk(1024)
            .shape(10_000_000_000usize)
            .create("seconds")
            .unwrap();
    }
    assert!(std::fs::metadata(&huge).unwrap().len() < 1 << 20);
    let err = report_error(dir.path(), &huge);
    assert!(
        err.contains("huge-stages.h5")
            && err.contains("dataset 'stages/seconds' declares shape [10000000000]"),
        "{err}"
    );
}
