//! Runs a job over MPI ranks: rank 0 plans, checks the checkpoints, generates the keys and
//! broadcasts the public ones; every rank encrypts and evaluates its shard with all its
//! threads, several runs in flight at once where the cost model says that is faster; rank 0
//! decrypts each finished run as it arrives, appends it to the evaluating rank's checkpoint,
//! and writes the result file at the end. Started without a launcher it is the same job on a
//! single rank.

mod world;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use self::world::{Report, World};
use super::checkpoint::{self, Checkpoints, Entry};
use super::config::{Job, Overrides};
use super::lock::OutputLock;
use super::results::{self, JobResult};
use super::JobError;
use crate::data::Images;
use crate::he::cost::{self, Layout};
use crate::he::infer::{ImageRecord, Owner, RunOutput, Worker};
use crate::he::packing::{Evaluation, PackingId};
use crate::he::{plan, HeError, Network};
use crate::model::Model;
use crate::seal::{CkksParams, Context, EvaluationKeys, PublicKey};

/// Seconds between progress lines.
const PROGRESS_EVERY_S: f64 = 10.0;

/// What rank 0 broadcasts once the job is set up.
#[derive(Serialize, Deserialize)]
enum Setup {
    /// Rank 0 cannot run the job; every rank stops.
    Stop { reason: String },
    /// Every image is already in the checkpoints.
    Idle,
    /// Evaluate: the parameters, each rank's runs, the byte length of the public key that
    /// follows the JSON head, and how many broadcasts of evaluation-key pieces come next
    /// ([`EvaluationKeys::pieces`], one at a time, so that no rank holds a second copy of
    /// the keys).
    Work {
        fingerprint: String,
        params: CkksParams,
        shards: Vec<Vec<Vec<usize>>>,
        public_key_bytes: usize,
        evaluation_key_pieces: usize,
        runs_in_flight: usize,
    },
}

impl Setup {
    fn to_bytes(&self, tail: &[&[u8]]) -> Vec<u8> {
        crate::frame::write(self, tail).expect("the set-up serializes")
    }

    /// The head and the bytes after it.
    fn from_bytes(bytes: &[u8]) -> Result<(Self, &[u8]), JobError> {
        crate::frame::read(bytes).map_err(|_| JobError::Malformed("a malformed job set-up"))
    }
}

/// Runs the job in `config` with `overrides`. Rank 0 returns the result file's summary, the
/// other ranks `None`.
pub fn run(config: &Path, overrides: &Overrides) -> Result<Option<results::Summary>, JobError> {
    let start = SystemTime::now();
    let world = World::init()?;
    // the model is folded for encryption here, once per job, so that a network that cannot
    // be encrypted stops every rank before any key
    let prepared =
        Job::prepare(config, overrides, world.ranks_on_node()).and_then(|(job, model, images)| {
            let net = Network::from_model(&model)?;
            Ok((job, model, images, net))
        });
    let not_ready = world.not_ready(prepared.is_ok());
    let (job, model, images, net) = prepared?;
    if !not_ready.is_empty() {
        return Err(JobError::NotReady(not_ready));
    }
    let pool = crate::pool::threads(job.threads)?;
    let packing = job.file.packing;
    let fingerprint = job.fingerprint.clone();
    let ctx = Ctx {
        world: &world,
        pool: &pool,
        job: &job,
        model: &model,
        net: &net,
        images: &images,
        packing,
        fingerprint: &fingerprint,
    };
    let outcome = if world.rank() == 0 {
        ctx.lead(start).map(Some)
    } else {
        ctx.follow().map(|()| None)
    };
    if let Some(mb) = crate::sys::peak_rss_mb() {
        log::info!(
            "rank {}: peak resident memory {:.2} GB",
            world.rank(),
            mb / 1e3
        );
    }
    outcome
}

