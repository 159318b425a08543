//! The job runner through the real binary: result files read back, a killed job resumed with
//! every image exactly once, and each bad job refused before any key is generated.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{conv, dense, named, Rng};
use hejob::data::Dataset;
use hejob::model::{file, Activation, LayerKind, Model, Preprocess};

/// A small MNIST network that plans at N=8192 (about half a second per image channel-wise).
fn tiny_model(dir: &Path) -> PathBuf {
    let mut r = Rng(5);
    let model = Model {
        dataset: Dataset::Mnist,
        input: Dataset::Mnist.shape(),
        classes: Dataset::Mnist.classes(),
        preprocess: Preprocess::standard(Dataset::Mnist),
        layers: named(vec![
            conv(&mut r, 1, 2, 5, 2, 0),
            LayerKind::Activation(Activation::Poly(vec![0.0, 0.0, 1.0]), "square".into()),
            LayerKind::Flatten,
            dense(&mut r, 288, 10),
        ]),
        provenance: BTreeMap::from([("weights".into(), "random, for runner tests".into())]),
    };
    let path = dir.join("tiny.h5");
    file::save(&model, &path).unwrap();
    path
}

fn job(dir: &Path, extra: &str) -> PathBuf {
    let model = tiny_model(dir);
    let text = format!(
        "model = {:?}\ndataset = \"mnist\"\ndata_dir = {:?}\npacking = \"channel\"\noutput = {:?}\n{extra}",
        model,
        common::datasets_dir(),
        dir.join("out/result.h5"),
    );
    let path = dir.join("job.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn hejob(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = common::hejob_command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run hejob")
}

