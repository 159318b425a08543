//! Planning: the paper's operation counts, parameter choice, and clear errors before any key.

mod common;

use hejob::he::packing::PackingId;
use hejob::he::{plan::plan, Network};
use hejob::model::arch::{random_model, Arch};
use hejob::model::{Activation, Layer, LayerKind, Shape};

fn mnist(act: &str, conv2: usize) -> Network {
    Network::from_model(&random_model(Arch::Mnist3Layer, act, Some(conv2), 1).unwrap()).unwrap()
}

#[test]
fn channel_counts_of_the_mnist_3layer_cnn_decompose_as_the_paper_states() {
    for c2 in [50usize, 40, 32] {
        let p = plan(
            "channel".parse::<PackingId>().unwrap(),
            &mnist("square", c2),
            None,
        )
        .unwrap();
        let t = p.totals;
        let c2 = c2 as u64;
        assert_eq!(t.rotation, 25 + 125 + c2 + 10 * 13, "C2={c2}");
        assert_eq!(t.hmulplain, 125 + 125 * c2 + 10);
        assert_eq!(t.hsquare, 5 + c2);
        assert_eq!(t.relinearize, 5 + c2);
        assert_eq!(t.rescale, 5 + 5 + 2 * c2 + 10);
        assert_eq!(p.params.poly_modulus_degree, 16384);
        assert_eq!(p.slots, 8192);
    }
    let paper = plan(
        "channel".parse::<PackingId>().unwrap(),
        &mnist("square", 50),
        None,
    )
    .unwrap();
    assert_eq!(
        (
            paper.totals.rotation,
            paper.totals.hmulplain,
            paper.totals.rescale
        ),
        (330, 6385, 120)
    );
}

#[test]
fn channel_fast_counts_of_the_mnist_3layer_cnn() {
    for c2 in [50usize, 40, 32] {
        let p = plan(
            "channel-fast-im2col".parse::<PackingId>().unwrap(),
            &mnist("square", c2),
            None,
        )
        .unwrap();
        let stage = |name: &str| p.layers.iter().find(|s| s.name == name).unwrap().counts;
        // conv1 from the client's 25 im2col ciphertexts: one product each, no rotation
        assert_eq!(p.input_ciphertexts, 25, "C2={c2}");
        let conv1 = stage("conv1+bn1");
        assert_eq!((conv1.hmulplain, conv1.rotation), (25, 0));
        // conv2 in one ciphertext: 5 block steps × 25 kernel offsets, 23 rotations (kernel
        // rows split 3 + 2 between baby and giant steps: 3·5 − 1 baby, 5·2 − 1 giant)
        let conv2 = stage("conv2+bn2");
        assert_eq!(
            (conv2.hmulplain, conv2.rotation, conv2.rescale),
            (125, 23, 1)
        );
        // fc: 16 diagonals (10 outputs padded to 16), 3 baby + 3 giant steps, then 9 to add
        // the 8192 slots period by period
        let fc = stage("fc");
        assert_eq!((fc.hmulplain, fc.rotation), (16, 15));
        // one ciphertext through each activation
        assert_eq!((p.totals.hsquare, p.totals.relinearize), (2, 2));
        assert_eq!(p.totals.rotation, 38);
        assert_eq!(p.params.poly_modulus_degree, 16384);
        // every weight plaintext once: 25 + 125 + 16 products and 3 biases
        assert_eq!(p.memory.stored_plaintexts, 169);

        // from the image's 4 phases (stride 2): conv1 is a 3×3 convolution over them, 4 × 9
        // products of which 11 fall on no 5×5 kernel offset (phases 1 of a row or column
        // reach offset 5), and each of the 8 nonzero offsets one giant-step rotation
        let q = plan(
            "channel-fast".parse::<PackingId>().unwrap(),
            &mnist("square", c2),
            None,
        )
        .unwrap();
        assert_eq!(q.input_ciphertexts, 4);
        let conv1 = q.layers[0].counts;
        assert_eq!(
            (conv1.hmulplain, conv1.skipped_zero, conv1.rotation),
            (25, 11, 8)
        );
        assert_eq!(q.params, p.params);
    }
    // the phase planes take 14 × 14 slots where the im2col ones took 12 × 12, so a ciphertext
    // holds 41 blocks instead of 56: 32 channels still leave conv2 as it was, 8 rotations
    // more in all
    let q = plan(
        "channel-fast".parse::<PackingId>().unwrap(),
        &mnist("square", 32),
        None,
    )
    .unwrap();
    let conv2 = q
        .layers
        .iter()
        .find(|s| s.name == "conv2+bn2")
        .unwrap()
        .counts;
    assert_eq!((conv2.hmulplain, conv2.rotation), (125, 23));
    assert_eq!(q.totals.rotation, 38 + 8);
    let faithful = plan(
        "channel".parse::<PackingId>().unwrap(),
        &mnist("swish-rg7-deg4", 50),
        None,
    )
    .unwrap();
    // the least server work (im2col), and the fewest input ciphertexts (phases)
    for (name, rotations, products) in [("channel-fast-im2col", 8, 30), ("channel-fast", 5, 20)] {
        let fast = plan(
            name.parse::<PackingId>().unwrap(),
            &mnist("swish-rg7-deg4", 50),
            None,
        )
        .unwrap();
        assert_eq!(fast.depth, faithful.depth);
        assert_eq!(fast.params, faithful.params);
        assert!(fast.totals.rotation * rotations < faithful.totals.rotation);
        assert!(fast.totals.hmulplain * products < faithful.totals.hmulplain);
    }
}