/// What every rank knows once the job is prepared.
struct Ctx<'a> {
    world: &'a World,
    pool: &'a rayon::ThreadPool,
    job: &'a Job,
    model: &'a Model,
    /// The model folded for encryption, once per job.
    net: &'a Network,
    images: &'a Images,
    packing: PackingId,
    fingerprint: &'a str,
}

/// Rank 0's state while runs come in.
struct Collected {
    checkpoints: Checkpoints,
    done: BTreeMap<usize, (usize, ImageRecord)>,
    runs: Vec<(Vec<usize>, Evaluation)>,
}

impl Ctx<'_> {
    /// Rank 0: set up, evaluate its own shard, collect everyone's runs, write the result.
    fn lead(&self, start: SystemTime) -> Result<results::Summary, JobError> {
        // one job per output: the lock is held until this function returns, the result written
        let opened = OutputLock::take(&self.job.file.output)
            .and_then(|lock| {
                plan::plan(self.packing, self.net, self.job.file.scale_bits)
                    .map(|plan| (lock, plan))
                    .map_err(JobError::from)
            })
            .and_then(|(lock, plan)| {
                Checkpoints::open(
                    &self.job.checkpoint_dir,
                    self.world.size(),
                    self.fingerprint,
                    &plan.digest(),
                )
                .map(|(c, e)| (lock, plan, c, e))
            });
        let (_lock, plan, checkpoints, entries) = match opened {
            Ok(o) => o,
            Err(e) => {
                let stop = Setup::Stop {
                    reason: e.to_string(),
                };
                self.world.broadcast(Some(stop.to_bytes(&[])));
                return Err(e);
            }
        };
        let (model, images) = (self.model, self.images);
        let resumed = checkpoint::resume(entries, &self.job.indices, |r| r.verify(model, images));
        let mut state = Collected {
            checkpoints,
            done: resumed.done,
            runs: resumed.runs,
        };
        let todo: Vec<usize> = self
            .job
            .indices
            .clone()
            .filter(|i| !state.done.contains_key(i))
            .collect();
        log::info!(
            "job {}: {} images ({} already done), packing {}, {} rank(s) × {} threads",
            self.job.path.display(),
            self.job.indices.len(),
            self.job.indices.len() - todo.len(),
            self.packing.name(),
            self.world.size(),
            self.job.threads
        );
        let mut flights = 1;
        let plan = if todo.is_empty() {
            self.world.broadcast(Some(Setup::Idle.to_bytes(&[])));
            plan
        } else {
            let keygen = Instant::now();
            let (model, net, packing) = (self.model.clone(), self.net.clone(), self.packing);
            let (owner, keys) = self
                .pool
                .install(|| Owner::new(model, net, packing, plan))?;
            log::info!(
                "planned N={} depth {}, generated keys in {:.1} s",
                owner.plan.params.poly_modulus_degree,
                owner.plan.depth,
                keygen.elapsed().as_secs_f64()
            );
            let shards = shard(&todo, owner.plan.images_per_run, self.world.size());
            flights = self.flights(&owner.plan, todo.len())?;
            if self.world.size() > 1 {
                let public = owner.public_key().to_bytes()?;
                let setup = Setup::Work {
                    fingerprint: self.fingerprint.to_string(),
                    params: owner.plan.params.clone(),
                    shards: shards.clone(),
                    public_key_bytes: public.len(),
                    evaluation_key_pieces: keys.piece_count(),
                    runs_in_flight: flights,
                };
                self.world.broadcast(Some(setup.to_bytes(&[&public])));
                let sent = self.send_keys(&keys)?;
                log::info!(
                    "sent {:.1} MB of public keys to {} rank(s)",
                    (public.len() + sent) as f64 / 1e6,
                    self.world.size() - 1
                );
            }
            let worker = owner.worker(keys)?;
            let pools = pools(self.job.threads, flights)?;
            self.collect(&owner, &worker, &shards[0], &pools, todo.len(), &mut state)?;
            owner.plan
        };
        let records: Vec<(usize, ImageRecord)> = self
            .job
            .indices
            .clone()
            .filter_map(|i| state.done.remove(&i))
            .collect();
        let in_range = |imgs: &[usize]| imgs.iter().all(|i| self.job.indices.contains(i));
        let evaluations: Vec<Evaluation> = state
            .runs
            .into_iter()
            .filter(|(imgs, _)| in_range(imgs))
            .map(|(_, e)| e)
            .collect();
        let result = JobResult {
            job_text: &self.job.text,
            fingerprint: self.fingerprint,
            model_path: &self.job.file.model,
            model: self.model,
            plan: &plan,
            ranks: self.world.size(),
            threads: self.job.threads,
            runs_in_flight: flights,
            start: results::utc(start),
            end: results::utc(SystemTime::now()),
            records: &records,
            runs: &evaluations,
        };
        let summary = result.write(&self.job.file.output)?;
        print_summary(self.job, &plan, &summary);
        Ok(summary)
    }

    /// Rank 0: the runs each rank keeps in flight (the job's number, or the cost model's
    /// choice), with the model's prediction for this job logged.
    fn flights(&self, plan: &plan::Plan, images: usize) -> Result<usize, JobError> {
        let on_node = self.world.ranks_on_node().max(1);
        let layout = Layout {
            threads: self.job.threads,
            ranks: on_node,
            nodes: self.world.size().div_ceil(on_node),
            images,
            memory_bytes: self.job.memory.0,
            flight: self.job.file.runs_in_flight,
        };
        let p = cost::predict(plan, self.net, &self.job.costs, &layout)?;
        log::info!(
            "cost model ({}): {} run(s) in flight × {} thread(s), {} per run, {:.4} images/s \
             per rank, {} for {} images, peak {:.2} GB per rank (budget {:.1} GB: {})",
            self.job.costs.source,
            p.runs_in_flight,
            p.threads_per_run,
            cost::duration(p.latency_s),
            p.images_per_s,
            cost::duration(p.wall_s),
            images,
            p.peak_rss_gb,
            p.memory_budget_gb,
            self.job.memory.1
        );
        Ok(p.runs_in_flight)
    }

    /// Rank 0: evaluates `own` runs on its `pools` (one run in flight each) on other threads
    /// while this (MPI) thread decrypts and checkpoints every finished run, its own and the
    /// workers', until all are in.
    fn collect(
        &self,
        owner: &Owner,
        worker: &Worker,
        own: &[Vec<usize>],
        pools: &[rayon::ThreadPool],
        total: usize,
        state: &mut Collected,
    ) -> Result<(), JobError> {
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<Result<RunOutput, HeError>>();
        let mut failures: Vec<String> = Vec::new();
        std::thread::scope(|s| {
            s.spawn(|| fly(worker, self.images, own, pools, &stop, tx));
            let gathered = self.gather(owner, &rx, total, state, &mut failures);
            if gathered.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            gathered
        })?;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(JobError::RanksFailed(failures))
        }
    }

    /// Rank 0's event loop: takes finished runs from its own evaluation thread (`local`) and
    /// from the workers until every shard is done or has failed.
    fn gather(
        &self,
        owner: &Owner,
        local: &mpsc::Receiver<Result<RunOutput, HeError>>,
        total: usize,
        state: &mut Collected,
        failures: &mut Vec<String>,
    ) -> Result<(), JobError> {
        let mut progress = Progress::new("all ranks".into(), total);
        let mut own_running = true;
        let mut workers_left = self.world.size() - 1;
        while own_running || workers_left > 0 {
            if own_running {
                match local.try_recv() {
                    Ok(Ok(out)) => {
                        progress.add(self.accept(owner, 0, out, state)?);
                        continue;
                    }
                    Ok(Err(e)) => failures.push(format!("rank 0: {e}")),
                    Err(mpsc::TryRecvError::Disconnected) => own_running = false,
                    Err(mpsc::TryRecvError::Empty) => {}
                }
            }
            match self.world.poll() {
                Some((from, Report::Result(bytes))) => {
                    let out = RunOutput::from_bytes(owner.context(), &bytes)?;
                    progress.add(self.accept(owner, from, out, state)?);
                }
                Some((from, Report::Failed(reason))) => {
                    failures.push(format!("rank {from}: {reason}"));
                    workers_left -= 1;
                }
                Some((_, Report::Done)) => workers_left -= 1,
                None => world::idle(),
            }
        }
        Ok(())
    }

    /// Rank 0: decrypts one finished run of `rank`, compares it with the plaintext network and
    /// appends it to that rank's checkpoint; returns the number of images.
    fn accept(
        &self,
        owner: &Owner,
        rank: usize,
        out: RunOutput,
        state: &mut Collected,
    ) -> Result<usize, JobError> {
        // on this thread, not the rank's pool, which is busy with rank 0's own runs: taking in
        // a finished run never waits for one of them
        let records = owner.records(self.images, &out)?;
        let mut lines: Vec<Entry> = records
            .iter()
            .map(|r| Entry::Image {
                rank,
                record: r.clone(),
            })
            .collect();
        lines.push(Entry::Run {
            rank,
            images: out.images.clone(),
            evaluation: out.evaluation.clone(),
        });
        state.checkpoints.append(rank, &lines)?;
        let n = records.len();
        for r in records {
            state.done.insert(r.index, (rank, r));
        }
        state.runs.push((out.images, out.evaluation));
        Ok(n)
    }

    /// Rank 0: broadcasts the evaluation keys piece by piece, each serialized just before it is
    /// sent; returns the bytes sent. A piece that fails to serialize goes out empty (which the
    /// workers refuse), so that every rank still takes part in every announced broadcast.
    fn send_keys(&self, keys: &EvaluationKeys) -> Result<usize, JobError> {
        let mut sent = 0;
        let mut failure = None;
        for piece in keys.pieces() {
            let piece = piece.unwrap_or_else(|e| {
                failure.get_or_insert(e);
                Vec::new()
            });
            sent += piece.len();
            self.world.broadcast(Some(piece));
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(sent),
        }
    }

    /// A worker rank: receives the `pieces` broadcasts of rank 0's [`Self::send_keys`], loading
    /// each piece as it arrives. Every announced piece is received, even after one is refused,
    /// so that rank 0 never waits on this rank.
    fn receive_keys(&self, context: &Context, pieces: usize) -> Result<EvaluationKeys, JobError> {
        let mut left = pieces;
        let keys = EvaluationKeys::from_pieces(context, || -> Result<Vec<u8>, JobError> {
            left = left
                .checked_sub(1)
                .ok_or(JobError::KeyPiecesMissing { announced: pieces })?;
            let piece = self.world.broadcast(None);
            if piece.is_empty() {
                return Err(JobError::Malformed(
                    "no evaluation keys (it could not serialize them)",
                ));
            }
            Ok(piece)
        });
        self.skip_broadcasts(left);
        let keys = keys?;
        if left > 0 {
            return Err(JobError::KeyPiecesLeft {
                announced: pieces,
                left,
            });
        }
        Ok(keys)
    }

    /// A worker rank: takes part in `n` broadcasts and drops what they bring.
    fn skip_broadcasts(&self, n: usize) {
        for _ in 0..n {
            self.world.broadcast(None);
        }
    }

    /// A worker rank: receives the set-up, evaluates its shard, reports each run to rank 0.
    fn follow(&self) -> Result<(), JobError> {
        let bytes = self.world.broadcast(None);
        let (setup, tail) = Setup::from_bytes(&bytes)?;
        match setup {
            Setup::Stop { reason } => Err(JobError::Stopped(reason)),
            Setup::Idle => Ok(()),
            Setup::Work {
                fingerprint,
                params,
                shards,
                public_key_bytes,
                evaluation_key_pieces,
                runs_in_flight,
            } => {
                let result = self
                    .join(
                        &fingerprint,
                        &params,
                        (public_key_bytes, tail),
                        evaluation_key_pieces,
                    )
                    .and_then(|worker| {
                        let pools = pools(self.job.threads, runs_in_flight)?;
                        self.evaluate_shard(&worker, &shards[self.world.rank()], &pools)
                    });
                self.world.report(&match &result {
                    Ok(()) => Report::Done,
                    Err(e) => Report::Failed(e.to_string()),
                });
                result
            }
        }
    }

    /// A worker rank's side of the set-up: the checks, the public key that came with the set-up,
    /// then the evaluation keys from the broadcasts that follow it (taken part in even when a
    /// check fails, so that rank 0 never waits on this rank).
    fn join(
        &self,
        fingerprint: &str,
        params: &CkksParams,
        (public_len, public): (usize, &[u8]),
        key_pieces: usize,
    ) -> Result<Worker, JobError> {
        let checked = self.check_setup(fingerprint, params, public_len, public);
        let (context, public) = match checked {
            Ok(ready) => ready,
            Err(e) => {
                self.skip_broadcasts(key_pieces);
                return Err(e);
            }
        };
        let evaluation = self.receive_keys(&context, key_pieces)?;
        Ok(Worker::new(
            self.model.clone(),
            self.net.clone(),
            self.packing,
            context,
            &public,
            evaluation,
        )?)
    }

    /// Whether this rank reads the job rank 0 planned; the context and the public key.
    fn check_setup(
        &self,
        fingerprint: &str,
        params: &CkksParams,
        public_len: usize,
        public: &[u8],
    ) -> Result<(Arc<Context>, PublicKey), JobError> {
        if fingerprint != self.fingerprint {
            return Err(JobError::DifferentJob {
                rank: self.world.rank(),
                here: self.fingerprint.to_string(),
                root: fingerprint.to_string(),
            });
        }
        if public.len() != public_len {
            return Err(JobError::Malformed("a truncated public key"));
        }
        let context = Context::new(params)?;
        let public = PublicKey::from_bytes(&context, public)?;
        Ok((context, public))
    }

    /// A worker rank's shard: each run encrypted and evaluated on one of `pools` (one run in
    /// flight each), and sent back by this (MPI) thread as it finishes. After a failure no new
    /// run starts, but every run that finishes is still sent.
    fn evaluate_shard(
        &self,
        worker: &Worker,
        runs: &[Vec<usize>],
        pools: &[rayon::ThreadPool],
    ) -> Result<(), JobError> {
        let total = runs.iter().map(Vec::len).sum();
        let mut progress = Progress::new(format!("rank {}", self.world.rank()), total);
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<Result<RunOutput, HeError>>();
        std::thread::scope(|s| {
            s.spawn(|| fly(worker, self.images, runs, pools, &stop, tx));
            let mut failure: Option<JobError> = None;
            for out in rx {
                let sent = out.map_err(JobError::from).and_then(|out| {
                    self.world.report(&Report::Result(out.to_bytes()?));
                    Ok(out.images.len())
                });
                match sent {
                    Ok(n) => progress.add(n),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        failure.get_or_insert(e);
                    }
                }
            }
            failure.map_or(Ok(()), Err)
        })
    }
}

