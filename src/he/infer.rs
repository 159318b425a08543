//! Encrypted inference of test images end to end, in two roles that stay separate in the
//! types: the [`Owner`] holds the secret key (plans, generates keys, decrypts, compares with
//! the plaintext reference); a [`Worker`] holds only the public key and the evaluation keys
//! (encrypts its images, evaluates). A [`RunOutput`] is what travels from a worker to the owner.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::counts::OpTally;
use super::exec::Store;
use super::packing::{self, Evaluation, PackingId};
use super::plan::{self, Plan};
use super::{HeError, Network};
use crate::data::Images;
use crate::model::{plain, Model};
use crate::seal::Plaintext;
use crate::seal::{
    Ciphertext, Client, Context, Encryptor, EvaluationKeys, Evaluator, PublicKey, SealError,
};

/// The outcome for one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub index: usize,
    pub label: u8,
    pub plain_logits: Vec<f64>,
    pub he_logits: Vec<f64>,
    pub plain_pred: usize,
    pub he_pred: usize,
    pub max_abs_error: f64,
    /// Seconds of server-side evaluation of the run this image was in (channel-wise: the
    /// image alone; batch-axis: the whole batch).
    pub latency_s: f64,
    /// Operations of that run.
    pub counts: OpTally,
}

/// The largest |he − plain| over an image's logits.
fn max_abs_error(plain: &[f64], he: &[f64]) -> f64 {
    plain
        .iter()
        .zip(he)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

impl ImageRecord {
    /// Whether this record is what the key owner would have written for image `index` of
    /// `images` under `model`: the dataset's label, plain logits that are the plain network's
    /// (to 1e-9, relative), predictions that are the argmax of their logits and the error that
    /// the logits give (to 1e-9, relative). A record that fails was damaged or edited after it was written.
    pub fn verify(&self, model: &Model, images: &Images) -> Result<(), String> {
        let label = *images
            .labels
            .get(self.index)
            .ok_or_else(|| format!("image {} is not in the test set", self.index))?;
        if self.label != label {
            return Err(format!("label {}, the dataset says {label}", self.label));
        }
        let x = model
            .preprocess
            .apply(model.input, images.image(self.index));
        let plain = plain::forward(&model.layers, model.input, &x);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + b.abs());
        if self.plain_logits.len() != plain.len()
            || self.he_logits.len() != plain.len()
            || !self
                .plain_logits
                .iter()
                .zip(&plain)
                .all(|(&a, &b)| close(a, b))
        {
            return Err("its plain logits are not the model's".into());
        }
        if self.plain_pred != plain::argmax(&self.plain_logits)
            || self.he_pred != plain::argmax(&self.he_logits)
        {
            return Err("a prediction is not the argmax of its logits".into());
        }
        if !close(
            self.max_abs_error,
            max_abs_error(&self.plain_logits, &self.he_logits),
        ) {
            return Err("its logit error is not its logits'".into());
        }
        Ok(())
    }
}

/// The encrypted outputs of one run and what the run cost.
pub struct RunOutput {
    /// Test-set indices of the run's images, in slot order.
    pub images: Vec<usize>,
    pub outputs: Vec<Ciphertext>,
    pub evaluation: Evaluation,
    /// Seconds of evaluation (encryption excluded).
    pub latency_s: f64,
}

/// The JSON head of a serialized [`RunOutput`].
#[derive(Serialize, Deserialize)]
struct RunHead {
    images: Vec<usize>,
    evaluation: Evaluation,
    latency_s: f64,
    ciphertext_bytes: Vec<usize>,
}