#[test]
fn batch_counts_follow_table_4_1() {
    let p = plan(
        "batch".parse::<PackingId>().unwrap(),
        &mnist("square", 50),
        None,
    )
    .unwrap();
    // conv: OC·IC·KH·KW·OH·OW; FC: OU·IU; square: one per value
    assert_eq!(
        p.totals.hmulplain,
        5 * 25 * 144 + 50 * 5 * 25 * 16 + 10 * 800
    );
    assert_eq!(p.totals.hsquare, 5 * 144 + 50 * 16);
    assert_eq!(p.totals.rotation, 0);
    assert!(p.rotation_steps.is_empty());
    assert_eq!((p.images_per_run, p.input_ciphertexts), (8192, 784));
}

#[test]
fn deeper_activations_cost_more_levels_and_parameters_stay_secure() {
    let square = plan(
        "channel".parse::<PackingId>().unwrap(),
        &mnist("square", 50),
        None,
    )
    .unwrap();
    let deg2 = plan(
        "channel".parse::<PackingId>().unwrap(),
        &mnist("swish-rg5-deg2", 50),
        None,
    )
    .unwrap();
    let deg4 = plan(
        "channel".parse::<PackingId>().unwrap(),
        &mnist("swish-rg7-deg4", 50),
        None,
    )
    .unwrap();
    assert_eq!((square.depth, deg2.depth, deg4.depth), (5, 5, 7));
    for p in [&square, &deg2, &deg4] {
        let max = hejob::seal::CkksParams::max_bits_128(p.params.poly_modulus_degree).unwrap();
        assert!(p.params.total_bits() <= max);
        assert_eq!(p.params.coeff_modulus_bits.len(), p.depth + 2);
    }
}