/// `threads` shared out among `flights` pools (the first ones a thread more where they do not
/// divide evenly): one per run in flight.
fn pools(threads: usize, flights: usize) -> Result<Vec<rayon::ThreadPool>, JobError> {
    let flights = flights.clamp(1, threads.max(1));
    (0..flights)
        .map(|i| {
            let share = cost::trace::task_threads(threads, flights, i);
            Ok(crate::pool::threads(share)?)
        })
        .collect()
}

/// Evaluates `runs` with one run in flight per pool, all sharing `worker` (its keys and stored
/// weights); each finished run, or a failure, goes to `tx` as it comes. A run starts only while
/// `stop` is unset; a failure sets it.
fn fly(
    worker: &Worker,
    images: &Images,
    runs: &[Vec<usize>],
    pools: &[rayon::ThreadPool],
    stop: &AtomicBool,
    tx: mpsc::Sender<Result<RunOutput, HeError>>,
) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for pool in pools {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Some(run) = runs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let out = pool.install(|| worker.run(images, run));
                if out.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                if tx.send(out).is_err() {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            });
        }
    });
}

/// Splits `todo` into runs of at most `per_run` images, of near-equal sizes and at least one
/// per rank when there are enough images, and deals the runs to `ranks` ranks in contiguous
/// blocks of near-equal length.
fn shard(todo: &[usize], per_run: usize, ranks: usize) -> Vec<Vec<Vec<usize>>> {
    let n = todo.len();
    let runs = n.div_ceil(per_run.max(1)).max(ranks.min(n));
    let cut = |i: usize, parts: usize, len: usize| i * len / parts.max(1);
    let all: Vec<Vec<usize>> = (0..runs)
        .map(|r| todo[cut(r, runs, n)..cut(r + 1, runs, n)].to_vec())
        .collect();
    (0..ranks)
        .map(|k| all[cut(k, ranks, runs)..cut(k + 1, ranks, runs)].to_vec())
        .collect()
}

