//! The job runner through the real binary, alone and under a real `mpirun`: result files read
//! back, two ranks giving the results of one, a killed job (or one killed rank) resumed with
//! every image exactly once, and each bad job refused before any key is generated.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hejob::data::Dataset;
use hejob::model::file;

fn job(dir: &Path, extra: &str) -> PathBuf {
    let model = common::tiny_model(dir);
    let text = format!(
        "model = {:?}\ndataset = \"mnist\"\ndata_dir = {:?}\npacking = \"channel\"\noutput = {:?}\n{extra}",
        model,
        common::datasets_dir(),
        dir.join("out/result.h5"),
    );
    let path = dir.join("job.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn hejob(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = common::hejob_command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run hejob")
}

fn error_line(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

fn read_indices(path: &Path) -> Vec<i64> {
    let f = hdf5::File::open(path).unwrap();
    f.dataset("index").unwrap().read_raw::<i64>().unwrap()
}

#[test]
fn a_job_writes_a_complete_result_file() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = job(dir.path(), "limit = 3\noffset = 5\nlog_level = \"warn\"\n");
    let out = hejob(&["--config", cfg.to_str().unwrap(), "--threads", "2"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = dir.path().join("out/result.h5");
    let f = hdf5::File::open(&result).unwrap();
    assert_eq!(read_indices(&result), vec![5, 6, 7]);
    for name in [
        "label",
        "plain_pred",
        "he_pred",
        "max_abs_error",
        "latency_s",
        "rank",
    ] {
        assert_eq!(f.dataset(name).unwrap().shape(), vec![3], "{name}");
    }
    assert_eq!(f.dataset("he_logits").unwrap().shape(), vec![3, 10]);
    assert_eq!(f.dataset("plain_logits").unwrap().shape(), vec![3, 10]);
    let s = f.group("summary").unwrap();
    let get = |n: &str| s.attr(n).unwrap().read_scalar::<f64>().unwrap();
    assert_eq!(get("agreement"), 1.0);
    assert!(get("max_abs_error") < 1e-2);
    assert_eq!(s.attr("images").unwrap().read_scalar::<u64>().unwrap(), 3);
    let rotations = s
        .attr("rotation_per_inference")
        .unwrap()
        .read_scalar::<u64>()
        .unwrap();
    assert_eq!(
        rotations,
        25 + 2 + 10 * 12,
        "conv offsets, packing, rotate-and-sum over 4096 slots"
    );
    assert_eq!(
        s.attr("rotation").unwrap().read_scalar::<u64>().unwrap(),
        3 * rotations
    );
    assert_eq!(
        f.attr("poly_modulus_degree")
            .unwrap()
            .read_scalar::<u64>()
            .unwrap(),
        8192
    );
    assert_eq!(
        f.attr("threads_per_rank")
            .unwrap()
            .read_scalar::<u64>()
            .unwrap(),
        2
    );
    let toml: hdf5::types::VarLenUnicode = f.attr("job_toml").unwrap().read_scalar().unwrap();
    assert!(toml.as_str().contains("packing = \"channel\""));
    assert!(!dir.path().join("out/result.h5.tmp").exists());
    // re-running a finished job evaluates nothing and rewrites the same images
    let again = hejob(&["--config", cfg.to_str().unwrap()], &[]);
    assert!(again.status.success());
    assert_eq!(read_indices(&result), vec![5, 6, 7]);
    // its checkpoint records the plan; runs made under another one (another build) are refused
    let cp = dir.path().join("out/result.h5.checkpoint/rank-0.jsonl");
    let text = std::fs::read_to_string(&cp).unwrap();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let digest = header["plan"].as_str().unwrap();
    assert_eq!(digest.len(), 32);
    // an edit is caught by the line's checksum
    let edited = text.replacen(digest, &"0".repeat(32), 1);
    std::fs::write(&cp, &edited).unwrap();
    let e = error_line(&hejob(&["--config", cfg.to_str().unwrap()], &[]));
    assert!(
        e.contains("rank-0.jsonl") && e.contains("its header line is damaged"),
        "{e}"
    );
    // a header of another plan as another build writes it (here without a checksum, as the
    // builds before checksums wrote it)
    let mut lines: Vec<String> = edited.lines().map(str::to_string).collect();
    let at = lines[0].find(",\"md5\"").unwrap();
    lines[0].truncate(at);
    lines[0].push('}');
    std::fs::write(&cp, lines.join("\n") + "\n").unwrap();
    let e = error_line(&hejob(&["--config", cfg.to_str().unwrap()], &[]));
    assert!(
        e.contains("rank-0.jsonl") && e.contains("another plan"),
        "{e}"
    );
}

#[test]
fn a_killed_job_resumes_and_holds_every_image_once() {
    let _serial = common::serial();
    // one run at a time, and two runs in flight sharing the rank's keys and threads
    for (threads, flights) in [("1", "1"), ("2", "2")] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = job(
            dir.path(),
            &format!("limit = 12\nruns_in_flight = {flights}\n"),
        );
        let checkpoint = dir.path().join("out/result.h5.checkpoint/rank-0.jsonl");
        let mut child = common::hejob_command()
            .args(["--config", cfg.to_str().unwrap(), "--threads", threads])
            .spawn()
            .unwrap();
        let images_done = |p: &Path| {
            std::fs::read_to_string(p)
                .map(|t| {
                    t.lines()
                        .filter(|l| l.contains("\"type\":\"image\""))
                        .count()
                })
                .unwrap_or(0)
        };
        let start = Instant::now();
        while images_done(&checkpoint) < 3 {
            assert!(start.elapsed() < Duration::from_secs(120), "no progress");
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap(); // SIGKILL: nothing gets to clean up
        child.wait().unwrap();
        let before = images_done(&checkpoint);
        assert!(
            before < 12,
            "{flights} in flight: killed before the end ({before} done)"
        );
        assert!(!dir.path().join("out/result.h5").exists());
        let out = hejob(
            &["--config", cfg.to_str().unwrap(), "--threads", threads],
            &[],
        );
        succeeded(&out);
        assert_eq!(
            read_indices(&dir.path().join("out/result.h5")),
            (0..12).collect::<Vec<i64>>(),
            "{flights} in flight"
        );
        assert_eq!(
            images_done(&checkpoint),
            12,
            "{flights} in flight: finished images were not redone"
        );
    }
}

/// Several runs in flight on a rank give what one run at a time gives: the same images, labels,
/// plain logits bit for bit and HE predictions, on one rank and on two under `mpirun`; the
/// result file says how many were in flight.
#[test]
fn runs_in_flight_give_the_results_of_one_run_at_a_time() {
    let _serial = common::serial();
    for packing in ["channel", "channel-fast-x2"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = job_with(dir.path(), packing, "limit = 8\noffset = 40\n");
        let cfg = cfg.to_str().unwrap();
        let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let (one, two, ranks) = (out("one.h5"), out("two.h5"), out("ranks.h5"));
        let args = |output: &str, flights: &str| -> Vec<String> {
            [
                "--config",
                cfg,
                "--threads",
                "2",
                "--output",
                output,
                "--runs-in-flight",
                flights,
            ]
            .map(String::from)
            .to_vec()
        };
        let run = |a: Vec<String>| common::hejob_command().args(a).output().unwrap();
        succeeded(&run(args(&one, "1")));
        succeeded(&run(args(&two, "2")));
        succeeded(
            &mpirun(
                2,
                &args(&ranks, "2")
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            )
            .output()
            .unwrap(),
        );
        let a = read_images(Path::new(&one));
        for (path, ranks) in [(&two, 1), (&ranks, 2)] {
            let b = read_images(Path::new(path));
            assert_eq!(b.ranks, ranks, "{packing}");
            assert_eq!(a.index, (40..48).collect::<Vec<i64>>(), "{packing}");
            same_images(&a, &b, packing);
            let f = hdf5::File::open(path).unwrap();
            let flights = f
                .attr("runs_in_flight")
                .unwrap()
                .read_scalar::<u64>()
                .unwrap();
            assert_eq!(flights, 2, "{packing}");
        }
        assert_eq!(a.he_pred, a.plain_pred, "{packing}");
    }
}

#[test]
fn bad_jobs_fail_fast_with_their_own_message() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("costs.json"), "{}").unwrap();
    let not_costs = format!("limit = 1\ncosts = {:?}\n", d.join("costs.json"));
    let cases: Vec<(&str, &str)> = vec![
        ("unknown key", "limit = 1\nbatch_size = 3\n"),
        ("limit beyond the test set", "limit = 10001\n"),
        ("threads beyond the bound", "limit = 1\nthreads = 100000\n"),
        ("bad log level", "limit = 1\nlog_level = \"loud\"\n"),
        (
            "runs in flight a word",
            "limit = 1\nruns_in_flight = \"many\"\n",
        ),
        ("runs in flight zero", "limit = 1\nruns_in_flight = 0\n"),
        (
            "runs in flight beyond the threads",
            "limit = 1\nthreads = 2\nruns_in_flight = 3\n",
        ),
        ("memory budget negative", "limit = 1\nmemory_gb = -4\n"),
        ("costs not a cost table", &not_costs),
    ];
    for (what, extra) in cases {
        let cfg = job(d, extra);
        let start = Instant::now();
        let e = error_line(&hejob(&["--config", cfg.to_str().unwrap()], &[]));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: not fast"
        );
        assert!(e.contains("job.toml"), "{what}: {e}");
        match what {
            "unknown key" => assert!(e.contains("unknown field `batch_size`"), "{e}"),
            "limit beyond the test set" => assert!(
                e.contains(
                    "offset 0 and limit 10001 do not name images within the 10000 test images"
                ),
                "{e}"
            ),
            "threads beyond the bound" => {
                assert!(
                    e.contains("threads 100000 is not between 1 and 4096"),
                    "{e}"
                )
            }
            "runs in flight a word" => assert!(e.contains("\"many\" is not \"auto\""), "{e}"),
            "runs in flight zero" => assert!(e.contains("runs in flight 0 is not"), "{e}"),
            "runs in flight beyond the threads" => assert!(
                e.contains("runs_in_flight 3 is more than the rank's 2 threads"),
                "{e}"
            ),
            "memory budget negative" => {
                assert!(e.contains("memory_gb -4 is not a positive number"), "{e}")
            }
            "costs not a cost table" => assert!(
                e.contains("costs.json: not the output of `hejob bench-ops --json`"),
                "{e}"
            ),
            _ => assert!(e.contains("log_level \"loud\""), "{e}"),
        }
    }
    // a limit whose end passes the largest number, from the command line
    let cfg = job(d, "");
    let e = error_line(&hejob(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--limit",
            "18446744073709551615",
            "--offset",
            "5",
        ],
        &[],
    ));
    assert!(
        e.contains("offset 5 and limit 18446744073709551615 do not name images within"),
        "{e}"
    );
    // a missing model
    let cfg = job(d, "limit = 1\n");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("tiny.h5", "absent.h5");
    std::fs::write(&cfg, text).unwrap();
    let e = error_line(&hejob(&["--config", cfg.to_str().unwrap()], &[]));
    assert!(e.contains("absent.h5 does not exist"), "{e}");
    // an unwritable output (its parent is a file)
    let cfg = job(d, "limit = 1\n");
    std::fs::write(d.join("blocker"), "").unwrap();
    let e = error_line(&hejob(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            d.join("blocker/r.h5").to_str().unwrap(),
        ],
        &[],
    ));
    assert!(e.contains("is not writable"), "{e}");
    // a checkpoint of another job configuration
    let cfg = job(d, "limit = 1\npacking = \"batch\"\n");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("packing = \"channel\"\n", "");
    std::fs::write(&cfg, &text).unwrap();
    let cp = d.join("out/result.h5.checkpoint");
    std::fs::create_dir_all(&cp).unwrap();
    std::fs::write(
        cp.join("rank-0.jsonl"),
        "{\"type\":\"header\",\"version\":1,\"fingerprint\":\"other\"}\n",
    )
    .unwrap();
    let e = error_line(&hejob(&["--config", cfg.to_str().unwrap()], &[]));
    assert!(e.contains("different job configuration"), "{e}");
    // a fixed scale outside what the planner accepts
    let cfg = job(d, "limit = 1\nscale_bits = 70\n");
    let e = error_line(&hejob(&["--config", cfg.to_str().unwrap()], &[]));
    assert!(
        e.contains("job.toml") && e.contains("scale_bits 70 is outside the 24..=50"),
        "{e}"
    );
    // a launcher that does not match the MPI library: one rank in a world announced as two
    let cfg = job(d, "limit = 1\n");
    for var in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"] {
        let e = error_line(&hejob(&["--config", cfg.to_str().unwrap()], &[(var, "2")]));
        assert!(e.contains(&format!("({var}=2)")), "{e}");
        assert!(e.contains("srun --mpi=pmix"), "{e}");
    }
}

