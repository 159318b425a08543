//! Dataset readers on the official files and on small files written here in the official
//! formats; every malformed input is its own clear error naming the file.

mod common;

use std::io::Write;
use std::path::Path;

use hejob::data::{checksums, cifar10, mnist, Dataset, Images, Split};

fn idx_images(n: u32, rows: u32, magic: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [magic, n, rows, 28] {
        v.extend(w.to_be_bytes());
    }
    v.extend((0..n as usize * rows as usize * 28).map(|i| (i % 251) as u8));
    v
}

fn idx_labels(n: u32, magic: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [magic, n] {
        v.extend(w.to_be_bytes());
    }
    v.extend((0..n).map(|i| (i % 10) as u8));
    v
}

fn err_text<T: std::fmt::Debug>(r: Result<T, hejob::data::DataError>) -> String {
    r.expect_err("must be rejected").to_string()
}

#[test]
fn mnist_idx_files_are_parsed_and_validated() {
    let p = Path::new("small-images");
    assert_eq!(
        mnist::parse_images(p, &idx_images(3, 28, 0x803), 3)
            .unwrap()
            .len(),
        3 * 784
    );
    assert_eq!(
        mnist::parse_labels(p, &idx_labels(3, 0x801), 3).unwrap(),
        vec![0, 1, 2]
    );

    let e = err_text(mnist::parse_images(p, &idx_images(3, 28, 0x801), 3));
    assert!(
        e.contains("small-images") && e.contains("bad magic number"),
        "{e}"
    );
    let mut truncated = idx_images(3, 28, 0x803);
    truncated.truncate(100);
    let e = err_text(mnist::parse_images(p, &truncated, 3));
    assert!(e.contains("truncated"), "{e}");
    let e = err_text(mnist::parse_images(p, &idx_images(3, 28, 0x803)[..10], 3));
    assert!(e.contains("truncated IDX header"), "{e}");
    let e = err_text(mnist::parse_images(p, &idx_images(3, 27, 0x803), 3));
    assert!(e.contains("27×28"), "{e}");
    let e = err_text(mnist::parse_labels(p, &idx_labels(4, 0x801), 3));
    assert!(e.contains("holds 4 labels, expected 3"), "{e}");
    let e = err_text(mnist::parse_labels(p, &idx_labels(3, 0x803), 3));
    assert!(e.contains("bad magic number"), "{e}");
    let mut bad_label = idx_labels(3, 0x801);
    bad_label[9] = 12;
    let e = err_text(mnist::parse_labels(p, &bad_label, 3));
    assert!(e.contains("not a digit"), "{e}");
}

#[test]
fn mnist_test_set_written_in_official_format_loads_raw_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    let mnist_dir = dir.path().join("mnist");
    std::fs::create_dir(&mnist_dir).unwrap();
    let (images, labels) = mnist::files(Split::Test);
    std::fs::write(mnist_dir.join(images), idx_images(10_000, 28, 0x803)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(mnist_dir.join(format!("{labels}.gz"))).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&idx_labels(10_000, 0x801)).unwrap();
    gz.finish().unwrap();
    let set = Dataset::Mnist.load_test(dir.path()).unwrap();
    assert_eq!((set.len(), set.image(1)[0]), (10_000, (784 % 251) as u8));

    // a wrong label count in the real layout is its own error
    std::fs::remove_file(mnist_dir.join(format!("{labels}.gz"))).unwrap();
    std::fs::write(mnist_dir.join(labels), idx_labels(9_999, 0x801)).unwrap();
    let e = err_text(Dataset::Mnist.load_test(dir.path()));
    assert!(
        e.contains("t10k-labels-idx1-ubyte") && e.contains("holds 9999 labels"),
        "{e}"
    );
    // a gzip file that is not gzip
    std::fs::remove_file(mnist_dir.join(labels)).unwrap();
    std::fs::write(mnist_dir.join(format!("{labels}.gz")), b"garbage").unwrap();
    let e = err_text(Dataset::Mnist.load_test(dir.path()));
    assert!(e.contains("not a valid gzip file"), "{e}");
    // a gzip bomb (65 MiB of zeros in 64 KiB) is refused once its limit is passed, not read
    // to its end
    let mut bomb = flate2::write::GzEncoder::new(
        std::fs::File::create(mnist_dir.join(format!("{labels}.gz"))).unwrap(),
        flate2::Compression::best(),
    );
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..65 {
        bomb.write_all(&zeros).unwrap();
    }
    bomb.finish().unwrap();
    let e = err_text(Dataset::Mnist.load_test(dir.path()));
    assert!(
        e.contains("t10k-labels-idx1-ubyte.gz")
            && e.contains("decompresses to more than the 67108864 bytes"),
        "{e}"
    );
    // a missing file says where to get it
    std::fs::remove_file(mnist_dir.join(format!("{labels}.gz"))).unwrap();
    let e = err_text(Dataset::Mnist.load_test(dir.path()));
    assert!(
        e.contains("not found") && e.contains("datasets fetch"),
        "{e}"
    );
}

#[test]
fn cifar10_batches_are_validated() {
    let p = Path::new("test_batch.bin");
    let mut into = Images {
        shape: Dataset::Cifar10.shape(),
        pixels: vec![],
        labels: vec![],
    };
    let mut batch: Vec<u8> = (0..10_000)
        .flat_map(|i| std::iter::once((i % 10) as u8).chain(std::iter::repeat_n(7u8, 3072)))
        .collect();
    cifar10::parse_batch(p, &batch, &mut into).unwrap();
    assert_eq!((into.len(), into.pixels.len()), (10_000, 10_000 * 3072));
    let e = err_text(cifar10::parse_batch(
        p,
        &batch[..batch.len() - 5],
        &mut into,
    ));
    assert!(
        e.contains("test_batch.bin") && e.contains("truncated"),
        "{e}"
    );
    batch[3073 * 5] = 10;
    let e = err_text(cifar10::parse_batch(p, &batch, &mut into));
    assert!(e.contains("record 5 has label 10"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = err_text(Dataset::Cifar10.load_test(dir.path()));
    assert!(
        e.contains("test_batch.bin") && e.contains("not found"),
        "{e}"
    );
    assert_eq!(cifar10::files(Split::Train).len(), 5);
}

#[test]
fn official_test_sets_load_with_known_label_counts() {
    let root = common::datasets_dir();
    let m = Dataset::Mnist.load_test(&root).unwrap();
    let mut counts = [0usize; 10];
    m.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(
        counts,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let c = Dataset::Cifar10.load_test(&root).unwrap();
    assert_eq!(&c.labels[..5], &[3, 8, 8, 0, 6]);
    assert_eq!(c.len(), 10_000);
}

#[test]
fn checksums_of_official_files_match_and_damage_is_reported() {
    let root = common::datasets_dir();
    for d in Dataset::ALL {
        let checked = checksums::check(&root, d).unwrap();
        assert!(!checked.is_empty());
        assert!(
            checked.iter().all(|c| c.status == checksums::Status::Ok),
            "{checked:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mnist")).unwrap();
    std::fs::write(dir.path().join("mnist/t10k-labels-idx1-ubyte.gz"), b"x").unwrap();
    let checked = checksums::check(dir.path(), Dataset::Mnist).unwrap();
    assert_eq!(checked.len(), 4, "each file reported once: {checked:?}");
    assert!(checked
        .iter()
        .any(|c| matches!(c.status, checksums::Status::Mismatch { .. })));
    assert_eq!(
        checked
            .iter()
            .filter(|c| c.status == checksums::Status::Missing)
            .count(),
        3
    );
}
