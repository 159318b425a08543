//! `hejob model import`: ONNX graphs built with the `onnx` package (tests/onnx/onnx_tools.py)
//! import to models whose logits equal onnxruntime's, run encrypted, and every graph hejob
//! cannot run is refused by node, in one line, before anything is written.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/onnx/onnx_tools.py");

fn hejob(args: &[&str]) -> Output {
    common::hejob_command()
        .args(args)
        .output()
        .expect("run hejob")
}

fn python(args: &[&str]) -> Output {
    let out = Command::new("python3")
        .arg(TOOLS)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "onnx_tools.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The fixture graphs, made once per test run.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        python(&["fixtures", dir.path().to_str().unwrap()]);
        dir
    })
    .path()
}

fn fixture(name: &str) -> String {
    fixtures()
        .join(format!("{name}.onnx"))
        .to_string_lossy()
        .into_owned()
}

fn import(onnx: &str, dataset: &str, out: &Path) -> Output {
    hejob(&[
        "model",
        "import",
        "--onnx",
        onnx,
        "--dataset",
        dataset,
        "--out",
        out.to_str().unwrap(),
    ])
}

fn imported(onnx: &str, dataset: &str, out: &Path) {
    let o = import(onnx, dataset, out);
    assert!(
        o.status.success(),
        "import {onnx}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn logits(v: &serde_json::Value) -> Vec<Vec<f64>> {
    v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// hejob's plain logits of a model file, on the first `n` test images.
fn hejob_logits(model: &Path, n: usize) -> Vec<Vec<f64>> {
    let data = common::datasets_dir();
    let limit = n.to_string();
    logits(&json(&hejob(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--limit",
        &limit,
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
        "--logits",
    ])))
}

/// onnxruntime's outputs of a graph on the same images, preprocessed the same way.
fn onnxruntime_logits(onnx: &str, dataset: &str, n: usize) -> Vec<Vec<f64>> {
    let data = common::datasets_dir();
    let out = python(&["run", onnx, dataset, data.to_str().unwrap(), &n.to_string()]);
    logits(&serde_json::from_slice(&out.stdout).unwrap())
}

/// The largest difference between two sets of logits, relative to 1 or the logit's size.
fn largest_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs() / p.abs().max(1.0))
        })
        .fold(0.0, f64::max)
}

/// A model's layer kinds, in order, separated by spaces.
fn kinds(m: &hejob::model::Model) -> String {
    let all: Vec<&str> = m.layers.iter().map(|l| l.kind_name()).collect();
    all.join(" ")
}

fn argmax(l: &[f64]) -> usize {
    (0..l.len()).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap()
}

#[test]
fn every_supported_operator_imports_and_matches_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    for (name, dataset, kinds_want) in [
        (
            "all_ops",
            "mnist",
            "conv batchnorm activation avgpool conv activation flatten dense activation dense activation dense",
        ),
        (
            "cifar_ops",
            "cifar10",
            "conv batchnorm activation avgpool conv batchnorm activation global_avgpool dense",
        ),
    ] {
        let out = dir.path().join(format!("{name}.h5"));
        imported(&fixture(name), dataset, &out);
        let m = hejob::model::file::load(&out).unwrap();
        assert_eq!(kinds(&m), kinds_want, "{name}");
        assert_eq!(m.provenance["source"], fixture(name));
        assert_eq!(m.provenance["source_format"], "ONNX, opset 17");
        assert_eq!(m.provenance["source_md5"].len(), 32);
        assert!(
            m.provenance["onnx_nodes"].starts_with("conv1 <- /conv_"),
            "{name}"
        );
        let n = 25;
        let diff = largest_difference(
            &hejob_logits(&out, n),
            &onnxruntime_logits(&fixture(name), dataset, n),
        );
        assert!(
            diff <= 1e-5,
            "{name}: logits differ from onnxruntime's by {diff:e}"
        );
    }
    // the polynomials, each from its spelling: x * x; 0.1 + 0.5 x + 0.2 x ** 2 (Pow); a module
    // of Neg, Div, Sub and Constant nodes; Horner's products and sums
    let m = hejob::model::file::load(&dir.path().join("all_ops.h5")).unwrap();
    let polys: Vec<(String, Vec<f64>)> = m
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            hejob::model::LayerKind::Activation(hejob::model::Activation::Poly(c), name) => {
                Some((name.clone(), c.clone()))
            }
            _ => None,
        })
        .collect();
    let f32s = |c: &[f64]| -> Vec<f64> { c.iter().map(|&v| v as f32 as f64).collect() };
    assert_eq!(polys[0], ("square".to_string(), vec![0.0, 0.0, 1.0]));
    assert_eq!(polys[1].0, "poly-deg2");
    assert_eq!(polys[1].1, f32s(&[0.1, 0.5, 0.2]));
    assert_eq!(polys[2].0, "poly-deg3");
    for (got, want) in polys[2].1.iter().zip([0.05, 0.6, 0.1, -0.01]) {
        assert!((got - want).abs() < 1e-7, "{:?}", polys[2].1);
    }
    assert_eq!(polys[3].1, f32s(&[0.0, 1.0, 0.25]));
}

