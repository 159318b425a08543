//! L1-norm filter pruning on the paper's architectures: the pruned network computes exactly
//! what the original computes with the removed channels cut off from the next layer, the
//! removed filters are the smallest by L1 norm, and the paper's widths come out.

mod common;

use common::Rng;
use hejob::model::arch::{random_model, Arch};
use hejob::model::plain::forward;
use hejob::model::prune::{l1_ranking, prune, removed_count};
use hejob::model::{LayerKind, Model};

/// The original model with the next layer's weights on `removed` channels of conv2 set to
/// zero: conv2's other channels are untouched, those channels no longer reach the output.
fn cut_off(model: &Model, removed: &[usize]) -> Model {
    let mut m = model.clone();
    let at = m.layers.iter().position(|l| l.name == "conv2").unwrap();
    let shapes = m.validate().unwrap();
    let plane = shapes[at].h * shapes[at].w;
    for layer in &mut m.layers[at + 1..] {
        match &mut layer.kind {
            LayerKind::Conv(c) => {
                for o in 0..c.oc {
                    for &r in removed {
                        for k in 0..c.kh * c.kw {
                            c.weight[(o * c.ic + r) * c.kh * c.kw + k] = 0.0;
                        }
                    }
                }
                return m;
            }
            LayerKind::Dense(d) => {
                for o in 0..d.out {
                    for &r in removed {
                        for k in 0..plane {
                            d.weight[o * d.inp + r * plane + k] = 0.0;
                        }
                    }
                }
                return m;
            }
            _ => {}
        }
    }
    panic!("nothing reads conv2")
}

fn check(arch: Arch, activation: &str, ratio: f64, want: usize) {
    let model = random_model(arch, activation, None, 7).unwrap();
    let (pruned, info) = prune(&model, "conv2", ratio).unwrap();
    assert_eq!(info.after, want, "{arch:?} ratio {ratio}");
    assert_eq!(info.removed.len(), info.before - want);
    pruned.validate().unwrap();
    // the removed filters are the ones with the smallest L1 norms
    let ranking = l1_ranking(&model, "conv2").unwrap();
    let mut smallest = ranking[..info.removed.len()].to_vec();
    smallest.sort_unstable();
    assert_eq!(info.removed, smallest);
    // exactly the original network with those channels cut off
    let reference = cut_off(&model, &info.removed);
    let mut r = Rng(11);
    for _ in 0..5 {
        let x = r.vec(model.input.len(), -2.0, 2.0);
        let (a, b) = (
            forward(&pruned.layers, pruned.input, &x),
            forward(&reference.layers, reference.input, &x),
        );
        for (p, q) in a.iter().zip(&b) {
            assert!(
                (p - q).abs() <= 1e-9 * (1.0 + q.abs()),
                "{arch:?}: {p} vs {q}"
            );
        }
    }
}

#[test]
fn pruned_mnist_networks_equal_the_original_with_channels_cut_off() {
    check(Arch::Mnist3Layer, "swish-rg7-deg4", 0.2, 40);
    // pruned-r2 prunes pruned-r1 again: 40 → 32
    let r1 = prune(
        &random_model(Arch::Mnist3Layer, "square", None, 3).unwrap(),
        "conv2",
        0.2,
    )
    .unwrap()
    .0;
    let (r2, info) = prune(&r1, "conv2", 0.2).unwrap();
    assert_eq!((info.before, info.after), (40, 32));
    let LayerKind::Dense(fc) = &r2.layers.last().unwrap().kind else {
        panic!("the last layer is dense")
    };
    assert_eq!(fc.inp, 32 * 16);
}

#[test]
fn pruned_cifar_networks_equal_the_original_with_channels_cut_off() {
    for (ratio, want) in [(0.1, 58), (0.2, 52), (0.3, 45)] {
        check(Arch::Cifar10FourLayer, "square", ratio, want);
    }
}

#[test]
fn removed_counts_and_bad_requests() {
    assert_eq!(removed_count(64, 0.1), 6);
    assert_eq!(removed_count(64, 0.3), 19);
    assert_eq!(removed_count(50, 0.2), 10);
    assert_eq!(removed_count(3, 0.99), 2, "never every filter");
    let model = random_model(Arch::Mnist3Layer, "square", None, 1).unwrap();
    let e = prune(&model, "conv9", 0.2).unwrap_err().to_string();
    assert!(
        e.contains("no layer named conv9") && e.contains("conv1, conv2"),
        "{e}"
    );
    let e = prune(&model, "bn1", 0.2).unwrap_err().to_string();
    assert!(e.contains("not a conv layer"), "{e}");
    let e = prune(&model, "conv2", 1.0).unwrap_err().to_string();
    assert!(e.contains("not in [0, 1)"), "{e}");
}