impl RunOutput {
    /// Bytes: a frame ([`crate::frame`]) of a JSON head and each ciphertext's SEAL bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, HeError> {
        let cts = self
            .outputs
            .iter()
            .map(Ciphertext::to_bytes)
            .collect::<Result<Vec<_>, _>>()?;
        let head = RunHead {
            images: self.images.clone(),
            evaluation: self.evaluation.clone(),
            latency_s: self.latency_s,
            ciphertext_bytes: cts.iter().map(Vec::len).collect(),
        };
        let tail: Vec<&[u8]> = cts.iter().map(Vec::as_slice).collect();
        crate::frame::write(&head, &tail).map_err(|e| HeError::Internal(e.to_string()))
    }

    /// Reads bytes written by [`RunOutput::to_bytes`]; each ciphertext is validated by SEAL
    /// against `context`.
    pub fn from_bytes(context: &Context, bytes: &[u8]) -> Result<Self, HeError> {
        let malformed = |reason: &str| {
            HeError::Seal(SealError::Malformed {
                what: "run output",
                reason: reason.to_string(),
            })
        };
        let (head, mut rest): (RunHead, _) =
            crate::frame::read(bytes).map_err(|e| malformed(&e.to_string()))?;
        let mut outputs = Vec::with_capacity(head.ciphertext_bytes.len());
        for &n in &head.ciphertext_bytes {
            if rest.len() < n {
                return Err(malformed("truncated ciphertext"));
            }
            let (ct, tail) = rest.split_at(n);
            outputs.push(Ciphertext::from_bytes(context, ct)?);
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(malformed("trailing bytes"));
        }
        Ok(Self {
            images: head.images,
            outputs,
            evaluation: head.evaluation,
            latency_s: head.latency_s,
        })
    }
}

/// The key owner: the plan, the key pair, decryption and the comparison with plaintext.
pub struct Owner {
    pub model: Model,
    pub net: Network,
    pub plan: Plan,
    pub packing: PackingId,
    client: Client,
}

impl Owner {
    /// Generates a key pair for `plan` (made for `model`, folded into `net`, under
    /// `packing`); returns the owner and the evaluation keys for exactly the plan's rotation
    /// steps.
    pub fn new(
        model: Model,
        net: Network,
        packing: PackingId,
        plan: Plan,
    ) -> Result<(Self, EvaluationKeys), HeError> {
        let client = Client::new(Context::new(&plan.params)?)?;
        let keys = client.evaluation_keys(&plan.rotation_steps, true)?;
        Ok((Self::with_client(model, net, packing, plan, client), keys))
    }

    /// The owner of an existing key pair (private mode: the secret key read from its file),
    /// made for `plan`.
    pub fn with_client(
        model: Model,
        net: Network,
        packing: PackingId,
        plan: Plan,
        client: Client,
    ) -> Self {
        Self {
            model,
            net,
            plan,
            packing,
            client,
        }
    }

    /// The CKKS context of the keys.
    pub fn context(&self) -> &Arc<Context> {
        self.client.context()
    }

    /// The public key, for workers to encrypt with.
    pub fn public_key(&self) -> &PublicKey {
        self.client.public_key()
    }

    /// A worker in this process, over the owner's public key and `keys`.
    pub fn worker(&self, keys: EvaluationKeys) -> Result<Worker, HeError> {
        Worker::new(
            self.model.clone(),
            self.net.clone(),
            self.packing,
            self.context().clone(),
            self.public_key(),
            keys,
        )
    }

    /// Decrypts a run's outputs and compares each image with the plaintext network.
    pub fn records(&self, images: &Images, run: &RunOutput) -> Result<Vec<ImageRecord>, HeError> {
        let he = self.decrypt(run)?;
        Ok(self.compare(images, run, he))
    }

    /// Each image's logits, decrypted from a run's outputs.
    pub fn decrypt(&self, run: &RunOutput) -> Result<Vec<Vec<f64>>, HeError> {
        packing::decrypt_run(
            &self.client,
            self.packing,
            &self.net,
            &run.outputs,
            run.images.len(),
        )
    }

    /// Each image of a run, its decrypted logits `he` beside the plaintext network's.
    pub fn compare(&self, images: &Images, run: &RunOutput, he: Vec<Vec<f64>>) -> Vec<ImageRecord> {
        run.images
            .iter()
            .zip(he)
            .map(|(&index, he_logits)| {
                let x = self
                    .model
                    .preprocess
                    .apply(self.model.input, images.image(index));
                let plain_logits = plain::forward(&self.model.layers, self.model.input, &x);
                let max_abs_error = max_abs_error(&plain_logits, &he_logits);
                self.check_range(index, &plain_logits, max_abs_error);
                ImageRecord {
                    index,
                    label: images.labels[index],
                    plain_pred: plain::argmax(&plain_logits),
                    he_pred: plain::argmax(&he_logits),
                    plain_logits,
                    he_logits,
                    max_abs_error,
                    latency_s: run.latency_s,
                    counts: run.evaluation.totals,
                }
            })
            .collect()
    }

