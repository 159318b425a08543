//! Encrypted inference on real SEAL ciphertexts: for small random networks covering every layer
//! kind, under every packing, the decrypted logits equal the plain forward pass within a bound
//! derived from the error measured for that packing and scale (`precision_bound`), and the
//! counted operations equal the plan's prediction exactly.

mod common;

use common::{bn, conv, dense, named, Rng};
use hejob::he::packing::{decrypt_run, encrypt_run, evaluate_run, prepare, PackingId};
use hejob::he::{plan::plan, Network};
use hejob::model::arch::{random_model, Arch};
use hejob::model::plain::forward;
use hejob::model::{Activation, AvgPool, Layer, LayerKind, Shape};
use hejob::seal::{Client, Context, Evaluator};

fn poly(c: &[f64], name: &str) -> LayerKind {
    LayerKind::Activation(Activation::Poly(c.to_vec()), name.into())
}

/// Network A: an unfoldable input batch-norm, padded conv, degree-2 activation, average pool,
/// strided conv with a zero weight, degree-4 activation, flatten, dense.
fn network_a(r: &mut Rng) -> (Shape, Vec<Layer>) {
    let input = Shape::new(2, 8, 8);
    let mut c2 = conv(r, 3, 4, 3, 2, 0);
    if let LayerKind::Conv(c) = &mut c2 {
        c.weight[5] = 0.0;
    }
    let layers = named(vec![
        bn(r, 2),
        conv(r, 2, 3, 3, 1, 1),
        bn(r, 3),
        poly(&[0.24, 0.5, 0.1], "swish-rg5-deg2"),
        LayerKind::AvgPool(AvgPool {
            kernel: 2,
            stride: 2,
            scale: 0.25,
        }),
        c2,
        poly(&[0.1773, 0.5, 0.128, 0.0, -0.001328], "swish-rg7-deg4"),
        LayerKind::Flatten,
        dense(r, 4, 5),
    ]);
    (input, layers)
}

/// Network B: square activation, global average pooling, a cubic with a non-monic leading
/// coefficient between two dense layers.
fn network_b(r: &mut Rng) -> (Shape, Vec<Layer>) {
    let input = Shape::new(1, 6, 6);
    let layers = named(vec![
        conv(r, 1, 3, 3, 1, 0),
        poly(&[0.0, 0.0, 1.0], "square"),
        LayerKind::GlobalAvgPool { scale: None },
        dense(r, 3, 4),
        poly(&[0.2, 0.5, 0.05, 0.02], "cubic"),
        dense(r, 4, 3),
    ]);
    (input, layers)
}

/// Network C, a small CIFAR-10 4layer-CNN: three blocks of padded conv, batch-norm,
/// activation and 2×2 average pooling, then global pooling and a dense layer. Under
/// `channel-fast` the second pooling's two maps merge into one ciphertext (their values and
/// junk sit on even rows and columns only) and the third convolution interleaves its 128
/// output planes in the stride gaps.
fn network_c(r: &mut Rng) -> (Shape, Vec<Layer>) {
    let input = Shape::new(3, 32, 32);
    let pool = || {
        LayerKind::AvgPool(AvgPool {
            kernel: 2,
            stride: 2,
            scale: 0.25,
        })
    };
    let layers = named(vec![
        conv(r, 3, 4, 3, 1, 1),
        bn(r, 4),
        poly(&[0.24, 0.5, 0.1], "swish-rg5-deg2"),
        pool(),
        conv(r, 4, 16, 3, 1, 1),
        bn(r, 16),
        poly(&[0.0, 0.0, 1.0], "square"),
        pool(),
        conv(r, 16, 128, 3, 1, 1),
        bn(r, 128),
        poly(&[0.24, 0.5, 0.1], "swish-rg5-deg2"),
        pool(),
        LayerKind::GlobalAvgPool { scale: None },
        dense(r, 128, 10),
    ]);
    (input, layers)
}

fn check(packing_name: &str, input: Shape, layers: &[Layer], images: usize, seed: u64) {
    check_at(packing_name, None, input, layers, images, seed);
}

