//! Training through burn (feature `train`): the burn network computes what hejob's reference
//! forward pass computes and gives its weights back, a training run killed with SIGKILL resumes
//! to bit-identical weights, a checkpoint of another run is refused, `prune` retrains, and
//! `retrain` continues from a trained model's weights.
#![cfg(feature = "train")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor, TensorData};
use common::Rng;
use hejob::model::arch::{random_model, Arch};
use hejob::model::{file, plain, LayerKind};
use hejob::train::net::Net;

#[test]
fn the_burn_network_computes_the_reference_forward_pass() {
    let device = Device::flex(); // no autodiff: batch norm uses its running statistics
    for arch in [Arch::Mnist3Layer, Arch::Cifar10FourLayer] {
        for act in ["square", "swish-rg7-deg4", "relu", "swish"] {
            let model = random_model(arch, act, None, 5).unwrap();
            let net = Net::from_model(&model, &device).unwrap();
            let mut r = Rng(9);
            let n = 3;
            let xs: Vec<Vec<f64>> = (0..n)
                .map(|_| r.vec(model.input.len(), -2.0, 2.0))
                .collect();
            let flat: Vec<f32> = xs.iter().flatten().map(|&v| v as f32).collect();
            let s = model.input;
            let x = Tensor::from_data(TensorData::new(flat, [n, s.c, s.h, s.w]), &device);
            let got = net.forward(x).into_data();
            let got = got.as_slice::<f32>().unwrap();
            for (i, x) in xs.iter().enumerate() {
                let want = plain::forward(&model.layers, model.input, x);
                let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                for (k, w) in want.iter().enumerate() {
                    let g = got[i * want.len() + k] as f64;
                    assert!(
                        (g - w).abs() <= 1e-4 * scale,
                        "{arch:?} {act}: image {i} logit {k}: burn {g}, reference {w}"
                    );
                }
            }
            // and the weights come back (to f32 precision)
            let back = net.to_model(&model);
            for (a, b) in model.layers.iter().zip(&back.layers) {
                if let (LayerKind::Dense(x), LayerKind::Dense(y)) = (&a.kind, &b.kind) {
                    for (p, q) in x.weight.iter().zip(&y.weight) {
                        assert!((p - q).abs() <= 1e-6 * (1.0 + p.abs()));
                    }
                }
                if let (LayerKind::BatchNorm(x), LayerKind::BatchNorm(y)) = (&a.kind, &b.kind) {
                    for (p, q) in x.var.iter().zip(&y.var) {
                        assert!((p - q).abs() <= 1e-6 * (1.0 + p.abs()));
                    }
                }
            }
        }
    }
}

/// `hejob HEAD... --epochs EPOCHS` on the first `images` training images, 1 thread.
fn hejob_args(
    head: &[&str],
    epochs: &str,
    images: &str,
    out: &Path,
    checkpoint: &Path,
) -> Vec<String> {
    let data = common::datasets_dir();
    let tail = [
        "--epochs",
        epochs,
        "--train-images",
        images,
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--checkpoint-dir",
        checkpoint.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    head.iter().chain(&tail).map(|s| s.to_string()).collect()
}

fn train_args(out: &Path, checkpoint: &Path, seed: &str) -> Vec<String> {
    let head = [
        "train",
        "--arch",
        "mnist-3layer",
        "--activation",
        "square",
        "--seed",
        seed,
    ];
    hejob_args(&head, "6", "1536", out, checkpoint)
}

fn run_ok(args: &[String]) {
    let out = common::hejob_command().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_killed_training_run_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // uninterrupted
    let (a, ca) = (d.join("a.h5"), d.join("ca"));
    run_ok(&train_args(&a, &ca, "3"));
    assert!(!ca.exists(), "a finished run removes its checkpoint");
    // killed after its first checkpoint, then re-run
    let (b, cb) = (d.join("b.h5"), d.join("cb"));
    let mut child = common::hejob_command()
        .args(train_args(&b, &cb, "3"))
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !cb.join("latest/state.json").exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!b.exists(), "killed before the end");
    // a different run may not continue this checkpoint
    let other = common::hejob_command()
        .args(train_args(&b, &cb, "4"))
        .output()
        .unwrap();
    assert!(!other.status.success());
    let e = String::from_utf8_lossy(&other.stderr);
    assert!(e.contains("belongs to another training run"), "{e}");
    run_ok(&train_args(&b, &cb, "3"));
    let (ma, mb) = (file::load(&a).unwrap(), file::load(&b).unwrap());
    assert_eq!(ma.layers, mb.layers, "resumed weights differ");
    assert!(ma.provenance["training"].contains("first 1536 training images"));
    assert_eq!(ma.provenance["epochs"], "6");
    assert!(ma.provenance["weights"].contains("from PyTorch default"));
    assert!(ma.provenance["plain_test_accuracy"].ends_with("(10000 test images, hejob eval)"));
    // a restart at learning rate 0 keeps the trained weights (only the batch norms' running
    // statistics move) and adds to the provenance
    let r = d.join("r.h5");
    let head = ["retrain", "--model", a.to_str().unwrap(), "--lr", "0"];
    run_ok(&hejob_args(&head, "1", "256", &r, &d.join("cr")));
    let mr = file::load(&r).unwrap();
    for (x, y) in ma.layers.iter().zip(&mr.layers) {
        match (&x.kind, &y.kind) {
            (LayerKind::Conv(p), LayerKind::Conv(q)) => assert_eq!(p.weight, q.weight),
            (LayerKind::Dense(p), LayerKind::Dense(q)) => assert_eq!(p.weight, q.weight),
            _ => {}
        }
    }
    assert_eq!(mr.provenance["epochs"], "7");
    assert!(mr.provenance["training"].contains("; then a restart: "));
    assert!(mr.provenance["weights"].contains("then retrained by hejob retrain from"));
    // prune the result and retrain it briefly
    let p = d.join("p.h5");
    let head = [
        "prune",
        "--model",
        a.to_str().unwrap(),
        "--layer",
        "conv2",
        "--ratio",
        "0.2",
    ];
    run_ok(&hejob_args(&head, "1", "512", &p, &d.join("cp")));
    let mp = file::load(&p).unwrap();
    assert_eq!(mp.provenance["conv2_channels"], "40");
    assert!(
        mp.provenance["pruning"].starts_with("conv2 50 → 40 (L1-norm"),
        "{:?}",
        mp.provenance
    );
    assert!(mp.provenance["retraining"].contains("1 epochs"));
    let LayerKind::Dense(fc) = &mp.layers.last().unwrap().kind else {
        panic!("dense last")
    };
    assert_eq!(fc.inp, 40 * 16);
}