/// `mpirun` with no core binding, allowed as root; the programs and ranks come next.
fn launcher() -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--bind-to", "none", "--oversubscribe"])
        .env("RUST_LOG", "warn")
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    cmd
}

/// `mpirun` of the binary under test with `n` ranks.
fn mpirun(n: usize, args: &[&str]) -> Command {
    let mut cmd = launcher();
    cmd.args(["-n", &n.to_string()])
        .arg(env!("CARGO_BIN_EXE_hejob"))
        .args(args);
    cmd
}

/// A job file with `packing` instead of the default channel-wise one.
fn job_with(dir: &Path, packing: &str, extra: &str) -> PathBuf {
    let cfg = job(dir, extra);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("packing = \"channel\"", &format!("packing = \"{packing}\""));
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// The per-image columns of a result file.
struct Images {
    index: Vec<i64>,
    label: Vec<i64>,
    plain_pred: Vec<i64>,
    he_pred: Vec<i64>,
    rank: Vec<i64>,
    plain_logits: Vec<f64>,
    he_logits: Vec<f64>,
    ranks: u64,
}

fn read_images(path: &Path) -> Images {
    let f = hdf5::File::open(path).unwrap();
    let ints = |n: &str| f.dataset(n).unwrap().read_raw::<i64>().unwrap();
    let floats = |n: &str| f.dataset(n).unwrap().read_raw::<f64>().unwrap();
    Images {
        index: ints("index"),
        label: ints("label"),
        plain_pred: ints("plain_pred"),
        he_pred: ints("he_pred"),
        rank: ints("rank"),
        plain_logits: floats("plain_logits"),
        he_logits: floats("he_logits"),
        ranks: f.attr("ranks").unwrap().read_scalar::<u64>().unwrap(),
    }
}

/// Two result files hold the same images, labels, plain logits (bit for bit) and predictions.
fn same_images(a: &Images, b: &Images, what: &str) {
    assert_eq!(a.index, b.index, "{what}");
    assert_eq!(a.label, b.label, "{what}");
    assert_eq!(
        a.plain_logits, b.plain_logits,
        "{what}: plain logits are exact"
    );
    assert_eq!(a.plain_pred, b.plain_pred, "{what}");
    assert_eq!(a.he_pred, b.he_pred, "{what}");
}

fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn two_mpi_ranks_give_the_results_of_one() {
    let _serial = common::serial();
    for packing in ["channel", "batch"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = job_with(dir.path(), packing, "limit = 6\noffset = 20\n");
        let (one, two) = (dir.path().join("one.h5"), dir.path().join("two.h5"));
        let cfg = cfg.to_str().unwrap();
        succeeded(&hejob(
            &[
                "--config",
                cfg,
                "--threads",
                "1",
                "--output",
                one.to_str().unwrap(),
            ],
            &[],
        ));
        succeeded(
            &mpirun(
                2,
                &[
                    "--config",
                    cfg,
                    "--threads",
                    "1",
                    "--output",
                    two.to_str().unwrap(),
                ],
            )
            .output()
            .unwrap(),
        );
        let (a, b) = (read_images(&one), read_images(&two));
        assert_eq!((a.ranks, b.ranks), (1, 2), "{packing}");
        assert_eq!(a.index, (20..26).collect::<Vec<i64>>(), "{packing}");
        same_images(&a, &b, packing);
        assert_eq!(a.he_pred, a.plain_pred, "{packing}");
        // fresh keys and encryption noise: HE logits agree within the noise, not bit for bit
        for (x, y) in a.he_logits.iter().zip(&b.he_logits) {
            assert!((x - y).abs() < 1e-2, "{packing}: {x} vs {y}");
        }
        assert_eq!(a.rank, vec![0; 6], "{packing}");
        assert_eq!(
            b.rank,
            vec![0, 0, 0, 1, 1, 1],
            "{packing}: contiguous shards"
        );
    }
}

/// The pids of the processes whose parent is `parent` and whose environment holds `var`.
fn children_with(parent: u32, var: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // the parent pid is the second field after the parenthesised command name
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if ppid == Some(parent) && environ.split(|&b| b == 0).any(|kv| kv == var.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_rank_killed_under_mpirun_loses_nothing_it_finished() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = job(dir.path(), "limit = 12\n");
    let cfg = cfg.to_str().unwrap();
    let cp = dir.path().join("out/result.h5.checkpoint");
    let images_done = || {
        (0..2)
            .map(|r| {
                std::fs::read_to_string(cp.join(format!("rank-{r}.jsonl")))
                    .map(|t| t.matches("\"type\":\"image\"").count())
                    .unwrap_or(0)
            })
            .sum::<usize>()
    };
    let mut launcher = mpirun(2, &["--config", cfg, "--threads", "1"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while images_done() < 3 {
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rank1 = children_with(launcher.id(), "OMPI_COMM_WORLD_RANK=1");
    assert_eq!(rank1.len(), 1, "rank 1 of mpirun {}", launcher.id());
    let killed = Command::new("kill")
        .args(["-9", &rank1[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(
        !launcher.wait().unwrap().success(),
        "mpirun reports the dead rank"
    );
    let before = images_done();
    assert!(before < 12, "killed before the end ({before} done)");
    assert!(!dir.path().join("out/result.h5").exists());
    succeeded(
        &mpirun(2, &["--config", cfg, "--threads", "1"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        read_indices(&dir.path().join("out/result.h5")),
        (0..12).collect::<Vec<i64>>()
    );
    assert_eq!(images_done(), 12, "finished images were not redone");
}

#[test]
fn a_rank_that_reads_another_model_fails_the_job_without_a_hang() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = job(dir.path(), "limit = 4\n");
    // the same network under another file: rank 1 reads a model with another checksum
    let mut model = file::load(&dir.path().join("tiny.h5")).unwrap();
    model
        .provenance
        .insert("copy".into(), "for the mismatch test".into());
    let other = dir.path().join("other.h5");
    file::save(&model, &other).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        dir.path().join("tiny.h5").to_str().unwrap(),
        other.to_str().unwrap(),
    );
    let other_cfg = dir.path().join("other.toml");
    std::fs::write(&other_cfg, text).unwrap();
    // one rank per job file (mpirun's MPMD form); rank 0 generates Galois keys in several sets
    // of 8 steps, and rank 1 must take part in every key broadcast after refusing the set-up
    let plan = tiny_plan(dir.path());
    let steps = plan["rotation_steps"].as_array().unwrap().len();
    assert!(
        steps > 16,
        "{steps} rotation steps: too few for three key sets"
    );
    let exe = env!("CARGO_BIN_EXE_hejob");
    let rank = |cfg: &Path| {
        vec![
            "-n".to_string(),
            "1".into(),
            exe.into(),
            "--config".into(),
            cfg.to_str().unwrap().into(),
            "--threads".into(),
            "1".into(),
        ]
    };
    let mut job = launcher();
    job.args(rank(&cfg)).arg(":").args(rank(&other_cfg));
    let err = fails_without_hanging(job, Duration::from_secs(300));
    assert!(
        err.contains("rank 1 reads a different job than rank 0"),
        "{err}"
    );
    // rank 0 still finished and kept its own shard
    let done =
        std::fs::read_to_string(dir.path().join("out/result.h5.checkpoint/rank-0.jsonl")).unwrap();
    assert_eq!(done.matches("\"type\":\"image\"").count(), 2, "{done}");
}

/// A job that rank 0 can only refuse after generating its keys (the cost table has no costs at
/// the planned ring degree, which only the plan knows) stops every rank with that reason: the
/// others wait for the set-up and must not wait forever.
#[test]
fn a_job_rank_0_refuses_after_key_generation_stops_every_rank() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = job(d, "limit = 2\n");
    let plan = tiny_plan(d);
    let n = plan["params"]["poly_modulus_degree"].as_u64().unwrap();
    let builtin = concat!(env!("CARGO_MANIFEST_DIR"), "/src/he/cost/builtin.json");
    let mut table: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(builtin).unwrap()).unwrap();
    table.retain(|e| e["params"]["poly_modulus_degree"].as_u64() != Some(n));
    assert!(!table.is_empty());
    let costs = d.join("costs.json");
    std::fs::write(&costs, serde_json::to_string(&table).unwrap()).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}costs = {costs:?}\n")).unwrap();
    let job = mpirun(2, &["--config", cfg.to_str().unwrap(), "--threads", "1"]);
    let err = fails_without_hanging(job, Duration::from_secs(120));
    let reason = format!("costs.json has no costs at N={n}");
    assert!(err.contains(&reason), "{err}");
    assert!(
        err.contains(&format!(
            "rank 0 stopped the job: {}",
            d.join("costs.json").display()
        )),
        "{err}"
    );
    assert!(!d.join("out/result.h5").exists());
}

/// `hejob plan --json` of the tiny model in `dir` under the channel-wise packing.
fn tiny_plan(dir: &Path) -> serde_json::Value {
    let model = dir.join("tiny.h5");
    let out = hejob(
        &[
            "plan",
            "--model",
            model.to_str().unwrap(),
            "--packing",
            "channel",
            "--json",
        ],
        &[],
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `job`, which must fail within `limit` (else it hung and is killed); returns its stderr.
fn fails_without_hanging(mut job: Command, limit: Duration) -> String {
    let mut child = job
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("the job hung");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "the job must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The md5 of a file, to show it did not change.
fn md5(path: &Path) -> String {
    hejob::data::checksums::md5_file(path).unwrap()
}

#[test]
fn an_output_that_is_not_this_jobs_result_is_refused_before_any_work_and_left_as_it_was() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = job(d, "limit = 1\nlog_level = \"warn\"\n");
    let model = d.join("tiny.h5");
    let other_result = d.join("other.h5");
    // a result of another job: the same network under another packing
    let other = d.join("other.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&other, text.replace("\"channel\"", "\"batch\"")).unwrap();
    let made = hejob(
        &[
            "--config",
            other.to_str().unwrap(),
            "--output",
            other_result.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::create_dir(d.join("folder.h5")).unwrap();
    let cases: [(&str, PathBuf, &str); 5] = [
        ("its own model", model.clone(), "is the job's own model"),
        ("its own job file", cfg.clone(), "is the job's own job file"),
        ("a folder", d.join("folder.h5"), "is a folder"),
        (
            "a dataset file",
            common::datasets_dir().join("mnist/t10k-labels-idx1-ubyte.gz"),
            "is not an hejob result file (it is not an HDF5 file)",
        ),
        (
            "another job's result",
            other_result.clone(),
            "holds the results of another job (model-md5=",
        ),
    ];
    for (what, output, says) in cases {
        let before = output.is_file().then(|| md5(&output));
        let start = Instant::now();
        let e = error_line(&hejob(
            &[
                "--config",
                cfg.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
            ],
            &[],
        ));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: not refused at once"
        );
        assert!(
            e.contains(&format!("output {}", output.display())) && e.contains(says),
            "{what}: {e}"
        );
        assert_eq!(
            output.is_file().then(|| md5(&output)),
            before,
            "{what}: changed"
        );
        assert!(
            !PathBuf::from(format!("{}.tmp", output.display())).exists(),
            "{what}: a .tmp left"
        );
    }
    // the model file still loads as a model, and the job itself still runs
    file::load(&model).unwrap();
    let out = hejob(&["--config", cfg.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // and a re-run of the same job may replace its own result
    let again = hejob(&["--config", cfg.to_str().unwrap()], &[]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn two_jobs_on_one_output_the_second_exits_at_once_naming_the_first() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 20 images keep the first job busy for seconds after it takes the lock
    let cfg = job(d, "limit = 20\nlog_level = \"warn\"\n");
    let lock = d.join("out/result.h5.lock");
    // a stale lock file from a job that died: taken over
    std::fs::create_dir_all(d.join("out")).unwrap();
    std::fs::write(&lock, "pid 1 on host gone").unwrap();
    let first = common::hejob_command()
        .args(["--config", cfg.to_str().unwrap(), "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let holder = format!("pid {} on host", first.id());
    let start = Instant::now();
    while !std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .starts_with(&holder)
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first job never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = Instant::now();
    let e = error_line(&hejob(&["--config", cfg.to_str().unwrap()], &[]));
    assert!(
        second.elapsed() < Duration::from_secs(10),
        "the second job did not stop at once"
    );
    assert!(
        e.contains("is being written by another job") && e.contains(&holder),
        "{e}"
    );
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        read_indices(&d.join("out/result.h5")),
        (0..20).collect::<Vec<_>>()
    );
    // once the first job is done, the output is free again
    let out = hejob(&["--config", cfg.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The checkpoint's lines, and the same with line `n` (from 1) replaced by `with`.
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn summary_u64(result: &Path, name: &str) -> u64 {
    let f = hdf5::File::open(result).unwrap();
    f.group("summary")
        .unwrap()
        .attr(name)
        .unwrap()
        .read_scalar::<u64>()
        .unwrap()
}

#[test]
fn damaged_edited_duplicated_and_orphan_checkpoint_records_are_found_and_only_they_redone() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // one run at a time: the cases below name checkpoint lines by position
    let cfg = job(d, "limit = 6\nruns_in_flight = 1\n");
    let result = d.join("out/result.h5");
    let checkpoint = d.join("out/result.h5.checkpoint/rank-0.jsonl");
    let run = || {
        let out = hejob(
            &["--config", cfg.to_str().unwrap()],
            &[("RUST_LOG", "warn")],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    run();
    let written = lines(&checkpoint);
    // header, then (image, run) per image: image 2's record is line 6
    assert_eq!(written.len(), 13);
    assert!(written[5].contains("\"index\":2") && written[5].contains("\"md5\""));
    let images_in = |p: &Path| {
        lines(p)
            .iter()
            .filter(|l| l.contains("\"type\":\"image\""))
            .count()
    };
    let check_result = |what: &str| {
        assert_eq!(
            read_indices(&result),
            (0..6).collect::<Vec<i64>>(),
            "{what}"
        );
        let f = hdf5::File::open(&result).unwrap();
        let labels = f.dataset("label").unwrap().read_raw::<i64>().unwrap();
        let official = Dataset::Mnist.load_test(&common::datasets_dir()).unwrap();
        let want: Vec<i64> = (0..6).map(|i| official.labels[i] as i64).collect();
        assert_eq!(labels, want, "{what}: labels");
        let s = f.group("summary").unwrap();
        assert_eq!(
            s.attr("agreement").unwrap().read_scalar::<f64>().unwrap(),
            1.0,
            "{what}"
        );
        assert_eq!(summary_u64(&result, "runs"), 6, "{what}: runs");
    };
    // (what, the damage, what hejob says, image lines in the checkpoint afterwards)
    type Damage = Box<dyn Fn(&mut Vec<String>)>;
    let cases: Vec<(&str, Damage, &str, usize)> = vec![
        (
            "an edited label",
            Box::new(|l: &mut Vec<String>| {
                let label = Dataset::Mnist
                    .load_test(&common::datasets_dir())
                    .unwrap()
                    .labels[2];
                l[5] = l[5].replace(
                    &format!("\"label\":{label}"),
                    &format!("\"label\":{}", (label + 1) % 10),
                );
            }),
            "line 6 is damaged (its checksum does not match its contents)",
            6,
        ),
        (
            "an edited prediction in a line without a checksum (an older checkpoint)",
            Box::new(|l: &mut Vec<String>| {
                for line in l.iter_mut() {
                    if let Some(at) = line.find(",\"md5\"") {
                        line.truncate(at);
                        line.push('}');
                    }
                }
                let he = l[5].split("\"he_pred\":").nth(1).unwrap()[..1].to_string();
                let other = if he == "0" { "1" } else { "0" };
                l[5] = l[5].replace(
                    &format!("\"he_pred\":{he}"),
                    &format!("\"he_pred\":{other}"),
                );
            }),
            "record of image 2 is not trusted (a prediction is not the argmax of its logits)",
            // the untrusted record stays in the file, unused, beside the new one
            7,
        ),
        (
            "a damaged line in the middle",
            Box::new(|l: &mut Vec<String>| l[5] = "{\"type\":\"ima".into()),
            "line 6 is damaged",
            6,
        ),
        (
            "a duplicated run and an orphan run",
            Box::new(|l: &mut Vec<String>| {
                l.push(l[2].clone());
                l.push(l[2].replace("\"images\":[0]", "\"images\":[999999]"));
            }),
            "holds the run of images [0] twice",
            6,
        ),
    ];
    for (what, damage, says, images_after) in cases {
        std::fs::remove_file(&result).unwrap();
        let mut l = written.clone();
        damage(&mut l);
        std::fs::write(&checkpoint, l.join("\n") + "\n").unwrap();
        let err = run();
        assert!(err.contains(says), "{what}: {err}");
        check_result(what);
        assert_eq!(
            images_in(&checkpoint),
            images_after,
            "{what}: only the bad record was redone"
        );
    }
    // a last line cut short (no newline): dropped and redone, and no byte is added to the file
    std::fs::remove_file(&result).unwrap();
    let mut text = written.join("\n");
    text.truncate(text.len() - 10);
    std::fs::write(&checkpoint, &text).unwrap();
    let err = run();
    assert!(err.contains("line 13"), "{err}");
    check_result("a cut last line");
    let bytes = std::fs::read(&checkpoint).unwrap();
    assert!(!bytes.contains(&0), "a NUL byte in the checkpoint");
    // the cut line was image 5's run: its record stays, unused, beside the one made again
    assert_eq!(images_in(&checkpoint), 7);
    assert!(err.contains("record of image 5 has no run"), "{err}");
}