#[test]
fn a_fixed_scale_takes_the_compact_chain_in_the_smallest_ring() {
    // depth 5 at 2^28: [28 + h, 28 × 5, 28 + h] fits N = 8192's 218 bits with h = 11
    let p = plan(
        "channel-fast-x2".parse::<PackingId>().unwrap(),
        &mnist("square", 50),
        Some(28),
    )
    .unwrap();
    assert_eq!(p.params.poly_modulus_degree, 8192);
    assert_eq!(p.params.scale_bits, 28);
    assert_eq!(
        p.params.coeff_modulus_bits,
        vec![39, 28, 28, 28, 28, 28, 39]
    );
    // depth 7 does not fit N = 8192 even with 10 bits of headroom (226 bits): N = 16384,
    // with the full 20 bits
    let p = plan(
        "channel-fast".parse::<PackingId>().unwrap(),
        &mnist("swish-rg7-deg4", 50),
        Some(28),
    )
    .unwrap();
    assert_eq!(p.params.poly_modulus_degree, 16384);
    assert_eq!(p.params.coeff_modulus_bits[0], 48);
    assert_eq!(p.params.coeff_modulus_bits.last(), Some(&48));
    // the default search is not changed by the option's existence
    let p = plan(
        "channel-fast-x2".parse::<PackingId>().unwrap(),
        &mnist("square", 50),
        None,
    )
    .unwrap();
    assert_eq!(
        p.params.coeff_modulus_bits,
        vec![60, 40, 40, 40, 40, 40, 60]
    );
    // a fixed 40-bit scale is the default chain; plans at other scales differ, digests too
    let fixed = |s| {
        plan(
            "channel-fast-x2".parse::<PackingId>().unwrap(),
            &mnist("square", 50),
            Some(s),
        )
    };
    assert_eq!(fixed(40).unwrap().digest(), p.digest());
    let q = fixed(36).unwrap();
    assert_eq!(
        q.params.coeff_modulus_bits,
        vec![56, 36, 36, 36, 36, 36, 56]
    );
    assert_ne!(q.digest(), p.digest());
    let err = plan(
        "channel".parse::<PackingId>().unwrap(),
        &mnist("square", 50),
        Some(12),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("scale_bits 12 is outside"), "{err}");
}

fn cifar(act: &str) -> Network {
    Network::from_model(&random_model(Arch::Cifar10FourLayer, act, None, 1).unwrap()).unwrap()
}

/// A modulus chain written out: `[first, scale × depth, special]`.
fn bits(first: i32, scale: i32, depth: usize, special: i32) -> Vec<i32> {
    let mut v = vec![first];
    v.extend(std::iter::repeat_n(scale, depth));
    v.push(special);
    v
}

#[test]
fn the_default_search_raises_a_tight_scale_with_the_compact_chain_in_the_same_ring() {
    let batch = "batch".parse::<PackingId>().unwrap();
    // depth 10: the standard chain holds 2^32 in N = 16384 ([52, 32×10, 60]); the compact one
    // 2^34 in the same ring and the same number of primes
    let p = plan(batch, &cifar("swish-rg7-deg4"), None).unwrap();
    assert_eq!((p.depth, p.params.poly_modulus_degree), (10, 16384));
    assert_eq!(p.params.coeff_modulus_bits, bits(49, 34, 10, 49));
    // depth 7 already has 2^40 in the standard chain, which stays
    let p = plan(batch, &cifar("square"), None).unwrap();
    assert_eq!((p.depth, p.params.poly_modulus_degree), (7, 16384));
    assert_eq!(p.params.coeff_modulus_bits, bits(60, 40, 7, 60));
}

#[test]
fn batch_axis_convolution_stages_are_pipelined_so_no_intermediate_map_is_held_whole() {
    let p = plan(
        "batch".parse::<PackingId>().unwrap(),
        &cifar("swish-rg7-deg4"),
        None,
    )
    .unwrap();
    let ct = |count: u64, primes: u64| count * 2 * 16384 * primes * 8;
    // the input (3×32×32 at the top level, 11 primes) is live at the start ...
    let input = ct(3 * 32 * 32, 11);
    // ... but the first stage's whole output (32×16×16 after 3 levels, 8 primes) never is
    let first_map = ct(32 * 16 * 16, 8);
    let peak = p.memory.evaluation_peak_bytes;
    assert!(peak >= input, "peak {peak} below the input's {input} bytes");
    assert!(
        peak < input + first_map / 2,
        "peak {peak}: the first stage's output ({first_map} bytes) is held whole"
    );
    // and the operations are still those of Table 4.1
    assert_eq!(p.totals.hmulplain, 913_792 + 4_366_336 + 3_981_312 + 1_280);
}

