//! The level-saving folds leave every network's function unchanged (to 1e-9).

mod common;

use common::{bn, conv, named, Rng};
use hejob::model::fold::{fold_activation_leading, fold_batchnorm, fold_for_he, fold_pool_scales};
use hejob::model::plain::forward;
use hejob::model::{Activation, AvgPool, Dense, Layer, LayerKind, Shape};

fn act(r: &mut Rng) -> LayerKind {
    match r.below(4) {
        0 => LayerKind::Activation(
            Activation::Poly(vec![0.2, 0.5, r.uniform(0.05, 0.2)]),
            "p2".into(),
        ),
        1 => LayerKind::Activation(
            Activation::Poly(vec![0.1, 0.5, 0.13, 0.0, -r.uniform(0.001, 0.004)]),
            "p4".into(),
        ),
        2 => LayerKind::Activation(Activation::Swish, "swish".into()),
        _ => LayerKind::Activation(Activation::Relu, "relu".into()),
    }
}

fn pool(k: usize) -> LayerKind {
    LayerKind::AvgPool(AvgPool {
        kernel: k,
        stride: k,
        scale: 1.0 / (k * k) as f64,
    })
}

/// A random network using every layer kind, in varying orders.
fn random_network(r: &mut Rng) -> (Shape, Vec<Layer>) {
    let input = Shape::new(1 + r.below(3), 12, 12);
    let c1 = 2 + r.below(3);
    let c2 = 2 + r.below(3);
    let (stride, padding) = (1 + r.below(2), r.below(2));
    let mut kinds = vec![conv(r, input.c, c1, 3, stride, padding), bn(r, c1), act(r)];
    if r.below(2) == 0 {
        kinds.push(pool(2));
    }
    // an activation right after a pool stops the pool's divisor from being folded
    if r.below(3) == 0 {
        kinds.push(act(r));
    }
    kinds.extend([conv(r, c1, c2, 3, 1, 1), bn(r, c2), act(r)]);
    let head = r.below(2);
    if head == 0 {
        kinds.push(LayerKind::GlobalAvgPool { scale: None });
        kinds.push(LayerKind::Flatten);
    } else {
        kinds.push(LayerKind::Flatten);
    }
    let layers = named(kinds);
    let mut shape = input;
    for (i, l) in layers.iter().enumerate() {
        shape = l.output_shape(i, shape).unwrap();
    }
    let mut layers = layers;
    let d = LayerKind::Dense(Dense {
        out: 6,
        inp: shape.c,
        weight: r.vec(6 * shape.c, -0.3, 0.3),
        bias: r.vec(6, -0.1, 0.1),
    });
    layers.push(Layer::new("fc", d));
    layers.push(Layer::new("bn_out", bn(r, 6)));
    layers.push(Layer::new("act_out", act(r)));
    layers.push(Layer::new(
        "fc2",
        LayerKind::Dense(Dense {
            out: 3,
            inp: 6,
            weight: r.vec(18, -0.5, 0.5),
            bias: r.vec(3, -0.1, 0.1),
        }),
    ));
    (input, layers)
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn folded_networks_compute_the_same_logits() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for trial in 0..200 {
        let (input, layers) = random_network(&mut r);
        let x = r.vec(input.len(), -1.0, 1.0);
        let want = forward(&layers, input, &x);
        for (what, folded) in [
            ("batchnorm", fold_batchnorm(&layers)),
            ("pools", fold_pool_scales(&layers, input)),
            ("activations", fold_activation_leading(&layers)),
            ("all", fold_for_he(&layers, input)),
        ] {
            let got = forward(&folded, input, &x);
            let d = max_diff(&got, &want);
            assert!(d < 1e-9, "trial {trial}, fold {what}: logits differ by {d}");
        }
    }
}

#[test]
fn folds_remove_what_they_should() {
    let mut r = Rng(7);
    let input = Shape::new(1, 8, 8);
    let layers = vec![
        Layer::new("c1", conv(&mut r, 1, 2, 3, 1, 1)),
        Layer::new("b1", bn(&mut r, 2)),
        Layer::new(
            "a1",
            LayerKind::Activation(Activation::Poly(vec![0.2, 0.5, 0.1]), "p".into()),
        ),
        Layer::new("p1", pool(2)),
        Layer::new("c2", conv(&mut r, 2, 2, 3, 1, 0)),
        Layer::new("g", LayerKind::GlobalAvgPool { scale: None }),
        Layer::new(
            "fc",
            LayerKind::Dense(Dense {
                out: 2,
                inp: 2,
                weight: r.vec(4, -1.0, 1.0),
                bias: vec![0.0; 2],
            }),
        ),
    ];
    let folded = fold_for_he(&layers, input);
    assert_eq!(folded.len(), 6, "the batch-norm is merged into c1");
    assert_eq!(folded[0].name, "c1+b1");
    match &folded[1].kind {
        LayerKind::Activation(Activation::Poly(c), _) => assert_eq!(c[2], 1.0, "monic"),
        other => panic!("{other:?}"),
    }
    match &folded[2].kind {
        LayerKind::AvgPool(p) => assert_eq!(p.scale, 1.0, "sum pool"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        folded[4].kind,
        LayerKind::GlobalAvgPool { scale: Some(1.0) }
    );
}
