//! The readers of untrusted files on mutated real files: a model file, a result file and a
//! checkpoint, each damaged at random (bytes flipped, cut short, spans duplicated or zeroed) for a
//! fixed number of cases from a fixed seed. Every reader must answer with a value or an error:
//! never a panic, never an abort (which would end this test process).
//!
//! The checkpoint reader (pure Rust) holds. The two HDF5 readers do not yet: the HDF5 C library
//! (1.10.8) segfaults inside `H5HG_read` on some damaged files (the result reader within 200
//! cases of this seed, the model reader within 2,000), so those two tests are ignored until the
//! readers run isolated; `cargo test --test mutated_files -- --ignored` reproduces the crash.

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

#[test]
#[ignore = "HDF5 1.10.8 (Debian 12) dies of SIGSEGV in H5HG_read on a damaged global heap; \
            these readers need isolating in a child process first"]
fn the_model_reader_never_panics_on_a_mutated_model_file() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.h5");
    let model = random_model(Arch::Mnist3Layer, "swish-rg7-deg4", None, 0).unwrap();
    hejob::model::file::save(&model, &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    fuzz(&bytes, &dir.path().join("m.h5"), 2000, |p| {
        let _ = hejob::model::file::load(p);
    });
}

#[test]
#[ignore = "HDF5 1.10.8 (Debian 12) dies of SIGSEGV in H5HG_read on a damaged global heap; \
            these readers need isolating in a child process first"]
fn the_result_reader_never_panics_on_a_mutated_result_file() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let original = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("results/mnist-3layer-square-channel-first10.h5");
    let bytes = std::fs::read(original).unwrap();
    fuzz(&bytes, &dir.path().join("r.h5"), 200, |p| {
        let _ = hejob::report::read::read(p);
    });
}

#[test]
fn the_checkpoint_reader_never_panics_on_a_mutated_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let original = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("results/cifar-batch.h5.checkpoint/rank-0.jsonl");
    let text = std::fs::read_to_string(original).unwrap();
    // the header and the first 40 records are enough lines to damage
    let head: Vec<&str> = text.lines().take(41).collect();
    let Ok(Entry::Header {
        fingerprint, plan, ..
    }) = serde_json::from_str::<Entry>(head[0])
    else {
        panic!("the committed checkpoint starts with its header");
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