#[test]
fn too_deep_and_non_polynomial_networks_fail_at_planning() {
    let mut layers = Vec::new();
    for i in 0..40 {
        layers.push(Layer::new(
            format!("sq{i}"),
            LayerKind::Activation(Activation::Poly(vec![0.0, 0.0, 1.0]), "square".into()),
        ));
    }
    let net = Network::from_layers(Shape::new(1, 1, 1), &layers).unwrap();
    let err = plan("batch".parse::<PackingId>().unwrap(), &net, None)
        .unwrap_err()
        .to_string();
    // N=32768 holds 881 bits at 128-bit security: [50, 30 × 25, 60] = 860 bits, one more
    // level would be 890
    let (deepest, ring) = hejob::he::plan::deepest(None).unwrap();
    assert_eq!((deepest, ring), (25, 32768));
    assert_eq!(
        err,
        "the network is 40 levels deep, but 128-bit CKKS parameters hold at most depth 25 \
         (N=32768, a 2^30 scale, the lowest searched); use fewer layers or activations of \
         lower degree"
    );
    // one level too many is refused, the deepest that fits is planned
    for (depth, fits) in [(deepest, true), (deepest + 1, false)] {
        let net = Network::from_layers(Shape::new(1, 1, 1), &layers[..depth]).unwrap();
        let planned = plan("batch".parse::<PackingId>().unwrap(), &net, None);
        assert_eq!(planned.is_ok(), fits, "depth {depth}: {:?}", planned.err());
    }
    // past the planner's 64-level probe, and at a fixed scale
    let deep: Vec<Layer> = layers.iter().cycle().take(70).cloned().collect();
    let net = Network::from_layers(Shape::new(1, 1, 1), &deep).unwrap();
    let err = plan("batch".parse::<PackingId>().unwrap(), &net, Some(40))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("the network is more than 64 levels deep")
            && err.contains("(N=32768, the 2^40 scale asked for)"),
        "{err}"
    );

    let relu = Network::from_model(&random_model(Arch::Mnist3Layer, "relu", None, 0).unwrap());
    let err = relu.unwrap_err().to_string();
    assert!(
        err.contains("layer 1 (act1)") && err.contains("not a polynomial"),
        "{err}"
    );
    assert!("diagonal".parse::<PackingId>().is_err());
}