#[test]
fn weights_in_an_external_data_file_import_as_inline_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (inline, external) = (dir.path().join("a.h5"), dir.path().join("b.h5"));
    imported(&fixture("all_ops"), "mnist", &inline);
    imported(&fixture("external"), "mnist", &external);
    let (a, b) = (
        hejob::model::file::load(&inline).unwrap(),
        hejob::model::file::load(&external).unwrap(),
    );
    assert_eq!(a.layers, b.layers);
}

/// Networks as real exporters wrote them, committed in tests/onnx/:
/// - docs/examples/export_pytorch.py under PyTorch 2.15: its default exporter (torch.export,
///   opset 20, weights in `pytorch_dynamo.onnx.data`) and the TorchScript one (`dynamo=False`:
///   Constant nodes, Flatten); both fold each batch norm into its convolution;
/// - docs/examples/export_keras.py under TensorFlow 2.21 and tf2onnx 1.17, for MNIST and
///   CIFAR-10: NHWC inputs, Transposes around the polynomials, a one-channel image turned
///   around by a Reshape, and a flatten in NHWC order through Shape, Gather, Cast, Slice and
///   Concat.
#[test]
fn networks_exported_by_pytorch_and_keras_import_and_match_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/onnx");
    let torch = "conv activation conv activation flatten dense";
    let keras = "conv activation avgpool conv activation flatten dense";
    for (name, dataset, producer, kinds_want) in [
        ("pytorch_dynamo", "mnist", "pytorch 2.15", torch),
        ("pytorch_legacy", "mnist", "pytorch 2.15", torch),
        ("keras_mnist", "mnist", "tf2onnx 1.17", keras),
        ("keras_cifar10", "cifar10", "tf2onnx 1.17", keras),
    ] {
        let onnx = here.join(format!("{name}.onnx"));
        let onnx = onnx.to_str().unwrap();
        let out = dir.path().join(format!("{name}.h5"));
        imported(onnx, dataset, &out);
        let m = hejob::model::file::load(&out).unwrap();
        assert!(
            m.provenance["onnx_producer"].starts_with(producer),
            "{name}"
        );
        assert_eq!(kinds(&m), kinds_want, "{name}");
        // each module's Python-float coefficients, stored as float32 constants
        for l in &m.layers {
            if let hejob::model::LayerKind::Activation(hejob::model::Activation::Poly(c), _) =
                &l.kind
            {
                let table_5_3 = [0.1773f32, 0.5, 0.128, 0.0, -0.001328];
                assert_eq!(c.len(), 5, "{name}");
                for (got, want) in c.iter().zip(table_5_3) {
                    assert!((got - want as f64).abs() <= 1e-9, "{name}: {c:?}");
                }
            }
        }
        let diff = largest_difference(
            &hejob_logits(&out, 25),
            &onnxruntime_logits(onnx, dataset, 25),
        );
        assert!(diff <= 1e-5, "{name}: {diff:e}");
    }
}

