//! The command-line contracts users and scripts rely on, run through the real binary.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

fn hejob(args: &[&str]) -> Output {
    common::hejob_command()
        .args(args)
        .output()
        .expect("run hejob")
}

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "should fail");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("hejob: error: "), "{err}");
    err
}

#[test]
fn fit_prints_coefficients_as_json() {
    let v = stdout_json(&hejob(&[
        "fit",
        "--function",
        "swish",
        "--range",
        "7",
        "--degree",
        "4",
        "--json",
    ]));
    let c: Vec<f64> = serde_json::from_value(v["coefficients"].clone()).unwrap();
    let paper = [0.1773, 0.5, 0.128, 0.0, -0.001328];
    assert_eq!(c.len(), 5);
    for (o, p) in c.iter().zip(paper) {
        assert!((o - p).abs() <= (0.01 * p.abs()).max(5e-4), "{c:?}");
    }
    let text = hejob(&["fit", "--function", "relu", "--range", "5", "--degree", "2"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("x^2"));
    one_line_error(&hejob(&[
        "fit",
        "--function",
        "relu",
        "--range=-1",
        "--degree",
        "2",
    ]));
}

#[test]
fn model_new_then_eval_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::datasets_dir();
    let data = data.to_str().unwrap();
    for (arch, act, c2) in [
        ("mnist-3layer", "square", "32"),
        ("cifar10-4layer", "swish-rg7-deg4", "45"),
    ] {
        let out = dir.path().join(format!("{arch}.h5"));
        let out = out.to_str().unwrap();
        let made = hejob(&[
            "model",
            "new",
            "--arch",
            arch,
            "--activation",
            act,
            "--conv2-channels",
            c2,
            "--seed",
            "4",
            "--out",
            out,
        ]);
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let v = stdout_json(&hejob(&[
            "eval",
            "--model",
            out,
            "--limit",
            "200",
            "--data-dir",
            data,
            "--json",
        ]));
        assert_eq!(v["images"], 200);
        let acc = v["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
        let info = hejob(&["model", "info", "--model", out]);
        assert!(String::from_utf8_lossy(&info.stdout).contains(&format!("conv2_channels: {c2}")));
    }
    let m = dir.path().join("mnist-3layer.h5");
    let e = one_line_error(&hejob(&[
        "eval",
        "--model",
        m.to_str().unwrap(),
        "--limit",
        "10001",
        "--data-dir",
        data,
    ]));
    assert!(e.contains("beyond the 10000 images"), "{e}");
    // --logit-error lists exactly the images whose top-2 margin is within twice the error
    let eval_at = |e: f64| {
        stdout_json(&hejob(&[
            "eval",
            "--model",
            m.to_str().unwrap(),
            "--limit",
            "300",
            "--data-dir",
            data,
            "--logit-error",
            &e.to_string(),
            "--json",
        ]))
    };
    let smallest = eval_at(0.0)["smallest_margin"].as_f64().unwrap();
    assert!(smallest > 0.0);
    assert_eq!(eval_at(0.499 * smallest)["at_risk"], serde_json::json!([]));
    let at_risk = eval_at(0.5 * smallest)["at_risk"].clone();
    assert_eq!(at_risk.as_array().unwrap().len(), 1, "{at_risk}");
    assert!(at_risk[0]["index"].as_u64().unwrap() < 300);
    assert_eq!(at_risk[0]["margin"].as_f64().unwrap(), smallest);
    let wide = eval_at(1e9)["at_risk"].as_array().unwrap().len();
    assert_eq!(wide, 300);
    let e = one_line_error(&hejob(&[
        "eval",
        "--model",
        m.to_str().unwrap(),
        "--data-dir",
        data,
        "--logit-error=-1",
    ]));
    assert!(e.contains("--logit-error -1"), "{e}");
    // recalibrate: batch-norm statistics from training images, recorded in the provenance
    let fixed = dir.path().join("recalibrated.h5");
    let out = hejob(&[
        "recalibrate",
        "--model",
        m.to_str().unwrap(),
        "--out",
        fixed.to_str().unwrap(),
        "--limit",
        "500",
        "--data-dir",
        data,
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("batch-norm statistics from 500 training images"),
        "{said}"
    );
    let info = hejob(&["model", "info", "--model", fixed.to_str().unwrap()]);
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("bn_statistics: re-estimated on 500 unaugmented"),
        "{info}"
    );
    let e = one_line_error(&hejob(&[
        "recalibrate",
        "--model",
        "/nonexistent.h5",
        "--out",
        fixed.to_str().unwrap(),
    ]));
    assert!(e.contains("/nonexistent.h5"), "{e}");
    let e = one_line_error(&hejob(&[
        "eval",
        "--model",
        m.to_str().unwrap(),
        "--data-dir",
        "/nonexistent",
    ]));
    assert!(
        e.contains("/nonexistent/mnist/t10k-images-idx3-ubyte") && e.contains("not found"),
        "{e}"
    );
    // HEJOB_DATASETS is honoured when --data-dir is absent
    let out = common::hejob_command()
        .args([
            "eval",
            "--model",
            m.to_str().unwrap(),
            "--limit",
            "10",
            "--json",
        ])
        .env("HEJOB_DATASETS", data)
        .output()
        .unwrap();
    assert_eq!(stdout_json(&out)["images"], 10);
    let e = one_line_error(&hejob(&[
        "model",
        "new",
        "--arch",
        "mnist-3layer",
        "--activation",
        "gelu",
        "--out",
        "/tmp/x.h5",
    ]));
    assert!(e.contains("unknown activation"), "{e}");
}

#[test]
fn infer_classifies_the_chosen_images_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::datasets_dir();
    let data = data.to_str().unwrap();
    let m = dir.path().join("m.h5");
    let m = m.to_str().unwrap();
    let made = hejob(&[
        "model",
        "new",
        "--arch",
        "mnist-3layer",
        "--activation",
        "square",
        "--conv2-channels",
        "8",
        "--seed",
        "2",
        "--out",
        m,
    ]);
    assert!(made.status.success());
    let infer = |images: &str| {
        hejob(&[
            "infer",
            "--model",
            m,
            "--packing",
            "channel-fast",
            "--scale-bits",
            "28",
            "--images",
            images,
            "--data-dir",
            data,
            "--json",
        ])
    };
    let v = stdout_json(&infer("7,2,5"));
    let tolerance = v["plan"]["logit_tolerance"].as_f64().unwrap();
    // beside the server's runs, what private mode would upload per image under this plan
    let upload = &v["upload"];
    let inputs = v["plan"]["input_ciphertexts"].as_u64().unwrap();
    assert_eq!(
        upload["per_run_bytes"].as_u64().unwrap(),
        inputs * upload["ciphertext_bytes"].as_u64().unwrap()
    );
    // each run's client work beside its server time: encryption costs something, and less than
    // the whole run it was timed inside
    for run in v["runs"].as_array().unwrap() {
        let encrypt = run["client"]["encrypt_s"].as_f64().unwrap();
        let decrypt = run["client"]["decrypt_s"].as_f64().unwrap();
        assert!(encrypt > 0.0 && decrypt > 0.0, "{run}");
        assert!(run["seconds"].as_f64().unwrap() > 0.0, "{run}");
    }
    let records = v["images"].as_array().unwrap();
    let indices: Vec<u64> = records
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, [7, 2, 5]);
    for r in records {
        assert_eq!(r["he_pred"], r["plain_pred"], "{r}");
        assert!(r["max_abs_error"].as_f64().unwrap() <= tolerance, "{r}");
    }
    let e = one_line_error(&infer("3,10000"));
    assert!(
        e.contains("image 10000 is beyond the 10000 test images"),
        "{e}"
    );
    // a range whose end passes the largest number is refused, not allocated
    let e = one_line_error(&hejob(&[
        "infer",
        "--model",
        m,
        "--packing",
        "channel-fast",
        "--offset",
        "5",
        "--limit",
        "18446744073709551615",
        "--data-dir",
        data,
    ]));
    assert!(
        e.contains(
            "--offset 5 and --limit 18446744073709551615 reach beyond the 10000 test images"
        ),
        "{e}"
    );
}

