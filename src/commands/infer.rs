//! `hejob infer`: test images classified encrypted in one process (client and server), each
//! beside the plain prediction.

use serde_json::json;

use crate::cli::InferArgs;
use crate::data;
use crate::error::Error;
use crate::he::infer::{RunReport, Session};
use crate::model::file;
use crate::private::inputs;

/// Classifies and prints (a line per image, or JSON with the plan and every run).
pub fn run(a: InferArgs) -> Result<(), Error> {
    let m = file::load(&a.model)?;
    let images = m
        .dataset
        .load_test(&data::resolve_dir(a.data_dir.as_deref()))?;
    let indices = super::select_images(images.len(), a.offset, Some(a.limit), a.images)?;
    let session = Session::new(m, a.packing, a.precision.scale_bits)?;
    let (records, runs) = session.classify(&images, &indices)?;
    let upload = inputs::upload(session.plan())?;
    if a.json {
        println!(
            "{}",
            json!({
                "plan": session.plan(),
                "upload": upload,
                "images": records,
                "runs": runs,
            })
        );
        return Ok(());
    }
    for r in &records {
        println!(
            "image {:>5}  label {}  plain {}  he {}  max |error| {:.2e}  latency {:.2} s",
            r.index, r.label, r.plain_pred, r.he_pred, r.max_abs_error, r.latency_s
        );
    }
    let agree = records.iter().filter(|r| r.he_pred == r.plain_pred).count();
    println!(
        "{agree}/{} HE predictions equal the plain ones",
        records.len()
    );
    let n = records.len().max(1) as f64;
    let total = |f: &dyn Fn(&RunReport) -> f64| runs.iter().map(f).sum::<f64>() / n;
    println!(
        "per image: server {:.3} s; client {:.1} ms encrypting (public key) and {:.2} ms \
         decrypting; private mode's upload {:.2} MB (seeded ciphertexts)",
        total(&|r| r.evaluation.seconds),
        1e3 * total(&|r| r.client.encrypt_s),
        1e3 * total(&|r| r.client.decrypt_s),
        upload.per_image_bytes / 1e6
    );
    Ok(())
}