    /// Says when an image's plain logits leave the range that every slot decrypts at once
    /// ([`CkksParams::logit_range`](crate::seal::CkksParams::logit_range)): a warning where its decrypted logits then wrapped around the
    /// first prime (an error beyond the plan's tolerance relative to the logit), a note where
    /// they came back exact all the same.
    fn check_range(&self, index: usize, plain_logits: &[f64], error: f64) {
        let range = self.plan.params.logit_range();
        let largest = plain::largest_abs(plain_logits);
        if largest < range {
            return;
        }
        if error > self.plan.logit_tolerance * largest {
            log::warn!(
                "image {index}: plain logit {largest:.3e} is beyond the ±{range} that the \
                 plan's first prime holds, and its decrypted logits wrapped (error {error:.3e}): \
                 they are invalid; plan with more headroom (a larger ring or the default scale)"
            );
        } else {
            log::info!(
                "image {index}: plain logit {largest:.3e} is beyond the ±{range} that every \
                 slot holds at once, yet decrypted to within {error:.3e}: its ciphertext's other \
                 slots are small"
            );
        }
    }
}

/// The evaluating side: encrypts its images with the public key and evaluates them with the
/// evaluation keys. It has no way to decrypt.
pub struct Worker {
    model: Model,
    net: Network,
    packing: PackingId,
    encryptor: Encryptor,
    evaluator: Evaluator,
    /// The model's weight plaintexts, encoded once (packings that store them).
    store: Store<Plaintext>,
}

impl Worker {
    /// A worker for `model` (folded into `net`) under `packing` with the owner's public key
    /// and evaluation keys.
    pub fn new(
        model: Model,
        net: Network,
        packing: PackingId,
        context: Arc<Context>,
        public: &PublicKey,
        keys: EvaluationKeys,
    ) -> Result<Self, HeError> {
        let evaluator = Evaluator::new(context.clone(), keys)?;
        let start = Instant::now();
        let store = packing::prepare(&evaluator, packing, &net)?;
        if !store.is_empty() {
            log::info!(
                "encoded {} weight plaintexts once ({:.1} MB) in {:.1} s",
                store.len(),
                store.bytes() as f64 / 1e6,
                start.elapsed().as_secs_f64()
            );
        }
        Ok(Self {
            net,
            model,
            packing,
            encryptor: Encryptor::new(context, public)?,
            evaluator,
            store,
        })
    }

    /// The weight plaintexts this worker encoded once: count and bytes.
    pub fn stored_plaintexts(&self) -> (usize, u64) {
        (self.store.len(), self.store.bytes())
    }

    /// The CKKS context of its keys.
    pub fn context(&self) -> &Arc<Context> {
        self.evaluator.context()
    }

    /// The evaluation keys this worker holds.
    pub fn evaluation_keys(&self) -> &EvaluationKeys {
        self.evaluator.keys()
    }

    /// One run: preprocess and encrypt `images[run]`, then evaluate (timed). The preprocessed
    /// images are freed before the evaluation starts (8,192 CIFAR-10 images are 0.2 GB).
    pub fn run(&self, images: &Images, run: &[usize]) -> Result<RunOutput, HeError> {
        let cts = self.encrypt(images, run)?;
        self.evaluate(run.to_vec(), cts)
    }

    /// Preprocesses `images[run]` and encrypts them as the packing lays them out.
    pub fn encrypt(&self, images: &Images, run: &[usize]) -> Result<Vec<Ciphertext>, HeError> {
        let inputs: Vec<Vec<f64>> = run
            .iter()
            .map(|&i| {
                self.model
                    .preprocess
                    .apply(self.model.input, images.image(i))
            })
            .collect();
        packing::encrypt_run(&self.encryptor, self.packing, &self.net, &inputs)
    }

