//! The readers of untrusted files on mutated real files: a model file, a result file and a
//! checkpoint, each damaged at random (bytes flipped, cut short, spans duplicated or zeroed) for a
//! fixed number of cases from a fixed seed. Every reader must answer with a value or an error:
//! never a panic, never an abort.
//!
//! The checkpoint reader (pure Rust) is run in this process. The HDF5 files go through the real
//! binary (`hejob model info`, `hejob report`): the HDF5 C library (1.10.8) itself segfaults
//! inside `H5HG_read` on some damaged files (within 300 cases of this seed for both), so hejob
//! reads each HDF5 file once in a child process first (`commands::isolate`), and what is tested
//! is that the command answers, in one line naming the file, whatever the damage.

mod common;

use std::path::Path;

use hejob::job::checkpoint::{self, Checkpoints, Entry};
use hejob::model::arch::{random_model, Arch};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// One way to damage bytes: (kind, position, length, value), read modulo the file's size.
type Mutation = (u8, usize, usize, u8);

fn mutate(bytes: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(kind, at, len, value) in mutations {
        if out.is_empty() {
            break;
        }
        let at = at % out.len();
        let len = (len % 64).min(out.len() - at);
        match kind % 4 {
            0 => out[at] ^= value | 1,
            1 => out.truncate(at),
            2 => {
                let span = out[at..at + len].to_vec();
                out.splice(at..at, span);
            }
            _ => out[at..at + len].fill(value),
        }
    }
    out
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x4e6a_0b5e),
        ..Config::default()
    })
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(
        (any::<u8>(), any::<usize>(), any::<usize>(), any::<u8>()),
        1..6,
    )
}

/// Runs `read` on `cases` mutations of `original`, written to `path` each time.
fn fuzz(original: &[u8], path: &Path, cases: u32, read: impl Fn(&Path)) {
    runner(cases)
        .run(&mutations(), |m| {
            std::fs::write(path, mutate(original, &m)).unwrap();
            read(path);
            Ok(())
        })
        .unwrap();
}

/// Runs `hejob ARGS FILE [REST]` and requires an answer: a success, or a failure with one line
/// of error, never a death by a signal.
fn answers(args: &[&str], file: &Path, rest: &[&str]) {
    let out = common::hejob_command()
        .args(args)
        .arg(file)
        .args(rest)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some(),
        "hejob {args:?} died of a signal on a mutated file"
    );
    if !out.status.success() {
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(&file.display().to_string()), "{err}");
    }
}

#[test]
fn hejob_answers_in_one_line_on_a_mutated_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.h5");
    let model = random_model(Arch::Mnist3Layer, "swish-rg7-deg4", None, 0).unwrap();
    hejob::model::file::save(&model, &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    fuzz(&bytes, &dir.path().join("m.h5"), 300, |p| {
        answers(&["model", "info", "--model"], p, &[]);
    });
}

#[test]
fn hejob_report_answers_in_one_line_on_a_mutated_result_file() {
    let dir = tempfile::tempdir().unwrap();
    let original = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("results/mnist-3layer-square-channel-first10.h5");
    let bytes = std::fs::read(original).unwrap();
    let out = dir.path().join("report");
    fuzz(&bytes, &dir.path().join("r.h5"), 300, |p| {
        answers(&["report"], p, &["--out", out.to_str().unwrap()]);
    });
}

#[test]
fn the_checkpoint_reader_never_panics_on_a_mutated_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let original =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoint-rank-0.jsonl");
    let text = std::fs::read_to_string(original).unwrap();
    // the header and the first 40 records of the CIFAR-10 batch-axis job
    let head: Vec<&str> = text.lines().collect();
    let Ok(Entry::Header {
        fingerprint, plan, ..
    }) = serde_json::from_str::<Entry>(head[0])
    else {
        panic!("the checkpoint fixture starts with its header");
    };
    let plan = plan.unwrap();
    let bytes = (head.join("\n") + "\n").into_bytes();
    let folder = dir.path().join("cp");
    std::fs::create_dir(&folder).unwrap();
    fuzz(&bytes, &folder.join("rank-0.jsonl"), 300, |_| {
        if let Ok((_, entries)) = Checkpoints::open(&folder, 1, &fingerprint, &plan) {
            let _ = checkpoint::resume(entries, &(0..10_000), |_| Ok(()));
        }
    });
}
