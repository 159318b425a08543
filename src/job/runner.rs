//! Runs a job: checks it, resumes from its checkpoint, classifies the remaining test images
//! encrypted (client encrypts, server evaluates, client decrypts), appends each finished run to
//! the checkpoint, and writes the result file.
//!
//! This build runs a job on one rank using every thread of the machine; distribution across
//! MPI ranks is not built yet, and a multi-rank launch is refused rather than run N times over.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Instant, SystemTime};

use super::checkpoint::{self, Checkpoint, Entry};
use super::config::{Job, Overrides};
use super::results::{self, JobResult};
use super::JobError;
use crate::he::infer::{ImageRecord, Session};
use crate::he::packing::{self, Evaluation};
use crate::he::{plan, Network};

/// Seconds between progress lines.
const PROGRESS_EVERY_S: f64 = 10.0;

/// Runs the job in `config` with `overrides`; returns the result file's summary.
pub fn run(config: &Path, overrides: &Overrides) -> Result<results::Summary, crate::Error> {
    refuse_multi_rank()?;
    let start = SystemTime::now();
    let (job, model, images) = Job::prepare(config, overrides)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(job.threads)
        .build()
        .map_err(|e| JobError::Launch(format!("cannot start {} threads: {e}", job.threads)))?;
    pool.install(|| {
        let packing = packing::by_name(&job.file.packing)?;
        let fp = checkpoint::fingerprint(&job.file.model, job.file.dataset.name(), packing.name())?;
        let (mut cp, entries) = Checkpoint::open(&job.checkpoint_dir, 0, &fp)?;
        let mut done: BTreeMap<usize, (usize, ImageRecord)> = BTreeMap::new();
        let mut runs: Vec<(Vec<usize>, Evaluation)> = Vec::new();
        for e in entries {
            match e {
                Entry::Image { rank, record } => {
                    done.insert(record.index, (rank, record));
                }
                Entry::Run {
                    images, evaluation, ..
                } => runs.push((images, evaluation)),
                Entry::Header { .. } => {}
            }
        }
        let todo: Vec<usize> = job
            .indices
            .clone()
            .filter(|i| !done.contains_key(i))
            .collect();
        log::info!(
            "job {}: {} images ({} already done), packing {}, {} threads",
            job.path.display(),
            job.indices.len(),
            job.indices.len() - todo.len(),
            packing.name(),
            job.threads
        );
        let plan = if todo.is_empty() {
            plan::plan(packing, &Network::from_model(&model)?)?
        } else {
            let keygen = Instant::now();
            let session = Session::new(model.clone(), packing)?;
            log::info!(
                "planned N={} depth {}, generated keys in {:.1} s",
                session.plan.params.poly_modulus_degree,
                session.plan.depth,
                keygen.elapsed().as_secs_f64()
            );
            let started = Instant::now();
            let mut last_log = Instant::now();
            let mut finished = 0;
            for run in todo.chunks(session.plan.images_per_run) {
                let (records, evaluation) = session.classify_run(&images, run)?;
                let mut lines: Vec<Entry> = records
                    .iter()
                    .map(|r| Entry::Image {
                        rank: 0,
                        record: r.clone(),
                    })
                    .collect();
                lines.push(Entry::Run {
                    rank: 0,
                    images: run.to_vec(),
                    evaluation: evaluation.clone(),
                });
                cp.append(&lines)?;
                for r in records {
                    done.insert(r.index, (0, r));
                }
                runs.push((run.to_vec(), evaluation));
                finished += run.len();
                if last_log.elapsed().as_secs_f64() >= PROGRESS_EVERY_S || finished == todo.len() {
                    let rate = finished as f64 / started.elapsed().as_secs_f64();
                    log::info!(
                        "rank 0: {finished}/{} images, {rate:.3} images/s, ETA {:.0} s",
                        todo.len(),
                        (todo.len() - finished) as f64 / rate
                    );
                    last_log = Instant::now();
                }
            }
            session.plan
        };
        let records: Vec<(usize, ImageRecord)> = job
            .indices
            .clone()
            .filter_map(|i| done.remove(&i))
            .collect();
        let in_range = |imgs: &[usize]| imgs.iter().all(|i| job.indices.contains(i));
        let evaluations: Vec<Evaluation> = runs
            .into_iter()
            .filter(|(imgs, _)| in_range(imgs))
            .map(|(_, e)| e)
            .collect();
        let result = JobResult {
            job_text: &job.text,
            model_path: &job.file.model,
            model: &model,
            plan: &plan,
            ranks: 1,
            threads: job.threads,
            start: results::utc(start),
            end: results::utc(SystemTime::now()),
            records: &records,
            runs: &evaluations,
        };
        let summary = result.write(&job.file.output)?;
        print_summary(&job, &plan, &summary);
        Ok(summary)
    })
}

/// Until runs are distributed over MPI ranks, a launch with several ranks would evaluate the
/// whole job once per rank and race on one result file: refuse it with the way to launch.
fn refuse_multi_rank() -> Result<(), JobError> {
    for var in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"] {
        if let Some(n) = std::env::var(var)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
        {
            if n > 1 {
                return Err(JobError::Launch(format!(
                    "launched as {n} ranks ({var}={n}), but this hejob build runs a job on one rank \
                     with all its threads; start it once, e.g. `hejob --config FILE` or `mpirun -n 1 --bind-to none hejob --config FILE`"
                )));
            }
        }
    }
    Ok(())
}

fn print_summary(job: &Job, plan: &plan::Plan, s: &results::Summary) {
    println!("| job | packing | images | plain acc. | HE acc. | agreement | max logit error | mean latency (s) | per image (s) | HMulPlain | rotations | rescales |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {:.2}% | {:.2}% | {:.2}% | {:.1e} | {:.3} | {:.3} | {} | {} | {} |",
        job.path.display(),
        plan.packing,
        s.images,
        100.0 * s.plain_accuracy,
        100.0 * s.he_accuracy,
        100.0 * s.agreement,
        s.max_abs_error,
        s.mean_latency_s,
        s.amortized_latency_s,
        s.per_inference.hmulplain,
        s.per_inference.rotation,
        s.per_inference.rescale
    );
    println!("result file: {}", job.file.output.display());
}