#[test]
fn datasets_check_passes_on_official_files_and_fails_on_missing_ones() {
    let data = common::datasets_dir();
    let ok = hejob(&["datasets", "check", data.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let empty = tempfile::tempdir().unwrap();
    let e = one_line_error(&hejob(&[
        "datasets",
        "check",
        empty.path().to_str().unwrap(),
    ]));
    assert!(e.contains("missing or fail their checksum"), "{e}");
}

/// A minimal HTTP/1.1 server on 127.0.0.1 serving files of `root` for `requests` requests.
fn serve(root: PathBuf, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut line).unwrap();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/');
            match std::fs::read(root.join(path)) {
                Ok(body) => {
                    write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .unwrap();
                    stream.write_all(&body).unwrap();
                }
                Err(_) => {
                    stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
                }
            }
        }
    });
    format!("http://{addr}/")
}

#[test]
fn datasets_fetch_downloads_and_verifies_from_a_local_server() {
    let official = common::datasets_dir();
    let base = serve(official.join("mnist"), 4);
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let out = hejob(&[
        "datasets",
        "fetch",
        d,
        "--dataset",
        "mnist",
        "--mnist-url",
        &base,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<_> = std::fs::read_dir(dest.path().join("mnist"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 4);
    let checked = hejob::data::checksums::check(dest.path(), hejob::data::Dataset::Mnist).unwrap();
    assert!(checked
        .iter()
        .all(|c| c.status == hejob::data::checksums::Status::Ok));
    // verified files are not downloaded again (the server would refuse a 5th request anyway)
    let again = hejob(&[
        "datasets",
        "fetch",
        d,
        "--dataset",
        "mnist",
        "--mnist-url",
        "http://127.0.0.1:9/",
    ]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // a tarball whose contents fail the checksums is refused
    let bogus = tempfile::tempdir().unwrap();
    let tgz = bogus.path().join("cifar-10-binary.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tgz).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    let body = vec![0u8; 3073];
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_cksum();
    tar.append_data(
        &mut header,
        "cifar-10-batches-bin/test_batch.bin",
        &body[..],
    )
    .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let e = one_line_error(&fetch_cifar(Path::new(d), bogus.path()));
    assert!(
        e.contains("failed verification") && e.contains("test_batch.bin"),
        "{e}"
    );
    let left: Vec<_> = std::fs::read_dir(Path::new(d).join("cifar10"))
        .unwrap()
        .collect();
    assert!(
        left.is_empty(),
        "a file that failed verification was put in place"
    );
}

/// `hejob datasets fetch DEST --dataset cifar10` from the tarball a local server serves once
/// out of `served`.
fn fetch_cifar(dest: &Path, served: &Path) -> Output {
    let base = serve(served.to_path_buf(), 1);
    hejob(&[
        "datasets",
        "fetch",
        dest.to_str().unwrap(),
        "--dataset",
        "cifar10",
        "--cifar10-url",
        &format!("{base}cifar-10-binary.tar.gz"),
    ])
}

/// A member of a test tarball: its path in the archive, and its body or a symbolic link's target.
type Member<'a> = (&'a str, Result<Vec<u8>, &'a str>);

/// A tarball of `members`.
fn tarball(dir: &Path, members: &[Member]) -> PathBuf {
    let tgz = dir.join("cifar-10-binary.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tgz).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    for (path, body) in members {
        let mut header = tar::Header::new_gnu();
        match body {
            Ok(body) => {
                header.set_size(body.len() as u64);
                header.set_cksum();
                tar.append_data(&mut header, path, &body[..]).unwrap();
            }
            Err(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                tar.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    tar.into_inner().unwrap().finish().unwrap();
    tgz
}

#[test]
fn a_hostile_tarball_changes_nothing_and_good_files_are_never_touched() {
    let official = common::datasets_dir().join("cifar10");
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path();
    let cifar = d.join("cifar10");
    std::fs::create_dir_all(&cifar).unwrap();
    // good files present, test_batch.bin missing
    for i in 1..=5 {
        let name = format!("data_batch_{i}.bin");
        std::fs::copy(official.join(&name), cifar.join(&name)).unwrap();
    }
    let md5s = || -> Vec<String> {
        (1..=5)
            .map(|i| {
                hejob::data::checksums::md5_file(&cifar.join(format!("data_batch_{i}.bin")))
                    .unwrap()
            })
            .collect()
    };
    let before = md5s();
    let served = tempfile::tempdir().unwrap();
    let big = vec![0u8; (hejob::data::fetch::MAX_MEMBER + 1) as usize];
    let cases: Vec<(&str, Vec<Member>, &str)> = vec![
        (
            "a bad version of a good file and a bad missing one",
            vec![
                ("cifar-10-batches-bin/data_batch_1.bin", Ok(vec![1u8; 1000])),
                ("cifar-10-batches-bin/test_batch.bin", Ok(vec![2u8; 3073])),
            ],
            "test_batch.bin (wrong checksum)",
        ),
        (
            "a link where a file belongs",
            vec![("cifar-10-batches-bin/test_batch.bin", Err("/etc/passwd"))],
            "member cifar-10-batches-bin/test_batch.bin is not a regular file",
        ),
        (
            "foreign member names",
            vec![
                ("cifar-10-batches-bin/evil.bin", Ok(vec![3u8; 10])),
                ("evil.bin", Ok(vec![3u8; 10])),
            ],
            "test_batch.bin (not in the download)",
        ),
        (
            "a member beyond the size limit",
            vec![("cifar-10-batches-bin/test_batch.bin", Ok(big.clone()))],
            "more than the 33554432 a CIFAR-10 file may have",
        ),
    ];
    for (what, members, says) in cases {
        tarball(served.path(), &members);
        let e = one_line_error(&fetch_cifar(d, served.path()));
        assert!(e.contains(says), "{what}: {e}");
        assert_eq!(md5s(), before, "{what}: a good file changed");
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .chain(std::fs::read_dir(&cifar).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "cifar10",
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin"
            ],
            "{what}: something was written"
        );
    }
    // the official test batch in a tarball: only the missing file is added
    tarball(
        served.path(),
        &[
            ("cifar-10-batches-bin/data_batch_1.bin", Ok(vec![1u8; 1000])),
            (
                "cifar-10-batches-bin/test_batch.bin",
                Ok(std::fs::read(official.join("test_batch.bin")).unwrap()),
            ),
        ],
    );
    let out = fetch_cifar(d, served.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(md5s(), before, "a good file was replaced");
    assert!(
        hejob::data::checksums::check(d, hejob::data::Dataset::Cifar10)
            .unwrap()
            .iter()
            .all(|c| c.status == hejob::data::checksums::Status::Ok)
    );
}

#[test]
fn model_and_report_outputs_are_checked_before_any_work_and_nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = d.join("m.h5");
    let made = hejob(&[
        "model",
        "new",
        "--arch",
        "mnist-3layer",
        "--activation",
        "square",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let job = d.join("job.toml");
    std::fs::write(&job, "model = \"m.h5\"\n").unwrap();
    std::fs::create_dir(d.join("folder.h5")).unwrap();
    let md5 = |p: &Path| hejob::data::checksums::md5_file(p).unwrap();
    let (model_md5, job_md5) = (md5(&model), md5(&job));
    let data = common::datasets_dir();
    let (m, j, f) = (
        model.to_str().unwrap(),
        job.to_str().unwrap(),
        d.join("folder.h5"),
    );
    let f = f.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "model",
                "new",
                "--arch",
                "mnist-3layer",
                "--activation",
                "square",
                "--out",
                f,
            ],
            "is a folder",
        ),
        (
            vec![
                "model",
                "new",
                "--arch",
                "mnist-3layer",
                "--activation",
                "square",
                "--out",
                j,
            ],
            "exists and is not an hejob model file (not an HDF5 file)",
        ),
        (
            vec![
                "recalibrate",
                "--model",
                m,
                "--out",
                m,
                "--data-dir",
                data.to_str().unwrap(),
            ],
            "is this command's own input",
        ),
        (
            vec![
                "prune", "--model", m, "--layer", "conv2", "--ratio", "0.2", "--epochs", "0",
                "--out", m,
            ],
            "is this command's own input",
        ),
        (vec!["report", m, "--out", j], "is a file, not a folder"),
    ];
    for (args, says) in cases {
        let e = one_line_error(&hejob(&args));
        assert!(e.contains(says), "{args:?}: {e}");
    }
    assert_eq!(
        (md5(&model), md5(&job)),
        (model_md5, job_md5),
        "a file changed"
    );
}