#[test]
fn plan_command_prints_the_json_contract() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.h5");
    let m = m.to_str().unwrap();
    let ok = common::hejob_command()
        .args([
            "model",
            "new",
            "--arch",
            "mnist-3layer",
            "--activation",
            "square",
            "--out",
            m,
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = common::hejob_command()
        .args(["plan", "--model", m, "--packing", "channel", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["params"]["poly_modulus_degree"], 16384);
    // the private-mode upload: one seeded ciphertext of the top level per input, about N
    // coefficients of the data primes' bits (zstd leaves some of each 64-bit word)
    let upload = &v["upload"];
    let per_ct = upload["ciphertext_bytes"].as_u64().unwrap() as f64;
    let bits: i64 = v["params"]["coeff_modulus_bits"].as_array().unwrap()[..]
        .split_last()
        .unwrap()
        .1
        .iter()
        .map(|b| b.as_i64().unwrap())
        .sum();
    let packed = 16384.0 * bits as f64 / 8.0;
    assert!(
        (packed..1.3 * packed).contains(&per_ct),
        "{per_ct} bytes per seeded ciphertext, {packed} of coefficients"
    );
    let inputs = v["input_ciphertexts"].as_u64().unwrap() as f64;
    assert_eq!(upload["per_image_bytes"].as_f64().unwrap(), per_ct * inputs);
    assert_eq!(v["params"]["scale_bits"], 40);
    assert!(v["params"]["coeff_modulus_bits"].is_array());
    assert!(v["rotation_steps"].as_array().unwrap().len() > 50);
    for key in [
        "hmulplain",
        "hsquare",
        "hmul",
        "hadd",
        "rotation",
        "relinearize",
        "rescale",
        "skipped_zero",
    ] {
        assert!(v["totals"][key].is_u64(), "totals.{key}");
    }
    assert_eq!(v["totals"]["rotation"], 330);
    assert!(v["layers"].as_array().unwrap().len() >= 5);
    let bad = common::hejob_command()
        .args(["plan", "--model", m, "--packing", "diagonal"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("unknown packing"));
    // every packing is named, the fast variants too
    assert!(
        err.contains("channel, channel-fast, channel-fast-x2")
            && err.contains("x16, channel-fast-im2col")
    );
    assert!(err.contains("channel-fast-x16-im2col, batch"));
}

/// The cost model on a table where only rotations (1 ms each, at any level) and encryptions
/// (2 ms) cost anything: a run's time is its key-switching rotations in milliseconds, the
/// rank's time is runs × (run + encryption), and the runs in flight that finish soonest are
/// chosen, or one when the memory budget holds no more.
#[test]
fn the_cost_model_by_hand_on_rotations_and_encryptions_alone() {
    use hejob::he::cost::table::{Curve, OPS};
    use hejob::he::cost::{predict, Flight, Layout, Op, OpCosts, Source, CROWDED};
    use std::collections::BTreeMap;
    let curve = Curve {
        primes: vec![1, 40],
        ms: OPS
            .iter()
            .map(|&op| {
                let ms = match op {
                    Op::Rotate => 1.0,
                    Op::Encrypt => 2.0,
                    _ => 0.0,
                };
                (op, vec![ms, ms])
            })
            .collect(),
        slowdown: vec![],
        key_ms_per_mb: 0.0,
    };
    let costs = OpCosts::from_curves(Source::BuiltIn, BTreeMap::from([(16384, curve.clone())]));
    let net = mnist("square", 50);
    let p = plan("channel-fast".parse().unwrap(), &net, None).unwrap();
    assert_eq!(p.params.poly_modulus_degree, 16384);
    let switches = (p.totals.rotation - p.totals.rotation_zero) as f64 / 1e3;
    let inputs = p.input_ciphertexts as f64;
    let layout = |threads, memory_bytes, flight| Layout {
        threads,
        ranks: 1,
        nodes: 1,
        images: 10,
        memory_bytes,
        flight,
    };
    // one thread: everything in sequence
    let one = predict(&p, &net, &costs, &layout(1, u64::MAX, Flight::Auto)).unwrap();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.max(1.0);
    assert!(
        close(one.latency_s, switches),
        "{} vs {switches}",
        one.latency_s
    );
    assert!(close(one.encrypt_s, inputs * 2e-3));
    assert!(close(one.wall_s, 10.0 * (switches + inputs * 2e-3)));
    assert!(close(one.images_per_s, 10.0 / one.wall_s));
    assert_eq!((one.runs_in_flight, one.threads_per_run), (1, 1));
    // each stage: its own key switches, and together the latency
    assert_eq!(one.stages.len(), p.layers.len());
    for (s, layer) in one.stages.iter().zip(&p.layers) {
        assert_eq!((&s.name, s.counts), (&layer.name, layer.counts));
        let own = (layer.counts.rotation - layer.counts.rotation_zero) as f64 / 1e3;
        assert!(close(s.seconds, own), "{}: {} vs {own}", s.name, s.seconds);
    }
    // two threads: one run on both, or two runs on one each, whichever is sooner
    let two = predict(&p, &net, &costs, &layout(2, u64::MAX, Flight::Auto)).unwrap();
    let [a, b] = &two.choices[..] else {
        panic!("{:?}", two.choices)
    };
    assert!(a.latency_s < switches && a.latency_s >= switches / 2.0);
    assert!(close(a.encrypt_s, (inputs / 2.0).ceil() * 2e-3));
    assert!(close(a.rank_s, 10.0 * (a.latency_s + a.encrypt_s)));
    assert!(close(b.latency_s, switches));
    assert!(close(b.rank_s, 5.0 * (switches + inputs * 2e-3)));
    let best = if a.rank_s <= b.rank_s { a } else { b };
    assert_eq!(two.runs_in_flight, best.runs_in_flight);
    let staged: f64 = two.stages.iter().map(|s| s.seconds).sum();
    assert!(
        close(staged, two.latency_s),
        "{staged} vs {}",
        two.latency_s
    );
    assert!(b.peak_rss_gb > a.peak_rss_gb);
    assert!(two.memory_share < 1e-6 && hejob::he::cost::crowding(&two).is_none());
    // a budget that two runs crowd: they are marked, and when asked for, the prediction warns
    // with its share
    let roomy = (a.peak_rss_gb * 1e9 / CROWDED).ceil() as u64 + 1;
    let asked = predict(&p, &net, &costs, &layout(2, roomy, Flight::Fixed(2))).unwrap();
    let [c2] = &asked.choices[..] else {
        panic!("{:?}", asked.choices)
    };
    assert!(c2.fits && c2.crowded, "{c2:?}");
    assert!(close(
        asked.memory_share,
        c2.peak_rss_gb * 1e9 / roomy as f64
    ));
    let warning = hejob::he::cost::crowding(&asked).expect("crowded");
    assert!(
        warning.contains(&format!("{:.0} %", asked.memory_share * 100.0)),
        "{warning}"
    );
    let one = predict(&p, &net, &costs, &layout(2, roomy, Flight::Fixed(1))).unwrap();
    assert!(!one.choices[0].crowded && hejob::he::cost::crowding(&one).is_none());
    // a budget that holds nothing: one run, said not to fit
    let tight = predict(&p, &net, &costs, &layout(2, 1, Flight::Auto)).unwrap();
    assert_eq!(tight.runs_in_flight, 1);
    assert!(tight.choices.iter().all(|c| !c.fits));
    // a fixed number is taken as it is
    let fixed = predict(&p, &net, &costs, &layout(2, u64::MAX, Flight::Fixed(2))).unwrap();
    assert_eq!((fixed.runs_in_flight, fixed.choices.len()), (2, 1));
    // two ranks of one thread, keys at 10 ms per MB to serialize and load: the broadcast costs
    // half of that (rank 0 serializes a piece while the other rank loads the one before), and
    // the other rank starts its runs the load of one key set (8 steps) later
    let mut keyed = curve.clone();
    keyed.key_ms_per_mb = 10.0;
    let costs = OpCosts::from_curves(Source::BuiltIn, BTreeMap::from([(16384, keyed)]));
    let ranks = Layout {
        ranks: 2,
        ..layout(1, u64::MAX, Flight::Auto)
    };
    let r = predict(&p, &net, &costs, &ranks).unwrap();
    let keys_mb = p.memory.evaluation_keys_bytes as f64 / 1e6;
    let steps = p.rotation_steps.len() as f64;
    let set_mb = keys_mb * steps.min(8.0) / (steps + 1.0);
    let (transfer, skew) = (keys_mb * 10e-3 / 2.0, set_mb * 10e-3 / 2.0);
    let rank_s = 5.0 * (switches + inputs * 2e-3);
    assert!(close(r.setup_s, transfer), "{} vs {transfer}", r.setup_s);
    assert!(close(r.wall_s, transfer + skew + rank_s), "{}", r.wall_s);
    assert!(close(r.images_per_s, 5.0 / rank_s));
    assert!(close(r.images_per_s_node, 10.0 / rank_s));
    assert!(close(r.images_per_s_job, 10.0 / (rank_s + skew)));
}
