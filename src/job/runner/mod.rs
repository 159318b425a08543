//! Runs a job over MPI ranks: rank 0 plans, checks the checkpoints, generates the keys and
//! broadcasts the public ones; every rank encrypts and evaluates its shard with all its
//! threads, several runs in flight at once where the cost model says that is faster; rank 0
//! decrypts each finished run as it arrives, appends it to the evaluating rank's checkpoint,
//! and writes the result file at the end. Started without a launcher it is the same job on a
//! single rank.

mod world;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use self::world::{Report, World};
use super::checkpoint::{self, Checkpoints, Entry};
use super::config::{Job, Overrides, Private, Work};
use super::lock::OutputLock;
use super::results::{self, JobResult};
use super::sealed::{self, SealedResult, SealedRun};
use super::JobError;
use crate::data::Images;
use crate::he::cost::{self, Layout};
use crate::he::infer::{ImageRecord, Owner, RunOutput, Worker};
use crate::he::packing::{Evaluation, PackingId};
use crate::he::{plan, Network};
use crate::model::Model;
use crate::private::inputs::Inputs;
use crate::private::ServerKeys;
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
    /// Private mode: each rank's runs (their images, as the inputs file holds them); every
    /// rank reads the public and evaluation keys from the job's key folder itself.
    Upload {
        fingerprint: String,
        shards: Vec<Vec<Vec<usize>>>,
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

/// Runs the job in `config` with `overrides`.
pub fn run(config: &Path, overrides: &Overrides) -> Result<(), JobError> {
    let start = SystemTime::now();
    let world = World::init()?;
    // the model is folded for encryption here, once per job, so that a network that cannot
    // be encrypted stops every rank before any key
    let prepared =
        Job::prepare(config, overrides, world.ranks_on_node()).and_then(|(job, model, work)| {
            let net = Network::from_model(&model)?;
            Ok((job, model, work, net))
        });
    let not_ready = world.not_ready(prepared.is_ok());
    let (job, model, work, net) = prepared?;
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
        packing,
        fingerprint: &fingerprint,
    };
    let outcome = match (&work, world.rank()) {
        (Work::Measure { images, indices }, 0) => ctx.lead(start, images, indices),
        (Work::Private(private), 0) => ctx.lead_private(start, private),
        (work, _) => ctx.follow(work),
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
    packing: PackingId,
    fingerprint: &'a str,
}

/// Where a rank's runs come from: the mode's half on the evaluating side.
trait Source: Sync {
    /// The run of test images `images`, encrypted and evaluated by `worker`.
    fn run(&self, worker: &Worker, images: &[usize]) -> Result<RunOutput, JobError>;
}

/// Measuring mode: the test images, encrypted here with the public key.
struct Encrypted<'a>(&'a Images);

impl Source for Encrypted<'_> {
    fn run(&self, worker: &Worker, images: &[usize]) -> Result<RunOutput, JobError> {
        Ok(worker.run(self.0, images)?)
    }
}

/// Private mode: the key owner's ciphertexts, each run found by its first image.
struct Uploaded<'a> {
    inputs: &'a Inputs,
    context: &'a Context,
    runs: HashMap<usize, usize>,
}

impl<'a> Uploaded<'a> {
    fn new(inputs: &'a Inputs, context: &'a Context) -> Self {
        let runs = inputs
            .runs()
            .enumerate()
            .map(|(r, run)| (run[0], r))
            .collect();
        Self {
            inputs,
            context,
            runs,
        }
    }
}

impl Source for Uploaded<'_> {
    fn run(&self, worker: &Worker, images: &[usize]) -> Result<RunOutput, JobError> {
        let r = images
            .first()
            .and_then(|i| self.runs.get(i))
            .ok_or(JobError::Malformed(
                "a run that the inputs file does not hold",
            ))?;
        let (run, cts) = self.inputs.run(self.context, *r)?;
        Ok(worker.evaluate(run, cts)?)
    }
}

/// What rank 0 makes of each finished run: the mode's half on rank 0.
trait Keep {
    /// The context that runs from other ranks are read under.
    fn context(&self) -> &Context;
    /// Takes in a finished run of `rank` and checkpoints it; returns its number of images.
    fn accept(&mut self, rank: usize, out: RunOutput) -> Result<usize, JobError>;
}

