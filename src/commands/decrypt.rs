//! `hejob decrypt`: private mode's last step, on the key owner's machine. The encrypted logits
//! of a private-mode result file are decrypted and compared with the plaintext network, and the
//! result is written as a measuring-mode result file, so that summaries and `hejob report`
//! read it as any other; without the test set at hand, the HE predictions alone go to a new
//! file (`job::predictions`).

use std::path::Path;

use crate::cli::{DecryptArgs, ProbeKind};
use crate::data::{self, DataError};
use crate::he::infer::{ImageRecord, Owner, RunOutput};
use crate::he::{plan, Network};
use crate::job::predictions::Predictions;
use crate::job::results::JobResult;
use crate::job::sealed::Sealed;
use crate::model::file;
use crate::private::{KeysError, OwnerKeys};
use crate::Error;

/// Decrypts `a.result` with the keys of `a.keys` into `a.out`, or into `a.result` itself.
pub fn run(a: DecryptArgs) -> Result<(), Error> {
    let at = |path: &Path, why: String| Error::from(KeysError::at(path, why));
    let owner = OwnerKeys::open(&a.keys)?;
    let manifest = &owner.manifest;
    if let Some(out) = &a.out {
        if out.exists() {
            return Err(at(
                out,
                "exists: hejob decrypt never writes over a file".into(),
            ));
        }
    }
    let sealed = Sealed::open(&a.result).map_err(|why| at(&a.result, why))?;
    if sealed.key_id != manifest.key_id {
        return Err(at(
            &a.result,
            format!(
                "its logits are encrypted under other keys (key id {}, the key folder's {}): \
                 decrypt it with the folder its inputs were encrypted for",
                sealed.key_id, manifest.key_id
            ),
        ));
    }
    let model_path = a.model.unwrap_or_else(|| manifest.model.clone());
    super::isolate::probe(ProbeKind::Model, &model_path)?;
    let model = file::load(&model_path)?;
    let md5 = data::checksums::md5_file(&model_path)?;
    let net = Network::from_model(&model)?;
    let plan = plan::plan(manifest.packing, &net, manifest.scale_bits)?;
    manifest
        .check(&md5, &plan)
        .map_err(|why| at(&model_path, why))?;
    if plan.digest() != sealed.plan_digest {
        return Err(at(
            &a.result,
            "its runs were evaluated under another plan than the keys' (another hejob build?)"
                .into(),
        ));
    }
    // the test images to compare with, or (without them) the new file for the HE predictions
    let images = match model
        .dataset
        .load_test(&data::resolve_dir(a.data_dir.as_deref()))
    {
        Ok(images) => Ok(images),
        Err(DataError::Missing { path, .. }) => {
            let Some(out) = a.out.as_deref() else {
                return Err(at(
                    &path,
                    "is missing, and without the test set hejob decrypt writes the HE \
                     predictions only, to a new file: give --out (the encrypted result stays, \
                     to compare later), or --data-dir"
                        .into(),
                ));
            };
            println!(
                "{} is missing: {} gets the HE predictions only, without the plaintext \
                 comparison",
                path.display(),
                out.display()
            );
            Err(out)
        }
        Err(e) => return Err(e.into()),
    };
    let outputs = sealed.outputs().map_err(|why| at(&a.result, why))?;
    let owner = Owner::with_client(model.clone(), net, manifest.packing, plan, owner.client);
    let mut records: Vec<(usize, ImageRecord)> = Vec::new();
    let mut predictions: Vec<(usize, Vec<f64>)> = Vec::new();
    let mut runs = Vec::with_capacity(outputs.len());
    for (bytes, &rank) in outputs.iter().zip(&sealed.run_ranks) {
        let run = RunOutput::from_bytes(owner.context(), bytes)
            .map_err(|e| at(&a.result, e.to_string()))?;
        let he = owner.decrypt(&run)?;
        match &images {
            Ok(images) => records.extend(
                owner
                    .compare(images, &run, he)
                    .into_iter()
                    .map(|r| (rank, r)),
            ),
            Err(_) => predictions.extend(run.images.iter().copied().zip(he)),
        }
        runs.push(run.evaluation);
    }
    if let Err(out) = images {
        predictions.sort_by_key(|(index, _)| *index);
        Predictions {
            sealed: &sealed,
            packing: manifest.packing,
            images: &predictions,
        }
        .write(out)?;
        println!(
            "{}: {} images decrypted (HE predictions and logits)",
            out.display(),
            predictions.len()
        );
        return Ok(());
    }
    records.sort_by_key(|(_, r)| r.index);
    let out = a.out.as_deref().unwrap_or(&a.result);
    let summary = JobResult {
        job: &sealed.job,
        model: &model,
        plan: &owner.plan,
        records: &records,
        runs: &runs,
    }
    .write(out)?;
    println!(
        "{}: {} images decrypted: HE accuracy {:.2}% (plain {:.2}%), agreement {:.2}%, largest \
         logit error {:.1e}",
        out.display(),
        summary.images,
        100.0 * summary.he_accuracy,
        100.0 * summary.plain_accuracy,
        100.0 * summary.agreement,
        summary.max_abs_error
    );
    Ok(())
}
