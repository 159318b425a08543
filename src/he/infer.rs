//! Encrypted inference of test images end to end: the client encrypts, the server evaluates,
//! the client decrypts, and each image is compared with the plaintext reference. The two roles
//! stay separate in the types: the server half only ever holds an `Evaluator`.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::packing::{self, Evaluation, Packing};
use super::plan::{self, Plan};
use super::{HeError, Network};
use crate::data::Images;
use crate::model::{plain, Model};
use crate::seal::{Client, Context, EvaluationKeys, Evaluator, OpTally};

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

/// A model, its plan and a key pair, ready to classify images.
pub struct Session {
    pub model: Model,
    pub net: Network,
    pub plan: Plan,
    pub packing: &'static dyn Packing,
    client: Client,
    evaluator: Evaluator,
}

impl Session {
    /// Plans the model under `packing`, generates keys on the client side and hands the
    /// server side only the evaluation keys.
    pub fn new(model: Model, packing: &'static dyn Packing) -> Result<Self, HeError> {
        let net = Network::from_model(&model)?;
        let plan = plan::plan(packing, &net)?;
        let context = Context::new(&plan.params)?;
        let client = Client::new(context.clone())?;
        let keys = client.evaluation_keys(&plan.rotation_steps, true)?;
        let evaluator = Evaluator::new(context, keys)?;
        Ok(Self {
            model,
            net,
            plan,
            packing,
            client,
            evaluator,
        })
    }

    /// The serialized evaluation keys (what a server receives).
    pub fn evaluation_keys(&self) -> &EvaluationKeys {
        self.evaluator.keys()
    }

    /// Classifies `images[indices]` in runs of the packing's size; returns one record per image
    /// and one evaluation per run.
    pub fn classify(
        &self,
        images: &Images,
        indices: &[usize],
    ) -> Result<(Vec<ImageRecord>, Vec<Evaluation>), HeError> {
        let per_run = self.plan.images_per_run;
        let mut records = Vec::with_capacity(indices.len());
        let mut evaluations = Vec::new();
        for run in indices.chunks(per_run) {
            let (recs, eval) = self.classify_run(images, run)?;
            records.extend(recs);
            evaluations.push(eval);
        }
        Ok((records, evaluations))
    }

    /// One run: encrypt (client), evaluate (server), decrypt and compare (client).
    pub fn classify_run(
        &self,
        images: &Images,
        run: &[usize],
    ) -> Result<(Vec<ImageRecord>, Evaluation), HeError> {
        let inputs: Vec<Vec<f64>> = run
            .iter()
            .map(|&i| {
                self.model
                    .preprocess
                    .apply(self.model.input, images.image(i))
            })
            .collect();
        let cts = packing::encrypt_run(&self.client, self.packing, &self.net, &inputs)?;
        let start = Instant::now();
        let (out, eval) = packing::evaluate_run(&self.evaluator, self.packing, &self.net, cts)?;
        let latency = start.elapsed().as_secs_f64();
        let he = packing::decrypt_run(&self.client, self.packing, &self.net, &out, run.len())?;
        let records = run
            .iter()
            .zip(inputs.iter().zip(he))
            .map(|(&index, (x, he_logits))| {
                let plain_logits = plain::forward(&self.model.layers, self.model.input, x);
                let max_abs_error = plain_logits
                    .iter()
                    .zip(&he_logits)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                ImageRecord {
                    index,
                    label: images.labels[index],
                    plain_pred: plain::argmax(&plain_logits),
                    he_pred: plain::argmax(&he_logits),
                    plain_logits,
                    he_logits,
                    max_abs_error,
                    latency_s: latency,
                    counts: eval.totals,
                }
            })
            .collect();
        Ok((records, eval))
    }
}