/// Measuring mode: each run decrypted and compared with the plaintext network as it comes.
struct Decrypting<'a> {
    owner: &'a Owner,
    images: &'a Images,
    checkpoints: Checkpoints,
    done: BTreeMap<usize, (usize, ImageRecord)>,
    runs: Vec<(Vec<usize>, Evaluation)>,
}

impl Keep for Decrypting<'_> {
    fn context(&self) -> &Context {
        self.owner.context()
    }

    fn accept(&mut self, rank: usize, out: RunOutput) -> Result<usize, JobError> {
        // on the MPI thread, not the rank's pool, which is busy with rank 0's own runs: taking
        // in a finished run never waits for one of them
        let records = self.owner.records(self.images, &out)?;
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
        self.checkpoints.append(rank, &lines)?;
        let n = records.len();
        for r in records {
            self.done.insert(r.index, (rank, r));
        }
        self.runs.push((out.images, out.evaluation));
        Ok(n)
    }
}

/// Private mode: each run's encrypted outputs kept as they come, undecrypted.
struct Sealing<'a> {
    context: &'a Context,
    checkpoints: Checkpoints,
    dir: &'a Path,
    /// Finished runs by their first image.
    done: BTreeMap<usize, SealedRun>,
}

impl Keep for Sealing<'_> {
    fn context(&self) -> &Context {
        self.context
    }

    fn accept(&mut self, rank: usize, out: RunOutput) -> Result<usize, JobError> {
        let run = SealedRun::save(self.dir, rank, &out)?;
        self.checkpoints.append(rank, &[run.entry()])?;
        let n = out.images.len();
        self.done.insert(out.images[0], run);
        Ok(n)
    }
}