/// [`check`] at a fixed scale (`None`: the planner's search).
fn check_at(
    packing_name: &str,
    scale_bits: Option<u32>,
    input: Shape,
    layers: &[Layer],
    images: usize,
    seed: u64,
) {
    let packing = packing_name.parse::<PackingId>().unwrap();
    let net = Network::from_layers(input, layers).unwrap();
    let plan = plan(packing, &net, scale_bits).unwrap();
    let ctx = Context::new(&plan.params).unwrap();
    let client = Client::new(ctx.clone()).unwrap();
    let keys = client.evaluation_keys(&plan.rotation_steps, true).unwrap();
    // the plan counts the keys' coefficients; SEAL adds headers (about 64 kB for Galois keys)
    let (estimate, size) = (
        plan.memory.evaluation_keys_bytes,
        keys.uncompressed_size().unwrap(),
    );
    assert!(
        (estimate..estimate + estimate / 20 + 128 * 1024).contains(&size),
        "{packing_name}: keys take {size} bytes, the plan estimates {estimate}"
    );
    let evaluator = Evaluator::new(ctx.clone(), keys).unwrap();
    let store = prepare(&evaluator, packing, &net).unwrap();
    assert_eq!(
        (store.len(), store.bytes()),
        (
            plan.memory.stored_plaintexts,
            plan.memory.stored_plaintext_bytes
        ),
        "{packing_name}: stored plaintexts differ from the plan"
    );
    let mut r = Rng(seed);
    let xs: Vec<Vec<f64>> = (0..images).map(|_| r.vec(input.len(), -1.0, 1.0)).collect();
    let per_run = plan.images_per_run;
    let mut worst = 0f64;
    for chunk in xs.chunks(per_run) {
        let cts = encrypt_run(client.encryptor(), packing, &net, chunk).unwrap();
        let (out, eval) = evaluate_run(&evaluator, &store, packing, &net, cts).unwrap();
        assert_eq!(
            eval.totals, plan.totals,
            "{packing_name}: counted ops differ from the plan"
        );
        assert_eq!(eval.stages.len(), plan.layers.len());
        for (got, want) in eval.stages.iter().zip(&plan.layers) {
            assert_eq!((&got.name, got.counts), (&want.name, want.counts));
        }
        let logits = decrypt_run(&client, packing, &net, &out, chunk.len()).unwrap();
        for (x, he) in chunk.iter().zip(&logits) {
            let plain = forward(layers, input, x);
            assert_eq!(he.len(), plain.len());
            for (a, b) in he.iter().zip(&plain) {
                worst = worst.max((a - b).abs());
            }
        }
    }
    let bound = precision_bound(packing, plan.params.scale_bits);
    eprintln!(
        "{packing_name}: N={} depth {} max |he − plain| = {worst:.3e} (bound {bound:.1e}, plan's tolerance {:.1e})",
        plan.params.poly_modulus_degree, plan.depth, plan.logit_tolerance
    );
    assert!(
        worst <= bound,
        "{packing_name}: logit error {worst:.3e} > {bound:.1e}, {MARGIN}× the largest error \
         this suite measured for such a packing at 2^{}: precision was lost",
        plan.params.scale_bits
    );
    assert!(worst <= plan.logit_tolerance, "beyond the plan's own bound");
}

/// The largest |he − plain| logit error this suite measured (every network and seed as
/// written here, release build) for each kind of packing at each scale it runs: batch-axis
/// adds no slot's noise to another's; channel-wise packings (`channel`, `channel-fast`,
/// `channel-fast-xK`) sum noise over many slots in rotate-and-sums.
/// (channel-wise, scale bits, measured): batch 9.2e-9, channel-wise 5.0e-6 at 2^40 over 12
/// cases, and 2.1e-3 for `channel-fast-x2` at 2^28.
const MEASURED: [(bool, u32, f64); 3] =
    [(false, 40, 9.2e-9), (true, 40, 5.0e-6), (true, 28, 2.1e-3)];

/// How far above the measured error a run may land: the noise is random, and the largest
/// error of a few images moves by up to about 2× from run to run; a precision loss of 8× fails.
const MARGIN: f64 = 8.0;

/// The bound a packing's logits are held to at a scale: [`MARGIN`] × [`MEASURED`]. (The plan's
/// `logit_tolerance` is the loose bound the planner states for any network; it stays checked
/// too, but a 100× precision loss would pass it.)
fn precision_bound(packing: PackingId, scale_bits: u32) -> f64 {
    let channel_wise = packing.is_channel_wise();
    let (_, _, measured) = MEASURED
        .iter()
        .find(|(c, s, _)| *c == channel_wise && *s == scale_bits)
        .unwrap_or_else(|| panic!("no measured error for {packing} at 2^{scale_bits}: measure it"));
    MARGIN * measured
}

#[test]
fn channel_packing_network_a() {
    let (input, layers) = network_a(&mut Rng(11));
    check("channel", input, &layers, 2, 1);
}

#[test]
fn channel_packing_network_b() {
    let (input, layers) = network_b(&mut Rng(12));
    check("channel", input, &layers, 2, 2);
}