#[test]
fn trained_networks_exported_to_onnx_import_to_the_same_network() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for (model, dataset, spelling) in [
        ("data/mnist/3layer-swish-rg7-deg4.h5", "mnist", "mul"),
        ("data/cifar10/4layer-swish-rg7-deg4.h5", "cifar10", "pow"),
    ] {
        let original = root.join(model);
        let onnx = dir.path().join(format!("{dataset}.onnx"));
        let onnx = onnx.to_str().unwrap();
        python(&["from-hejob", original.to_str().unwrap(), onnx, spelling]);
        let out = dir.path().join(format!("{dataset}.h5"));
        imported(onnx, dataset, &out);
        let n = 50;
        let ours = hejob_logits(&out, n);
        let reference = onnxruntime_logits(onnx, dataset, n);
        let diff = largest_difference(&ours, &reference);
        assert!(
            diff <= 1e-5,
            "{model}: differs from onnxruntime's by {diff:e}"
        );
        // and from the network it came from by the float32 rounding of its weights only
        let before = hejob_logits(&original, n);
        let rounding = largest_difference(&ours, &before);
        assert!(rounding <= 2e-5, "{model}: {rounding:e} from the original");
        let same = ours
            .iter()
            .zip(&before)
            .filter(|(a, b)| argmax(a) == argmax(b))
            .count();
        assert_eq!(same, n, "{model}: predictions changed");
        let (a, b) = (
            hejob::model::file::load(&out).unwrap(),
            hejob::model::file::load(&original).unwrap(),
        );
        assert_eq!(kinds(&a), kinds(&b), "{model}");
    }
}

#[test]
fn an_imported_network_runs_encrypted_with_channel_fast_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small.h5");
    imported(&fixture("small"), "mnist", &out);
    let data = common::datasets_dir();
    for (packing, images) in [("channel-fast", "0,1"), ("batch", "0,1,2")] {
        let v = json(&hejob(&[
            "infer",
            "--model",
            out.to_str().unwrap(),
            "--packing",
            packing,
            "--images",
            images,
            "--data-dir",
            data.to_str().unwrap(),
            "--json",
        ]));
        let tolerance = v["plan"]["logit_tolerance"].as_f64().unwrap();
        for r in v["images"].as_array().unwrap() {
            assert_eq!(r["he_pred"], r["plain_pred"], "{packing}: {r}");
            let e = r["max_abs_error"].as_f64().unwrap();
            assert!(e <= tolerance, "{packing}: error {e} over {tolerance}");
        }
    }
}

fn refused(onnx: &str, dataset: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.h5");
    let o = import(onnx, dataset, &out);
    assert!(!o.status.success(), "{onnx} imported");
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("hejob: error: "), "{err}");
    assert!(!out.exists(), "{onnx}: a model file was written");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{onnx}");
    err
}