impl Ctx<'_> {
    /// Rank 0 of a measuring job: set up, evaluate its own shard, collect everyone's runs,
    /// write the result.
    fn lead(
        &self,
        start: SystemTime,
        images: &Images,
        indices: &std::ops::Range<usize>,
    ) -> Result<(), JobError> {
        // one job per output: the lock is held until this function returns, the result written
        let (_lock, plan, checkpoints, entries) = match self.open(|_| Ok(())) {
            Ok(o) => o,
            Err(e) => return Err(self.stop(e)),
        };
        let model = self.model;
        let resumed = checkpoint::resume(entries, indices, |r| r.verify(model, images));
        let todo: Vec<usize> = indices
            .clone()
            .filter(|i| !resumed.done.contains_key(i))
            .collect();
        self.log_start(indices.len(), todo.len());
        let mut flights = 1;
        let (plan, mut done, mut runs) = if todo.is_empty() {
            self.world.broadcast(Some(Setup::Idle.to_bytes(&[])));
            (plan, resumed.done, resumed.runs)
        } else {
            let keygen = Instant::now();
            let (model, net, packing) = (self.model.clone(), self.net.clone(), self.packing);
            let ready = self
                .pool
                .install(|| Owner::new(model, net, packing, plan))
                .map_err(JobError::from)
                .and_then(|(owner, keys)| {
                    log::info!(
                        "planned N={} depth {}, generated keys in {:.1} s",
                        owner.plan.params.poly_modulus_degree,
                        owner.plan.depth,
                        keygen.elapsed().as_secs_f64()
                    );
                    let flights = self.flights(&owner.plan, todo.len())?;
                    let public = owner.public_key().to_bytes()?;
                    Ok((owner, keys, flights, public))
                });
            let (owner, keys, chosen, public) = match ready {
                Ok(r) => r,
                Err(e) => return Err(self.stop(e)),
            };
            flights = chosen;
            let shards = shard(&todo, owner.plan.images_per_run, self.world.size());
            if self.world.size() > 1 {
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
            let mut keeper = Decrypting {
                owner: &owner,
                images,
                checkpoints,
                done: resumed.done,
                runs: resumed.runs,
            };
            let source = Encrypted(images);
            self.collect(
                &mut keeper,
                &source,
                &worker,
                &shards[0],
                &pools,
                todo.len(),
            )?;
            let (done, runs) = (keeper.done, keeper.runs);
            (owner.plan, done, runs)
        };
        let records: Vec<(usize, ImageRecord)> =
            indices.clone().filter_map(|i| done.remove(&i)).collect();
        let in_range = |imgs: &[usize]| imgs.iter().all(|i| indices.contains(i));
        runs.retain(|(imgs, _)| in_range(imgs));
        let evaluations: Vec<Evaluation> = runs.into_iter().map(|(_, e)| e).collect();
        let result = JobResult {
            job: &self.job_run(start, flights),
            model: self.model,
            plan: &plan,
            records: &records,
            runs: &evaluations,
        };
        let summary = result.write(&self.job.file.output)?;
        print_summary(self.job, &plan, &summary);
        Ok(())
    }

    /// Rank 0 of a private-mode job: set up, evaluate its own share of the uploaded runs,
    /// collect everyone's encrypted outputs, write them to the result file for the key owner.
    fn lead_private(&self, start: SystemTime, private: &Private) -> Result<(), JobError> {
        let manifest = &private.manifest;
        let checked = |plan: &plan::Plan| {
            manifest
                .check(&manifest.model_md5, plan)
                .map_err(|why| JobError::Keys(crate::private::KeysError::at(&private.keys, why)))
        };
        let (_lock, plan, checkpoints, entries) = match self.open(checked) {
            Ok(o) => o,
            Err(e) => return Err(self.stop(e)),
        };
        let runs: Vec<Vec<usize>> = private.inputs.runs().map(<[usize]>::to_vec).collect();
        let sealed_dir = self.job.checkpoint_dir.join("sealed");
        let done = sealed::resume(entries, &runs);
        let todo: Vec<Vec<usize>> = runs
            .iter()
            .filter(|r| !done.contains_key(&r[0]))
            .cloned()
            .collect();
        let images = private.inputs.head.index.len();
        let todo_images = todo.iter().map(Vec::len).sum();
        self.log_start(images, todo_images);
        let mut flights = 1;
        let done = if todo.is_empty() {
            self.world.broadcast(Some(Setup::Idle.to_bytes(&[])));
            done
        } else {
            let shards = deal(todo, self.world.size());
            let ready = self.flights(&plan, todo_images).and_then(|f| {
                let keys = ServerKeys::open(&private.keys)?;
                Ok((f, keys))
            });
            let (chosen, keys) = match ready {
                Ok(r) => r,
                Err(e) => return Err(self.stop(e)),
            };
            flights = chosen;
            if self.world.size() > 1 {
                let setup = Setup::Upload {
                    fingerprint: self.fingerprint.to_string(),
                    shards: shards.clone(),
                    runs_in_flight: flights,
                };
                self.world.broadcast(Some(setup.to_bytes(&[])));
            }
            let worker = self.server_worker(keys)?;
            let pools = pools(self.job.threads, flights)?;
            let context = worker.context().clone();
            let mut keeper = Sealing {
                context: &context,
                checkpoints,
                dir: &sealed_dir,
                done,
            };
            let source = Uploaded::new(&private.inputs, &context);
            self.collect(
                &mut keeper,
                &source,
                &worker,
                &shards[0],
                &pools,
                todo_images,
            )?;
            keeper.done
        };
        let runs: Vec<SealedRun> = done.into_values().collect();
        let result = SealedResult {
            job: &self.job_run(start, flights),
            plan: &plan,
            key_id: &manifest.key_id,
            runs: &runs,
        };
        result.write(&self.job.file.output)?;
        println!(
            "{images} images evaluated under the key folder's keys (key id {}); the result file \
             {} holds their encrypted logits: decrypt them where the secret key is, with \
             `hejob decrypt --keys DIR --result {}`",
            manifest.key_id,
            self.job.file.output.display(),
            self.job.file.output.display()
        );
        Ok(())
    }

    /// Rank 0: takes the output's lock, plans, checks the plan with `check`, and opens the
    /// checkpoints; returns them with every entry already written.
    fn open(
        &self,
        check: impl FnOnce(&plan::Plan) -> Result<(), JobError>,
    ) -> Result<(OutputLock, plan::Plan, Checkpoints, Vec<Entry>), JobError> {
        let lock = OutputLock::take(&self.job.file.output)?;
        let plan = plan::plan(self.packing, self.net, self.job.file.scale_bits)?;
        check(&plan)?;
        let (checkpoints, entries) = Checkpoints::open(
            &self.job.checkpoint_dir,
            self.world.size(),
            self.fingerprint,
            &plan.digest(),
        )?;
        Ok((lock, plan, checkpoints, entries))
    }

    /// Logs what the job is about to do.
    fn log_start(&self, images: usize, todo: usize) {
        log::info!(
            "job {}: {} images ({} already done), packing {}, {} rank(s) × {} threads",
            self.job.path.display(),
            images,
            images - todo,
            self.packing.name(),
            self.world.size(),
            self.job.threads
        );
    }

    /// A worker over the public half of a key folder (private mode).
    fn server_worker(&self, keys: ServerKeys) -> Result<Worker, JobError> {
        Ok(Worker::new(
            self.model.clone(),
            self.net.clone(),
            self.packing,
            keys.context,
            &keys.public,
            keys.evaluation,
        )?)
    }

    /// Rank 0: this job as its result file records it, started at `start` and ending now.
    fn job_run(&self, start: SystemTime, runs_in_flight: usize) -> results::JobRun {
        results::JobRun {
            job_text: self.job.text.clone(),
            fingerprint: self.fingerprint.to_string(),
            model_path: self.job.file.model.clone(),
            ranks: self.world.size(),
            threads: self.job.threads,
            runs_in_flight,
            start: results::utc(start),
            end: results::utc(SystemTime::now()),
        }
    }

    /// Rank 0, when the job cannot start: tells the other ranks why (they wait for the set-up)
    /// and hands the error back.
    fn stop(&self, e: JobError) -> JobError {
        let stop = Setup::Stop {
            reason: e.to_string(),
        };
        self.world.broadcast(Some(stop.to_bytes(&[])));
        // the others log the reason before this rank exits and the launcher stops them
        self.world.barrier();
        e
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
        if let Some(warning) = cost::crowding(&p) {
            log::warn!("{warning}");
        }
        Ok(p.runs_in_flight)
    }

    /// Rank 0: evaluates `own` runs from `source` on its `pools` (one run in flight each) on
    /// other threads while this (MPI) thread hands every finished run, its own and the
    /// workers', to `keeper`, until all are in.
    fn collect(
        &self,
        keeper: &mut impl Keep,
        source: &impl Source,
        worker: &Worker,
        own: &[Vec<usize>],
        pools: &[rayon::ThreadPool],
        total: usize,
    ) -> Result<(), JobError> {
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<Result<RunOutput, JobError>>();
        let mut failures: Vec<String> = Vec::new();
        std::thread::scope(|s| {
            s.spawn(|| fly(source, worker, own, pools, &stop, tx));
            let gathered = self.gather(keeper, &rx, total, &mut failures);
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
        keeper: &mut impl Keep,
        local: &mpsc::Receiver<Result<RunOutput, JobError>>,
        total: usize,
        failures: &mut Vec<String>,
    ) -> Result<(), JobError> {
        let mut progress = Progress::new("all ranks".into(), total);
        let mut own_running = true;
        let mut workers_left = self.world.size() - 1;
        while own_running || workers_left > 0 {
            if own_running {
                match local.try_recv() {
                    Ok(Ok(out)) => {
                        progress.add(keeper.accept(0, out)?);
                        continue;
                    }
                    Ok(Err(e)) => failures.push(format!("rank 0: {e}")),
                    Err(mpsc::TryRecvError::Disconnected) => own_running = false,
                    Err(mpsc::TryRecvError::Empty) => {}
                }
            }
            match self.world.poll() {
                Some((from, Report::Result(bytes))) => {
                    let out = RunOutput::from_bytes(keeper.context(), &bytes)?;
                    progress.add(keeper.accept(from, out)?);
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
    fn follow(&self, work: &Work) -> Result<(), JobError> {
        let bytes = self.world.broadcast(None);
        let (setup, tail) = Setup::from_bytes(&bytes)?;
        match (setup, work) {
            (Setup::Stop { reason }, _) => {
                let e = JobError::Stopped(reason);
                log::error!("rank {}: {e}", self.world.rank());
                self.world.barrier();
                Err(e)
            }
            (Setup::Idle, _) => Ok(()),
            (
                Setup::Upload {
                    fingerprint,
                    shards,
                    runs_in_flight,
                },
                Work::Private(private),
            ) => {
                let result = self
                    .same_job(&fingerprint)
                    .and_then(|()| self.server_worker(ServerKeys::open(&private.keys)?))
                    .and_then(|worker| {
                        let pools = pools(self.job.threads, runs_in_flight)?;
                        let context = worker.context().clone();
                        let source = Uploaded::new(&private.inputs, &context);
                        let own = &shards[self.world.rank()];
                        self.evaluate_shard(&source, &worker, own, &pools)
                    });
                self.report_end(result)
            }
            (
                Setup::Work {
                    fingerprint,
                    params,
                    shards,
                    public_key_bytes,
                    evaluation_key_pieces,
                    runs_in_flight,
                },
                Work::Measure { images, .. },
            ) => {
                let result = self
                    .join(
                        &fingerprint,
                        &params,
                        (public_key_bytes, tail),
                        evaluation_key_pieces,
                    )
                    .and_then(|worker| {
                        let pools = pools(self.job.threads, runs_in_flight)?;
                        let own = &shards[self.world.rank()];
                        self.evaluate_shard(&Encrypted(images), &worker, own, &pools)
                    });
                self.report_end(result)
            }
            (Setup::Work { fingerprint, .. } | Setup::Upload { fingerprint, .. }, _) => {
                let result = self.same_job(&fingerprint).and(Err(JobError::Malformed(
                    "a set-up of the other mode (private or measuring)",
                )));
                self.report_end(result)
            }
        }
    }

    /// A worker rank: tells rank 0 that its shard is done, or why it failed.
    fn report_end(&self, result: Result<(), JobError>) -> Result<(), JobError> {
        self.world.report(&match &result {
            Ok(()) => Report::Done,
            Err(e) => Report::Failed(e.to_string()),
        });
        result
    }

    /// A worker rank: whether it reads the job that rank 0 set up.
    fn same_job(&self, fingerprint: &str) -> Result<(), JobError> {
        if fingerprint == self.fingerprint {
            return Ok(());
        }
        Err(JobError::DifferentJob {
            rank: self.world.rank(),
            here: self.fingerprint.to_string(),
            root: fingerprint.to_string(),
        })
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
        self.same_job(fingerprint)?;
        if public.len() != public_len {
            return Err(JobError::Malformed("a truncated public key"));
        }
        let context = Context::new(params)?;
        let public = PublicKey::from_bytes(&context, public)?;
        Ok((context, public))
    }

    /// A worker rank's shard: each run from `source` evaluated on one of `pools` (one run in
    /// flight each), and sent back by this (MPI) thread as it finishes. After a failure no new
    /// run starts, but every run that finishes is still sent.
    fn evaluate_shard(
        &self,
        source: &impl Source,
        worker: &Worker,
        runs: &[Vec<usize>],
        pools: &[rayon::ThreadPool],
    ) -> Result<(), JobError> {
        let total = runs.iter().map(Vec::len).sum();
        let mut progress = Progress::new(format!("rank {}", self.world.rank()), total);
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<Result<RunOutput, JobError>>();
        std::thread::scope(|s| {
            s.spawn(|| fly(source, worker, runs, pools, &stop, tx));
            let mut failure: Option<JobError> = None;
            for out in rx {
                let sent = out.and_then(|out| {
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

/// Evaluates `runs` from `source` with one run in flight per pool, all sharing `worker` (its
/// keys and stored weights); each finished run, or a failure, goes to `tx` as it comes. A run
/// starts only while `stop` is unset; a failure sets it.
fn fly(
    source: &impl Source,
    worker: &Worker,
    runs: &[Vec<usize>],
    pools: &[rayon::ThreadPool],
    stop: &AtomicBool,
    tx: mpsc::Sender<Result<RunOutput, JobError>>,
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
                let out = pool.install(|| source.run(worker, run));
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
    let all: Vec<Vec<usize>> = (0..runs)
        .map(|r| todo[cut(r, runs, n)..cut(r + 1, runs, n)].to_vec())
        .collect();
    deal(all, ranks)
}

/// Deals `runs` to `ranks` ranks in contiguous blocks of near-equal length.
fn deal(runs: Vec<Vec<usize>>, ranks: usize) -> Vec<Vec<Vec<usize>>> {
    let n = runs.len();
    (0..ranks)
        .map(|k| runs[cut(k, ranks, n)..cut(k + 1, ranks, n)].to_vec())
        .collect()
}

/// The start of part `i` of `parts` near-equal parts of `len` items.
fn cut(i: usize, parts: usize, len: usize) -> usize {
    i * len / parts.max(1)
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
