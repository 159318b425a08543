//! The HDF5 model file: round trips, files written by h5py, and one clear error per defect.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use hejob::data::Dataset;
use hejob::model::arch::{random_model, Arch};
use hejob::model::{file, plain, LayerKind, Model};

fn saved(dir: &Path, arch: Arch, act: &str) -> (PathBuf, Model) {
    let m = random_model(arch, act, None, 3).unwrap();
    let path = dir.join(format!("{}-{act}.h5", arch.name()));
    file::save(&m, &path).unwrap();
    (path, m)
}

fn load_err(path: &Path) -> String {
    file::load(path).expect_err("must be rejected").to_string()
}

#[test]
fn models_round_trip_exactly() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    for (arch, act) in [
        (Arch::Mnist3Layer, "swish-rg7-deg4"),
        (Arch::Cifar10FourLayer, "square"),
        (Arch::Mnist3Layer, "relu"),
        (Arch::Cifar10FourLayer, "swish"),
    ] {
        let (path, m) = saved(dir.path(), arch, act);
        assert_eq!(file::load(&path).unwrap(), m, "{arch:?} {act}");
    }
    let pruned = random_model(Arch::Cifar10FourLayer, "square", Some(45), 1).unwrap();
    let p = dir.path().join("pruned.h5");
    file::save(&pruned, &p).unwrap();
    let loaded = file::load(&p).unwrap();
    assert!(matches!(&loaded.layers[4].kind, LayerKind::Conv(c) if c.oc == 45));
    assert!(!dir.path().join("pruned.h5.tmp").exists());
}

#[test]
fn paper_architectures_have_the_papers_parameter_counts() {
    let _serial = common::serial();
    let count = |m: &Model| -> usize {
        m.layers
            .iter()
            .map(|l| match &l.kind {
                LayerKind::Conv(c) => c.weight.len() + c.bias.len(),
                LayerKind::Dense(d) => d.weight.len() + d.bias.len(),
                LayerKind::BatchNorm(b) => 2 * b.gamma.len(),
                _ => 0,
            })
            .sum()
    };
    assert_eq!(
        count(&random_model(Arch::Mnist3Layer, "square", None, 0).unwrap()),
        14_550
    );
    assert_eq!(
        count(&random_model(Arch::Cifar10FourLayer, "square", None, 0).unwrap()),
        94_986
    );
}

#[test]
fn a_file_written_with_h5py_by_the_documented_example_loads_and_evaluates() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("from-h5py.h5");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/write_model.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg(&out)
        .status()
        .expect("python3");
    assert!(
        status.success(),
        "h5py example failed (is h5py installed? .ci/setup installs it)"
    );
    let m = file::load(&out).unwrap();
    assert_eq!((m.dataset, m.layers.len()), (Dataset::Mnist, 7));
    assert_eq!(
        m.provenance["source"],
        "written by docs/examples/write_model.py"
    );
    let images = Dataset::Mnist.load_test(&common::datasets_dir()).unwrap();
    let (n, _) = plain::accuracy(&m, &images, Some(100));
    assert_eq!(n, 100);
    // and h5py reads ours
    let (ours, _) = saved(dir.path(), Arch::Cifar10FourLayer, "swish-rg5-deg2");
    let read = Command::new("python3")
        .args(["-c", "import h5py,sys; f=h5py.File(sys.argv[1]); print(f.attrs['format'], len(f['layers']), f['layers/000_conv1/weight'].shape, f['layers/002_act1'].attrs['name'])"])
        .arg(&ours)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read.stdout).trim(),
        "hejob-model 14 (32, 3, 3, 3) swish-rg5-deg2"
    );
}

/// Opens a saved model read-write and applies `damage` to it.
fn damaged(dir: &Path, name: &str, damage: impl FnOnce(&hdf5::File)) -> PathBuf {
    let (path, _) = saved(dir, Arch::Mnist3Layer, "square");
    let target = dir.join(name);
    std::fs::rename(&path, &target).unwrap();
    let f = hdf5::File::open_rw(&target).unwrap();
    damage(&f);
    drop(f);
    target
}

