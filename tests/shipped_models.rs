//! The trained models shipped in `data/mnist/` and `data/cifar10/` are what `data/README.md`
//! says they are: each file has a row there, each row a file, each file its provenance, the
//! conv2 width its name promises and the plain test accuracy its row states, measured again here
//! on the full official test set.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use hejob::model::{file, plain, LayerKind, Model};

/// The shipped models' folders inside `data/`.
const DIRS: [&str; 2] = ["mnist", "cifar10"];

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// Every table row of `data/README.md` that names a model file: its path (relative to `data/`)
/// and the first accuracy after it, hejob's figure, as written (`99.22`).
fn readme_rows() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(data().join("README.md")).unwrap();
    let mut rows = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let path = cells[1].split('`').nth(1).unwrap();
        if !path.ends_with(".h5") || path.starts_with("demo/") {
            continue;
        }
        let figure = cells[2]
            .strip_suffix(" %")
            .unwrap_or_else(|| panic!("data/README.md row of {path}: no accuracy in {line}"));
        let old = rows.insert(path.to_string(), figure.to_string());
        assert!(old.is_none(), "data/README.md lists {path} twice");
    }
    rows
}

fn shipped_files() -> Vec<String> {
    let mut files = Vec::new();
    for dir in DIRS {
        for entry in std::fs::read_dir(data().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".h5") {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    files.sort();
    files
}

/// conv2's width that a shipped file's name promises (the paper's pruning steps).
fn expected_conv2(name: &str) -> usize {
    let suffixes = [
        ("-pruned-r1.h5", 40),
        ("-pruned-r2.h5", 32),
        ("-pruned10.h5", 58),
        ("-pruned20.h5", 52),
        ("-pruned30.h5", 45),
    ];
    match suffixes.iter().find(|(s, _)| name.ends_with(s)) {
        Some(&(_, width)) => width,
        None if name.starts_with("mnist/") => 50,
        None => 64,
    }
}

fn conv2_width(model: &Model) -> usize {
    model
        .layers
        .iter()
        .find_map(|l| match &l.kind {
            LayerKind::Conv(c) if l.name == "conv2" => Some(c.oc),
            _ => None,
        })
        .expect("a conv2 layer")
}

/// The activation a shipped file's name promises: `3layer-swish-rg5-deg2-pruned-r1.h5` →
/// `swish-rg5-deg2`.
fn expected_activation(name: &str) -> &str {
    let stem = name.split('/').nth(1).unwrap().trim_end_matches(".h5");
    let stem = stem.split_once('-').unwrap().1;
    stem.split("-pruned").next().unwrap()
}

#[test]
fn readme_table_and_shipped_files_match() {
    let rows = readme_rows();
    let files = shipped_files();
    assert!(files.len() >= 19, "the paper's 19 networks are shipped");
    for f in &files {
        assert!(rows.contains_key(f), "{f} has no row in data/README.md");
    }
    for path in rows.keys() {
        assert!(
            files.contains(path),
            "data/README.md lists {path}, which is not in data/"
        );
    }
}

#[test]
fn shipped_models_carry_their_provenance_and_shape() {
    let rows = readme_rows();
    for name in shipped_files() {
        let model = file::load(&data().join(&name)).unwrap();
        let p = &model.provenance;
        for key in ["architecture", "epochs", "training", "weights", "pruning"] {
            assert!(p.contains_key(key), "{name}: no provenance {key}");
        }
        assert_eq!(p["activation"], expected_activation(&name), "{name}");
        assert!(
            p["training"].contains("seed 0"),
            "{name}: {}",
            p["training"]
        );
        let pruned = name.contains("-pruned");
        assert_eq!(p["pruning"] != "none", pruned, "{name}: {}", p["pruning"]);
        assert_eq!(conv2_width(&model), expected_conv2(&name), "{name}");
        let recorded = format!("{}% (10000 test images, hejob eval)", rows[&name]);
        assert_eq!(p["plain_test_accuracy"], recorded, "{name}");
    }
}

#[test]
fn shipped_accuracies_are_measured_again() {
    let rows = readme_rows();
    let root = common::datasets_dir();
    let mut test_sets = BTreeMap::new();
    for name in shipped_files() {
        let model = file::load(&data().join(&name)).unwrap();
        let images = test_sets
            .entry(model.dataset.to_string())
            .or_insert_with(|| model.dataset.load_test(&root).unwrap());
        let (n, accuracy) = plain::accuracy(&model, images, None);
        assert_eq!(n, 10_000);
        assert_eq!(format!("{:.2}", 100.0 * accuracy), rows[&name], "{name}");
    }
}