    /// One run of ciphertexts someone else encrypted (private mode), as the packing lays out
    /// the test images `run`: evaluate (timed).
    pub fn evaluate(&self, run: Vec<usize>, cts: Vec<Ciphertext>) -> Result<RunOutput, HeError> {
        let start = Instant::now();
        let (outputs, evaluation) =
            packing::evaluate_run(&self.evaluator, &self.store, self.packing, &self.net, cts)?;
        Ok(RunOutput {
            images: run,
            outputs,
            evaluation,
            latency_s: start.elapsed().as_secs_f64(),
        })
    }
}

/// An owner and a worker in one process, ready to classify images.
pub struct Session {
    pub owner: Owner,
    pub worker: Worker,
}

impl Session {
    /// Plans the model under `packing` (at a fixed scale if `scale_bits` is given; see
    /// [`plan::plan`]), generates keys, and hands the worker only the public key and the
    /// evaluation keys.
    pub fn new(model: Model, packing: PackingId, scale_bits: Option<u32>) -> Result<Self, HeError> {
        let net = Network::from_model(&model)?;
        let plan = plan::plan(packing, &net, scale_bits)?;
        let (owner, keys) = Owner::new(model, net, packing, plan)?;
        let worker = owner.worker(keys)?;
        Ok(Self { owner, worker })
    }

    /// The plan the keys were made for.
    pub fn plan(&self) -> &Plan {
        &self.owner.plan
    }

    /// Classifies `images[indices]` in runs of the packing's size; returns one record per image
    /// and one report per run.
    pub fn classify(
        &self,
        images: &Images,
        indices: &[usize],
    ) -> Result<(Vec<ImageRecord>, Vec<RunReport>), HeError> {
        let mut records = Vec::with_capacity(indices.len());
        let mut reports = Vec::new();
        let runs = indices.len().div_ceil(self.owner.plan.images_per_run);
        for (k, run) in indices.chunks(self.owner.plan.images_per_run).enumerate() {
            let (recs, report) = self.classify_run(images, run)?;
            let agree = recs.iter().filter(|r| r.he_pred == r.plain_pred).count();
            log::info!(
                "run {}/{runs}: {}, {agree} of {} HE predictions equal the plain ones",
                k + 1,
                brief(run),
                recs.len()
            );
            records.extend(recs);
            reports.push(report);
        }
        Ok((records, reports))
    }

    /// One run: encrypt (the client's half, done here by the worker's public key as the
    /// owner would) and evaluate (worker), decrypt and compare (owner); the client's two parts
    /// timed.
    pub fn classify_run(
        &self,
        images: &Images,
        run: &[usize],
    ) -> Result<(Vec<ImageRecord>, RunReport), HeError> {
        let start = Instant::now();
        let cts = self.worker.encrypt(images, run)?;
        let encrypt_s = start.elapsed().as_secs_f64();
        let out = self.worker.evaluate(run.to_vec(), cts)?;
        let start = Instant::now();
        let he = self.owner.decrypt(&out)?;
        let decrypt_s = start.elapsed().as_secs_f64();
        let records = self.owner.compare(images, &out, he);
        let report = RunReport {
            evaluation: out.evaluation,
            client: ClientTime {
                encrypt_s,
                decrypt_s,
            },
        };
        Ok((records, report))
    }
}

/// One run of [`Session::classify`]: the server's evaluation and the client's time.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    #[serde(flatten)]
    pub evaluation: Evaluation,
    pub client: ClientTime,
}

/// Seconds of a run's client work, on the threads of the process: preprocessing, encoding and
/// encrypting its inputs; decrypting and decoding its outputs.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ClientTime {
    pub encrypt_s: f64,
    pub decrypt_s: f64,
}

/// A list of image indices for a log line: all of them when few, else their count and range.
fn brief(indices: &[usize]) -> String {
    match indices {
        [first, .., last] if indices.len() > 8 => {
            format!("{} images, {first} to {last}", indices.len())
        }
        _ => format!("images {indices:?}"),
    }
}