#[test]
fn each_defect_is_rejected_with_its_own_message() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let p = damaged(d, "missing.h5", |f| {
        f.group("layers/003_conv2")
            .unwrap()
            .unlink("weight")
            .unwrap()
    });
    let e = load_err(&p);
    assert!(
        e.contains("missing.h5") && e.contains("layer 3 (conv2): missing dataset 'weight'"),
        "{e}"
    );

    let p = damaged(d, "shape.h5", |f| {
        let g = f.group("layers/003_conv2").unwrap();
        g.unlink("weight").unwrap();
        let w = ndarray::Array4::<f64>::zeros((50, 6, 5, 5));
        g.new_dataset_builder()
            .with_data(&w)
            .create("weight")
            .unwrap();
    });
    let e = load_err(&p);
    assert!(
        e.contains("layer 3 (conv2): expects 6 input channels, gets 5×12×12"),
        "{e}"
    );

    let p = damaged(d, "nan.h5", |f| {
        let ds = f.dataset("layers/007_fc/bias").unwrap();
        let mut b = ds.read_raw::<f64>().unwrap();
        b[4] = f64::NAN;
        ds.write_raw(&b).unwrap();
    });
    let e = load_err(&p);
    assert!(e.contains("layer 7 (fc): bias[4] is NaN"), "{e}");

    let p = damaged(d, "inf.h5", |f| {
        let ds = f.dataset("layers/001_bn1/running_var").unwrap();
        ds.write_raw(&[1.0, 1.0, f64::INFINITY, 1.0, 1.0]).unwrap();
    });
    let e = load_err(&p);
    assert!(e.contains("layer 1 (bn1): running_var[2] is inf"), "{e}");

    let p = damaged(d, "fc.h5", |f| {
        let g = f.group("layers/007_fc").unwrap();
        g.unlink("bias").unwrap();
        g.new_dataset_builder()
            .with_data(&[0.0f64; 9][..])
            .create("bias")
            .unwrap();
    });
    let e = load_err(&p);
    assert!(
        e.contains("layer 7 (fc): bias has 9 values, expected 10"),
        "{e}"
    );

    let p = damaged(d, "version.h5", |f| {
        f.attr("format_version")
            .unwrap()
            .write_scalar(&7i64)
            .unwrap();
    });
    let e = load_err(&p);
    assert!(e.contains("format_version 7 is not supported"), "{e}");

    let p = damaged(d, "kind.h5", |f| {
        f.group("layers/005_act2")
            .unwrap()
            .attr("kind")
            .unwrap()
            .write_scalar(&"maxpool".parse::<hdf5::types::VarLenUnicode>().unwrap())
            .unwrap();
    });
    let e = load_err(&p);
    assert!(
        e.contains("layer 5 (act2): unknown layer kind \"maxpool\""),
        "{e}"
    );

    let p = damaged(d, "classes.h5", |f| {
        f.group("layers").unwrap().unlink("006_flatten").unwrap();
    });
    let e = load_err(&p);
    assert!(
        e.contains("expects a flat input") && e.contains("add a flatten layer"),
        "{e}"
    );

    // shapes are checked before anything is allocated: a dense weight that declares
    // 100000×100000 values (chunked, so the file stays small)
    let p = damaged(d, "huge.h5", |f| {
        let g = f.group("layers/007_fc").unwrap();
        g.unlink("weight").unwrap();
        g.new_dataset::<f64>()
            .chunk((100, 100))
            .shape((100_000, 100_000))
            .create("weight")
            .unwrap();
    });
    assert!(std::fs::metadata(&p).unwrap().len() < 1 << 20);
    let e = load_err(&p);
    assert!(
        e.contains("huge.h5")
            && e.contains("layer 7 (fc): dataset 'weight' declares shape [100000, 100000]"),
        "{e}"
    );
    for command in [
        &["model", "info", "--model"][..],
        &["plan", "--packing", "channel", "--model"],
        &["eval", "--model"],
    ] {
        let out = common::hejob_command()
            .args(command)
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{command:?}: not a clean refusal"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.trim().lines().count() == 1 && err.contains("declares shape"),
            "{command:?}: {err}"
        );
    }

    // a padding so large that the output size would wrap around
    let p = damaged(d, "padding.h5", |f| {
        let g = f.group("layers/000_conv1").unwrap();
        g.attr("padding")
            .unwrap()
            .write_scalar(&1_000_000_000_000i64)
            .unwrap();
    });
    let e = load_err(&p);
    assert!(
        e.contains("layer 0 (conv1): its output") && e.contains("more than the 67108864 values"),
        "{e}"
    );

    // a model without classes
    let p = damaged(d, "no-classes.h5", |f| {
        f.delete_attr("classes").unwrap();
        f.new_attr::<hdf5::types::VarLenUnicode>()
            .shape(0)
            .create("classes")
            .unwrap();
    });
    let e = load_err(&p);
    assert!(e.contains("0 classes, but mnist has 10"), "{e}");

    let not_h5 = d.join("text.h5");
    std::fs::write(&not_h5, "hello").unwrap();
    let e = load_err(&not_h5);
    assert!(
        e.contains("text.h5") && e.contains("not a readable HDF5 file"),
        "{e}"
    );
    let e = load_err(&d.join("absent.h5"));
    assert!(e.contains("absent.h5: no such file"), "{e}");

    let other = d.join("other.h5");
    hdf5::File::create(&other).unwrap();
    let e = load_err(&other);
    assert!(e.contains("missing attribute 'format'"), "{e}");
}

#[test]
fn unknown_activation_names_are_errors() {
    let _serial = common::serial();
    let e = random_model(Arch::Mnist3Layer, "tanh", None, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown activation \"tanh\""), "{e}");
}

#[test]
fn plain_accuracy_over_the_whole_mnist_test_set() {
    let _serial = common::serial();
    let m = random_model(Arch::Mnist3Layer, "swish-rg7-deg4", None, 5).unwrap();
    let images = Dataset::Mnist.load_test(&common::datasets_dir()).unwrap();
    let (n, acc) = plain::accuracy(&m, &images, None);
    assert_eq!(n, 10_000);
    assert!((0.0..=1.0).contains(&acc));
    // the folded network classifies every image the same way
    let folded = Model {
        layers: hejob::model::fold::fold_for_he(&m.layers, m.input),
        ..m.clone()
    };
    let a = plain::logits(&m, &images, 0..500);
    let b = plain::logits(&folded, &images, 0..500);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(plain::argmax(x), plain::argmax(y));
        assert!(x
            .iter()
            .zip(y)
            .all(|(p, q)| (p - q).abs() < 1e-9 * p.abs().max(1.0)));
    }
}