#[test]
fn batch_packing_network_a() {
    let (input, layers) = network_a(&mut Rng(11));
    check("batch", input, &layers, 16, 3);
}

#[test]
fn batch_packing_network_b() {
    let (input, layers) = network_b(&mut Rng(12));
    check("batch", input, &layers, 16, 4);
}

#[test]
fn channel_fast_packing_network_a() {
    let (input, layers) = network_a(&mut Rng(11));
    check("channel-fast", input, &layers, 2, 5);
}

#[test]
fn channel_fast_packing_network_b() {
    let (input, layers) = network_b(&mut Rng(12));
    check("channel-fast", input, &layers, 2, 6);
}

#[test]
fn channel_fast_packing_mnist_3layer_cnn() {
    // the paper's MNIST network (random weights): its stride-2 first convolution read from
    // four phase planes, conv2 in one ciphertext
    let m = random_model(Arch::Mnist3Layer, "swish-rg7-deg4", None, 3).unwrap();
    check("channel-fast", m.input, &m.layers, 1, 7);
}

#[test]
fn channel_fast_strided_padded_first_convolution() {
    // stride 2 with padding 1 over phase planes: 4 input ciphertexts instead of 9 (im2col),
    // the padding masked by the server's weights; 3 images in runs of 2; at 2^40, the scale
    // whose error is measured
    let layers = named(vec![
        conv(&mut Rng(17), 2, 3, 3, 2, 1),
        poly(&[0.0, 0.0, 1.0], "square"),
        LayerKind::Flatten,
        dense(&mut Rng(18), 3 * 5 * 5, 4),
    ]);
    let input = Shape::new(2, 9, 9);
    let net = Network::from_layers(input, &layers).unwrap();
    let p = plan("channel-fast".parse::<PackingId>().unwrap(), &net, None).unwrap();
    assert_eq!(p.input_ciphertexts, 2 * 4);
    check_at("channel-fast", Some(40), input, &layers, 1, 19);
    check_at("channel-fast-x2", Some(40), input, &layers, 3, 20);
}

#[test]
fn channel_fast_at_a_fixed_scale_mnist_3layer_cnn() {
    // the paper's square network at 2^28 in the compact chain: N = 8192, 2 images per run
    let m = random_model(Arch::Mnist3Layer, "square", None, 3).unwrap();
    check_at("channel-fast-x2", Some(28), m.input, &m.layers, 2, 16);
}

#[test]
fn channel_fast_interleaved_images_network_a() {
    // 4 images per ciphertext: a full run and a partial one (the empty lanes hold zeros)
    let (input, layers) = network_a(&mut Rng(11));
    check("channel-fast-x4", input, &layers, 6, 8);
}

#[test]
fn channel_fast_interleaved_images_network_b() {
    let (input, layers) = network_b(&mut Rng(12));
    check("channel-fast-x16", input, &layers, 16, 9);
}

#[test]
fn channel_fast_interleaved_images_mnist_3layer_cnn() {
    let m = random_model(Arch::Mnist3Layer, "swish-rg7-deg4", None, 3).unwrap();
    check("channel-fast-x4", m.input, &m.layers, 4, 10);
}

#[test]
fn channel_fast_merged_and_interleaved_maps_network_c() {
    let (input, layers) = network_c(&mut Rng(13));
    let net = Network::from_layers(input, &layers).unwrap();
    let p = plan("channel-fast".parse::<PackingId>().unwrap(), &net, None).unwrap();
    let stage = |name: &str| p.layers.iter().find(|s| s.name == name).unwrap().counts;
    // layers: l0 conv1, l3 pool1, l4 conv2, l7 pool2, l8 conv3, l10 its activation; two maps after the second pooling, merged by one rotation into one ciphertext: its
    // activation and the next convolution's inputs are one ciphertext
    let conv3 = p
        .layers
        .iter()
        .find(|s| s.name.starts_with("l8"))
        .unwrap()
        .counts;
    assert_eq!(
        conv3.rescale, 1,
        "conv3's 128 planes in one output ciphertext"
    );
    assert_eq!(
        stage("l7").rotation,
        2 * 2 + 1,
        "two maps pooled, one rotation to merge"
    );
    assert_eq!(stage("l10").hsquare, 1);
    check("channel-fast", input, &layers, 1, 14);
}

#[test]
fn channel_fast_interleaved_images_network_c() {
    // 2 images per ciphertext: one full run and a partial one
    let (input, layers) = network_c(&mut Rng(13));
    check("channel-fast-x2", input, &layers, 3, 15);
}