fn error_line(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

fn read_indices(path: &Path) -> Vec<i64> {
    let f = hdf5::File::open(path).unwrap();
    f.dataset("index").unwrap().read_raw::<i64>().unwrap()
}

#[test]
fn a_job_writes_a_complete_result_file() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = job(dir.path(), "limit = 3\noffset = 5\nlog_level = \"warn\"\n");
    let out = hejob(&["--config", cfg.to_str().unwrap(), "--threads", "2"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = dir.path().join("out/result.h5");
    let f = hdf5::File::open(&result).unwrap();
    assert_eq!(read_indices(&result), vec![5, 6, 7]);
    for name in [
        "label",
        "plain_pred",
        "he_pred",
        "max_abs_error",
        "latency_s",
        "rank",
    ] {
        assert_eq!(f.dataset(name).unwrap().shape(), vec![3], "{name}");
    }
    assert_eq!(f.dataset("he_logits").unwrap().shape(), vec![3, 10]);
    assert_eq!(f.dataset("plain_logits").unwrap().shape(), vec![3, 10]);
    let s = f.group("summary").unwrap();
    let get = |n: &str| s.attr(n).unwrap().read_scalar::<f64>().unwrap();
    assert_eq!(get("agreement"), 1.0);
    assert!(get("max_abs_error") < 1e-2);
    assert_eq!(s.attr("images").unwrap().read_scalar::<u64>().unwrap(), 3);
    let rotations = s
        .attr("rotation_per_inference")
        .unwrap()
        .read_scalar::<u64>()
        .unwrap();
    assert_eq!(
        rotations,
        25 + 2 + 10 * 12,
        "conv offsets, packing, rotate-and-sum over 4096 slots"
    );
    assert_eq!(
        s.attr("rotation").unwrap().read_scalar::<u64>().unwrap(),
        3 * rotations
    );
    assert_eq!(
        f.attr("poly_modulus_degree")
            .unwrap()
            .read_scalar::<u64>()
            .unwrap(),
        8192
    );
    assert_eq!(
        f.attr("threads_per_rank")
            .unwrap()
            .read_scalar::<u64>()
            .unwrap(),
        2
    );
    let toml: hdf5::types::VarLenUnicode = f.attr("job_toml").unwrap().read_scalar().unwrap();
    assert!(toml.as_str().contains("packing = \"channel\""));
    assert!(!dir.path().join("out/result.h5.tmp").exists());
    // re-running a finished job evaluates nothing and rewrites the same images
    let again = hejob(&["--config", cfg.to_str().unwrap()], &[]);
    assert!(again.status.success());
    assert_eq!(read_indices(&result), vec![5, 6, 7]);
}

#[test]
fn a_killed_job_resumes_and_holds_every_image_once() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = job(dir.path(), "limit = 12\n");
    let checkpoint = dir.path().join("out/result.h5.checkpoint/rank-0.jsonl");
    let mut child = common::hejob_command()
        .args(["--config", cfg.to_str().unwrap(), "--threads", "1"])
        .spawn()
        .unwrap();
    let images_done = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|t| {
                t.lines()
                    .filter(|l| l.contains("\"type\":\"image\""))
                    .count()
            })
            .unwrap_or(0)
    };
    let start = Instant::now();
    while images_done(&checkpoint) < 3 {
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: nothing gets to clean up
    child.wait().unwrap();
    let before = images_done(&checkpoint);
    assert!(before < 12, "killed before the end ({before} done)");
    assert!(!dir.path().join("out/result.h5").exists());
    let out = hejob(&["--config", cfg.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read_indices(&dir.path().join("out/result.h5")),
        (0..12).collect::<Vec<i64>>()
    );
    assert_eq!(
        images_done(&checkpoint),
        12,
        "finished images were not redone"
    );
}

#[test]
fn bad_jobs_fail_fast_with_their_own_message() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(&str, &str)> = vec![
        ("unknown key", "limit = 1\nbatch_size = 3\n"),
        ("limit beyond the test set", "limit = 10001\n"),
        ("bad log level", "limit = 1\nlog_level = \"loud\"\n"),
    ];
    for (what, extra) in cases {
        let cfg = job(d, extra);
        let start = Instant::now();
        let e = error_line(&hejob(&["--config", cfg.to_str().unwrap()], &[]));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: not fast"
        );
        assert!(e.contains("job.toml"), "{what}: {e}");
        match what {
            "unknown key" => assert!(e.contains("unknown field `batch_size`"), "{e}"),
            "limit beyond the test set" => {
                assert!(e.contains("not within the 10000 test images"), "{e}")
            }
            _ => assert!(e.contains("log_level \"loud\""), "{e}"),
        }
    }
    // a missing model
    let cfg = job(d, "limit = 1\n");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("tiny.h5", "absent.h5");
    std::fs::write(&cfg, text).unwrap();
    let e = error_line(&hejob(&["--config", cfg.to_str().unwrap()], &[]));
    assert!(e.contains("absent.h5 does not exist"), "{e}");
    // an unwritable output (its parent is a file)
    let cfg = job(d, "limit = 1\n");
    std::fs::write(d.join("blocker"), "").unwrap();
    let e = error_line(&hejob(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            d.join("blocker/r.h5").to_str().unwrap(),
        ],
        &[],
    ));
    assert!(e.contains("is not writable"), "{e}");
    // a checkpoint of another job configuration
    let cfg = job(d, "limit = 1\npacking = \"batch\"\n");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("packing = \"channel\"\n", "");
    std::fs::write(&cfg, &text).unwrap();
    let cp = d.join("out/result.h5.checkpoint");
    std::fs::create_dir_all(&cp).unwrap();
    std::fs::write(
        cp.join("rank-0.jsonl"),
        "{\"type\":\"header\",\"version\":1,\"fingerprint\":\"other\"}\n",
    )
    .unwrap();
    let e = error_line(&hejob(&["--config", cfg.to_str().unwrap()], &[]));
    assert!(e.contains("different job configuration"), "{e}");
    // a launch with several ranks is refused, not run twice
    let cfg = job(d, "limit = 1\n");
    let e = error_line(&hejob(
        &["--config", cfg.to_str().unwrap()],
        &[("OMPI_COMM_WORLD_SIZE", "2")],
    ));
    assert!(e.contains("launched as 2 ranks"), "{e}");
}
