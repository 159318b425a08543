//! Private mode's files on real SEAL keys and ciphertexts: `hejob keys new` and `hejob encrypt`
//! on the key owner's side, the evaluating side with a key folder whose secret key is gone, and
//! the owner decrypting what it evaluated: the same predictions as measuring mode.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hejob::he::infer::{Owner, Session, Worker};
use hejob::he::packing::PackingId;
use hejob::he::{plan, Network};
use hejob::model::file;
use hejob::private::inputs::Inputs;
use hejob::private::{OwnerKeys, ServerKeys};

fn model_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist/3layer-swish-rg7-deg4.h5")
}

/// Runs hejob; returns (success, stdout, stderr).
fn hejob(args: &[&str]) -> (bool, String, String) {
    let o = common::hejob_command()
        .args(args)
        .env("HEJOB_DATASETS", common::datasets_dir())
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).trim().to_string(),
    )
}

fn keys_new(dir: &Path, model: &Path, packing: &str) {
    let (ok, out, err) = hejob(&[
        "keys",
        "new",
        "--model",
        model.to_str().unwrap(),
        "--packing",
        packing,
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("key id"), "{out}");
}

/// `hejob encrypt` of MNIST test images chosen by `pick` under the folder `keys` into `out`;
/// returns what it printed.
fn encrypt_mnist(keys: &Path, out: &Path, pick: &[&str]) -> String {
    let mut args = vec![
        "encrypt",
        "--keys",
        keys.to_str().unwrap(),
        "--dataset",
        "mnist",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(pick);
    let (ok, printed, err) = hejob(&args);
    assert!(ok, "{err}");
    printed
}

/// A one-line error naming `names`.
fn refused(args: &[&str], names: &str, says: &str) {
    let (ok, _, err) = hejob(args);
    assert!(!ok, "{args:?} succeeded");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(names) && err.contains(says), "{err}");
}

#[test]
fn encrypted_inputs_evaluated_without_the_secret_key_decrypt_to_measuring_modes_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    keys_new(&keys, &model_path(), "channel-fast-x4");
    let mode = |name: &str| {
        std::fs::metadata(keys.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("secret.key"), 0o600);
    assert_eq!(mode(""), 0o700);

    let inputs = dir.path().join("inputs.h5");
    let out = encrypt_mnist(&keys, &inputs, &["--images", "3,14,15,92,65"]);
    assert!(
        out.contains("5 images in 2 runs of channel-fast-x4"),
        "{out}"
    );

    // the upload: indices, never pixels or labels; seeded ciphertexts of half a full one's size
    let file = hdf5::File::open(&inputs).unwrap();
    let mut names = file.member_names().unwrap();
    names.sort();
    assert_eq!(names, ["ciphertexts", "index", "run_images"]);
    drop(file);
    let uploaded = Inputs::open(&inputs).unwrap();
    assert_eq!(uploaded.head.index, [3, 14, 15, 92, 65]);
    assert_eq!(uploaded.head.run_images, [4, 1]);

    // the evaluating side: the secret key is not in the folder at all
    let away = dir.path().join("away");
    std::fs::create_dir(&away).unwrap();
    std::fs::rename(keys.join("secret.key"), away.join("secret.key")).unwrap();
    let server = ServerKeys::open(&keys).unwrap();
    uploaded.check(&server.manifest).unwrap();
    let model = file::load(&model_path()).unwrap();
    let net = Network::from_model(&model).unwrap();
    let packing: PackingId = "channel-fast-x4".parse().unwrap();
    let worker = Worker::new(
        model.clone(),
        net.clone(),
        packing,
        server.context.clone(),
        &server.public,
        server.evaluation,
    )
    .unwrap();
    let outputs: Vec<_> = (0..2)
        .map(|r| {
            let (images, cts) = uploaded.run(&server.context, r).unwrap();
            worker.evaluate(images, cts).unwrap()
        })
        .collect();
    assert!(
        OwnerKeys::open(&keys).is_err(),
        "opened a missing secret key"
    );

    // the key owner decrypts, beside measuring mode on the same images
    std::fs::rename(away.join("secret.key"), keys.join("secret.key")).unwrap();
    let owner_keys = OwnerKeys::open(&keys).unwrap();
    let plan = plan::plan(packing, &net, None).unwrap();
    let tolerance = plan.logit_tolerance;
    let owner = Owner::with_client(model.clone(), net, packing, plan, owner_keys.client);
    let images = model.dataset.load_test(&common::datasets_dir()).unwrap();
    let private: Vec<_> = outputs
        .iter()
        .flat_map(|o| owner.records(&images, o).unwrap())
        .collect();
    let session = Session::new(model, packing, None).unwrap();
    let (measured, _) = session.classify(&images, &[3, 14, 15, 92, 65]).unwrap();
    assert_eq!(private.len(), 5);
    for (p, m) in private.iter().zip(&measured) {
        assert_eq!((p.index, p.label), (m.index, m.label));
        assert_eq!(p.plain_logits, m.plain_logits);
        assert_eq!(p.he_pred, m.he_pred, "image {}", p.index);
        assert!(
            p.max_abs_error <= tolerance,
            "image {}: error {:.2e} beyond the plan's {tolerance:.2e}",
            p.index,
            p.max_abs_error
        );
    }
}

#[test]
fn key_folders_and_uploads_refuse_what_was_not_made_for_them() {
    let dir = tempfile::tempdir().unwrap();
    // a small network: keys and uploads of a few megabytes
    let model = common::tiny_model(dir.path());
    let m = model.to_str().unwrap();
    let keys = dir.path().join("keys");
    keys_new(&keys, &model, "channel-fast");
    let k = keys.to_str().unwrap();

    // a folder is never written over
    refused(
        &[
            "keys",
            "new",
            "--model",
            m,
            "--packing",
            "channel-fast",
            "--out",
            k,
        ],
        k,
        "exists and is not empty",
    );
    // a secret key others may read
    let secret = keys.join("secret.key");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = dir.path().join("in.h5");
    let o = out.to_str().unwrap();
    let encrypt = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["encrypt", "--keys", k, "--out", o, "--limit", "2"];
        args.extend(extra);
        args.into_iter().map(String::from).collect()
    };
    let args = encrypt(&["--dataset", "mnist"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(
        &args,
        "secret.key",
        "others may read the secret key (mode 644)",
    );
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // another dataset than the model's
    let args = encrypt(&["--dataset", "cifar10"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(&args, m, "a mnist model, not a cifar10 one");
    // another model than the keys were made for
    let other = dir.path().join("other.h5");
    let mut changed = file::load(&model).unwrap();
    changed.preprocess.mean[0] += 0.5;
    file::save(&changed, &other).unwrap();
    let args = encrypt(&["--dataset", "mnist", "--model", other.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(&args, "other.h5", "the keys were made for another model");
    assert!(!out.exists());

    // inputs made with one folder's keys are refused by another folder's
    let args = encrypt(&["--dataset", "mnist"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, err) = hejob(&args);
    assert!(ok, "{err}");
    refused(&args, o, "exists: hejob encrypt never writes over a file");
    let second = dir.path().join("second");
    keys_new(&second, &model, "channel-fast");
    let theirs = ServerKeys::open(&second).unwrap();
    let err = Inputs::open(&out)
        .unwrap()
        .check(&theirs.manifest)
        .unwrap_err()
        .to_string();
    assert!(err.contains("made with other keys"), "{err}");

    // a key file of another folder, a cut one, and a file that is no key file
    std::fs::copy(second.join("public.key"), keys.join("public.key")).unwrap();
    let err = ServerKeys::open(&keys).err().unwrap().to_string();
    assert!(
        err.contains("public.key") && err.contains("belongs to key pair"),
        "{err}"
    );
    let bytes = std::fs::read(second.join("evaluation.keys")).unwrap();
    std::fs::write(
        second.join("evaluation.keys"),
        &bytes[..bytes.len() * 2 / 3],
    )
    .unwrap();
    let err = ServerKeys::open(&second).err().unwrap().to_string();
    assert!(err.contains("evaluation.keys"), "{err}");
    std::fs::write(second.join("secret.key"), b"not a key").unwrap();
    let err = OwnerKeys::open(&second).err().unwrap().to_string();
    assert!(
        err.contains("secret.key") && err.contains("cut short"),
        "{err}"
    );
}

/// A result file's images: index, label, plain and HE predictions, plain logits.
type Columns = (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>, Vec<f64>);

fn columns(path: &Path) -> Columns {
    let f = hdf5::File::open(path).unwrap();
    let int = |name: &str| f.dataset(name).unwrap().read_raw::<i64>().unwrap();
    (
        int("index"),
        int("label"),
        int("plain_pred"),
        int("he_pred"),
        f.dataset("plain_logits")
            .unwrap()
            .read_raw::<f64>()
            .unwrap(),
    )
}

/// The private-mode workflow end to end: keys and inputs made on the owner's side, a job that
/// runs on one rank and on two under `mpirun` with a key folder whose secret key is gone, the
/// encrypted result that `hejob report` refuses, and `hejob decrypt` (in place and to a new
/// file) giving what measuring mode gives on the same images.
#[test]
fn a_private_mode_job_never_sees_the_secret_key_and_decrypts_to_measuring_modes_result() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = |name: &str| d.join(name).to_str().unwrap().to_string();
    let model = model_path();
    let m = model.to_str().unwrap();
    let keys = d.join("keys");
    keys_new(&keys, &model, "channel-fast-x4");
    let k = keys.to_str().unwrap();
    encrypt_mnist(
        &keys,
        &d.join("inputs.h5"),
        &["--offset", "20", "--limit", "10"],
    );
    // the cluster's copy of the folder has no secret key
    std::fs::rename(keys.join("secret.key"), d.join("secret.key")).unwrap();
    let job = |name: &str, extra: &str| {
        let text = format!(
            "model = {m:?}\ndataset = \"mnist\"\npacking = \"channel-fast-x4\"\n\
             output = {:?}\n{extra}",
            path(&format!("{name}.h5"))
        );
        std::fs::write(d.join(format!("{name}.toml")), text).unwrap();
        path(&format!("{name}.toml"))
    };
    let private = format!("inputs = {:?}\nkeys = {k:?}\n", path("inputs.h5"));
    let one = job("one", &private);
    let (ok, out, err) = hejob(&["--config", &one, "--threads", "2"]);
    assert!(ok, "{err}");
    assert!(out.contains("hejob decrypt --keys DIR"), "{out}");
    let two = job("two", &private);
    let mpirun = std::process::Command::new("mpirun")
        .args(["-n", "2", "--bind-to", "none", "--oversubscribe"])
        .arg(env!("CARGO_BIN_EXE_hejob"))
        .args(["--config", &two, "--threads", "1"])
        .env("HEJOB_DATASETS", common::datasets_dir())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .output()
        .unwrap();
    assert!(
        mpirun.status.success(),
        "{}",
        String::from_utf8_lossy(&mpirun.stderr)
    );
    let ranks = hdf5::File::open(d.join("two.h5"))
        .unwrap()
        .dataset("rank")
        .unwrap()
        .read_raw::<u64>()
        .unwrap();
    assert_eq!(ranks.len(), 3, "10 images in runs of 4: three runs");
    assert!(ranks.contains(&0) && ranks.contains(&1), "{ranks:?}");
    refused(
        &["report", &path("one.h5"), "--out", &path("report")],
        "one.h5",
        "holds encrypted logits",
    );

    // on the owner's machine
    std::fs::rename(d.join("secret.key"), keys.join("secret.key")).unwrap();
    let other = d.join("other");
    keys_new(&other, &model, "channel-fast-x4");
    refused(
        &[
            "decrypt",
            "--keys",
            other.to_str().unwrap(),
            "--result",
            &path("one.h5"),
        ],
        "one.h5",
        "encrypted under other keys",
    );
    let (ok, out, err) = hejob(&["decrypt", "--keys", k, "--result", &path("one.h5")]);
    assert!(ok, "{err}");
    assert!(out.contains("10 images decrypted"), "{out}");
    // the job again: its decrypted result is not written over with the encrypted one
    refused(
        &["--config", &one, "--threads", "2"],
        "one.h5",
        "holds this job's results, decrypted",
    );
    let (two, two_plain) = (path("two.h5"), path("two-plain.h5"));
    let to_new = [
        "decrypt", "--keys", k, "--result", &two, "--out", &two_plain,
    ];
    let (ok, _, err) = hejob(&to_new);
    assert!(ok, "{err}");
    refused(&to_new, "two-plain.h5", "never writes over a file");
    // without the test set: the HE predictions alone, to a new file only
    let empty = d.join("no-datasets");
    std::fs::create_dir(&empty).unwrap();
    let blind = [
        "decrypt",
        "--keys",
        k,
        "--result",
        &two,
        "--data-dir",
        empty.to_str().unwrap(),
    ];
    refused(&blind, "no-datasets", "give --out");
    let two_blind = path("two-blind.h5");
    let (ok, out, err) = hejob(&[&blind[..], &["--out", &two_blind]].concat());
    assert!(ok, "{err}");
    assert!(out.contains("10 images decrypted (HE predictions"), "{out}");
    let (blind, plain) = (
        hdf5::File::open(&two_blind).unwrap(),
        hdf5::File::open(&two_plain).unwrap(),
    );
    let format = blind.attr("format").unwrap();
    let format = format.read_scalar::<hdf5::types::VarLenUnicode>().unwrap();
    assert_eq!(format.as_str(), "hejob-predictions");
    for name in ["index", "he_pred"] {
        let col = |f: &hdf5::File| f.dataset(name).unwrap().read_raw::<i64>().unwrap();
        assert_eq!(col(&blind), col(&plain), "{name}");
    }
    let logits = |f: &hdf5::File| f.dataset("he_logits").unwrap().read_raw::<f64>().unwrap();
    assert_eq!(logits(&blind), logits(&plain));
    let measuring = job("measured", "offset = 20\nlimit = 10\n");
    let (ok, _, err) = hejob(&["--config", &measuring, "--threads", "2"]);
    assert!(ok, "{err}");
    let want = columns(&d.join("measured.h5"));
    assert_eq!(want.0, (20..30).collect::<Vec<i64>>());
    assert_eq!(want.2, want.3, "measuring mode: every prediction agrees");
    for got in ["one.h5", "two-plain.h5"] {
        assert_eq!(columns(&d.join(got)), want, "{got}");
    }
    let (ok, _, err) = hejob(&["report", &path("one.h5"), "--out", &path("report")]);
    assert!(ok, "{err}");

    // jobs that mix the modes, or inputs and keys that do not belong together
    let e = |extra: &str, says: &str| {
        let cfg = job("bad", extra);
        let (ok, _, err) = hejob(&["--config", &cfg]);
        assert!(
            !ok && err.contains("bad.toml") && err.contains(says),
            "{err}"
        );
    };
    e(
        &format!("inputs = {:?}\n", path("inputs.h5")),
        "inputs and keys go together",
    );
    e(&format!("{private}limit = 4\n"), "leave them out");
    e(
        &format!(
            "inputs = {:?}\nkeys = {:?}\n",
            path("inputs.h5"),
            other.to_str().unwrap()
        ),
        "made with other keys",
    );
}

/// A private-mode job killed mid-run resumes: runs kept whole are not evaluated again, a run
/// whose file was damaged is, and the decrypted result holds every image once.
#[test]
fn a_killed_private_mode_job_resumes_and_redoes_only_what_it_lost() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = common::tiny_model(d);
    let keys = d.join("keys");
    keys_new(&keys, &model, "channel-fast");
    let k = keys.to_str().unwrap();
    let inputs = d.join("inputs.h5");
    encrypt_mnist(&keys, &inputs, &["--limit", "12"]);
    let cfg = d.join("job.toml");
    let result = d.join("result.h5");
    std::fs::write(
        &cfg,
        format!(
            "model = {model:?}\ndataset = \"mnist\"\npacking = \"channel-fast\"\n\
             inputs = {inputs:?}\nkeys = {k:?}\noutput = {result:?}\nruns_in_flight = 1\n"
        ),
    )
    .unwrap();
    let checkpoint = d.join("result.h5.checkpoint");
    let sealed = || {
        std::fs::read_to_string(checkpoint.join("rank-0.jsonl"))
            .map(|t| t.matches("\"type\":\"sealed\"").count())
            .unwrap_or(0)
    };
    let mut child = common::hejob_command()
        .args(["--config", cfg.to_str().unwrap(), "--threads", "1"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while sealed() < 3 {
        assert!(start.elapsed().as_secs() < 120, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = sealed();
    assert!(before < 12, "killed before the end ({before} done)");
    assert!(!result.exists());
    // one kept run's file damaged: only that run is evaluated again
    let first = checkpoint.join("sealed/run-0.bin");
    let bytes = std::fs::read(&first).unwrap();
    std::fs::write(&first, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, _, err) = hejob(&["--config", cfg.to_str().unwrap(), "--threads", "1"]);
    assert!(ok, "{err}");
    assert_eq!(sealed(), 12 + 1, "{before} kept before the kill: {err}");
    let (ok, out, err) = hejob(&["decrypt", "--keys", k, "--result", result.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("12 images decrypted"), "{out}");
    let index = hdf5::File::open(&result)
        .unwrap()
        .dataset("index")
        .unwrap()
        .read_raw::<i64>()
        .unwrap();
    assert_eq!(index, (0..12).collect::<Vec<i64>>());
}