/// Logs images done, rate and time left at a steady interval.
struct Progress {
    label: String,
    total: usize,
    done: usize,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(label: String, total: usize) -> Self {
        Self {
            label,
            total,
            done: 0,
            started: Instant::now(),
            last: Instant::now(),
        }
    }

    fn add(&mut self, images: usize) {
        self.done += images;
        if self.last.elapsed().as_secs_f64() < PROGRESS_EVERY_S && self.done < self.total {
            return;
        }
        let rate = self.done as f64 / self.started.elapsed().as_secs_f64();
        let left = (self.total - self.done.min(self.total)) as f64 / rate;
        log::info!(
            "{}: {}/{} images, {rate:.3} images/s, {} left",
            self.label,
            self.done,
            self.total,
            clock(left)
        );
        self.last = Instant::now();
    }
}

/// Seconds as h:mm:ss.
fn clock(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
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

#[cfg(test)]
mod tests {
    use super::shard;

    #[test]
    fn channel_shards_are_contiguous_blocks() {
        let todo: Vec<usize> = (10..20).collect();
        let s = shard(&todo, 1, 3);
        let flat: Vec<Vec<usize>> = s.iter().map(|r| r.concat()).collect();
        assert_eq!(
            flat,
            vec![vec![10, 11, 12], vec![13, 14, 15], vec![16, 17, 18, 19]]
        );
        assert!(s.iter().flatten().all(|run| run.len() == 1));
    }

    #[test]
    fn batch_shards_are_whole_runs_of_near_equal_size() {
        let todo: Vec<usize> = (0..10_000).collect();
        // one rank: two runs of 5000, not 8192 + 1808
        let one = shard(&todo, 8192, 1);
        assert_eq!(
            one[0].iter().map(Vec::len).collect::<Vec<_>>(),
            vec![5000, 5000]
        );
        // four ranks: one run each, every image once, in order
        let four = shard(&todo, 8192, 4);
        assert!(four.iter().all(|r| r.len() == 1 && r[0].len() == 2500));
        assert_eq!(four.concat().concat(), todo);
        // more ranks than images: the extra ranks get nothing
        let few = shard(&[7, 8], 8192, 3);
        assert_eq!(few, vec![vec![], vec![vec![7]], vec![vec![8]]]);
    }
}