#[test]
fn graphs_hejob_cannot_run_are_refused_by_node_before_anything_is_written() {
    for (name, dataset, message) in [
        (
            "maxpool",
            "mnist",
            "node /features/3/MaxPool (MaxPool): max pooling has no polynomial form; use AveragePool",
        ),
        ("sigmoid", "mnist", "node /act/Sigmoid (Sigmoid): Sigmoid has no polynomial form"),
        ("grouped", "mnist", "node /grouped/Conv (Conv): grouped convolution (group 2) is not supported"),
        ("asymmetric", "mnist", "node /asym/Conv (Conv): asymmetric padding [0, 0, 1, 1] is not supported"),
        ("dilated", "mnist", "node /dil/Conv (Conv): dilation [2, 2] is not supported"),
        (
            "fractional_pow",
            "mnist",
            "node /act/Pow (Pow): exponent 2.5 is not a whole number from 0 to 16",
        ),
        ("two_tensors", "mnist", "node /gate/Mul (Mul): multiplies two different tensors"),
        ("residual", "mnist", "node /res/Add (Add): adds two different tensors"),
        ("pad_pool", "mnist", "node /pool/AveragePool (AveragePool): padded pooling (pads [1, 1, 1, 1])"),
        ("reshape_map", "mnist", "node /view/Reshape (Reshape): reshapes to [1, 1, 52, 26]"),
        ("gemm_trans", "mnist", "node /fc/Gemm (Gemm): multiplies a constant by the image"),
        (
            "transpose",
            "mnist",
            "node /swap/Transpose (Transpose): permutation [0, 1, 3, 2]: only NCHW ↔ NHWC",
        ),
        (
            "softmax",
            "mnist",
            "node /probs/Softmax (Softmax): softmax has no polynomial form; export the network \
             without it",
        ),
        ("classes", "mnist", "the network outputs 7×1×1, but there are 10 classes"),
        (
            "wrong_input",
            "mnist",
            "graph input 'input' has shape [?, 3, 32, 32], but mnist images are [N, 1, 28, 28]",
        ),
        ("all_ops", "cifar10", "graph input 'input' has shape [?, 1, 28, 28]"),
        (
            "escape",
            "mnist",
            "external data at \"../external.onnx.data\", outside the model's folder",
        ),
    ] {
        let onnx = fixture(&format!("refuse_{name}"));
        let onnx = if name == "all_ops" { fixture(name) } else { onnx };
        let err = refused(&onnx, dataset);
        assert!(
            err.contains(message) && err.contains(&onnx),
            "{name}: {err}"
        );
    }
}

#[test]
fn damaged_and_foreign_files_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(fixture("all_ops")).unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let text = dir.path().join("notes.onnx");
    std::fs::write(&text, "a network, in words\n").unwrap();
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist/3layer-square.h5");
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    for file in [&truncated, &text, &model, &empty] {
        let err = refused(file.to_str().unwrap(), "mnist");
        assert!(err.contains("not an ONNX model"), "{err}");
    }
    let err = refused(dir.path().join("absent.onnx").to_str().unwrap(), "mnist");
    assert!(err.contains("cannot be read"), "{err}");
}

#[test]
fn an_import_writes_over_no_file_but_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.h5");
    std::fs::write(&notes, "keep me").unwrap();
    let o = import(&fixture("cifar_ops"), "cifar10", &notes);
    assert!(!o.status.success());
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "keep me");
    // the ONNX file itself is never the output
    let onnx = dir.path().join("net.onnx");
    std::fs::copy(fixture("cifar_ops"), &onnx).unwrap();
    let o = import(onnx.to_str().unwrap(), "cifar10", &onnx);
    assert!(!o.status.success());
    assert_eq!(
        std::fs::read(&onnx).unwrap(),
        std::fs::read(fixture("cifar_ops")).unwrap()
    );
}

#[test]
fn relu_imports_for_plain_baselines_and_the_plan_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("relu.h5");
    imported(&fixture("relu"), "mnist", &out);
    let diff = largest_difference(
        &hejob_logits(&out, 10),
        &onnxruntime_logits(&fixture("relu"), "mnist", 10),
    );
    assert!(diff <= 1e-5, "relu: {diff:e}");
    let o = hejob(&[
        "plan",
        "--model",
        out.to_str().unwrap(),
        "--packing",
        "batch",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("act1") && err.contains("not a polynomial"),
        "{err}"
    );
}

#[test]
fn a_network_too_deep_for_128_bit_parameters_is_reported_by_plan() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deep.h5");
    imported(&fixture("deep"), "mnist", &out);
    let o = hejob(&[
        "plan",
        "--model",
        out.to_str().unwrap(),
        "--packing",
        "batch",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "planned");
    assert!(
        err.contains(
            "the network is 29 levels deep, but 128-bit CKKS parameters hold at most depth 25"
        ),
        "{err}"
    );
}
