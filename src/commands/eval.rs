//! `hejob eval`: a model's plain test accuracy, and the images whose top-2 logit margin an
//! encrypted evaluation's error could overturn.

use std::time::Instant;

use serde_json::json;

use crate::cli::EvalArgs;
use crate::data;
use crate::error::{Error, UsageError};
use crate::model::{file, plain};

/// Evaluates and prints.
pub fn run(a: EvalArgs) -> Result<(), Error> {
    let m = file::load(&a.model)?;
    let images = m
        .dataset
        .load_test(&data::resolve_dir(a.data_dir.as_deref()))?;
    if let Some(limit) = a.limit.filter(|&l| l > images.len()) {
        return Err(UsageError::Limit {
            limit,
            available: images.len(),
            dataset: m.dataset,
        }
        .into());
    }
    if let Some(e) = a.logit_error.filter(|e| !(e.is_finite() && *e >= 0.0)) {
        return Err(UsageError::LogitError(e).into());
    }
    let start = Instant::now();
    let n = a.limit.unwrap_or(images.len());
    let logits = plain::logits(&m, &images, 0..n);
    let accuracy = plain::share_correct(&logits, &images.labels);
    let seconds = start.elapsed().as_secs_f64();
    let margins: Vec<f64> = logits.iter().map(|l| plain::margin(l)).collect();
    let at_risk = a
        .logit_error
        .map_or_else(Vec::new, |e| plain::at_risk(&margins, e));
    let smallest = margins.iter().copied().fold(f64::INFINITY, f64::min);
    if a.json {
        let mut out = json!({ "model": a.model, "dataset": m.dataset, "images": n, "accuracy": accuracy, "seconds": seconds, "smallest_margin": smallest });
        if let Some(e) = a.logit_error {
            out["logit_error"] = json!(e);
            out["at_risk"] = at_risk
                .iter()
                .map(|&i| json!({ "index": i, "margin": margins[i], "label": images.labels[i], "plain_pred": plain::argmax(&logits[i]) }))
                .collect();
        }
        if a.logits {
            out["logits"] = json!(logits);
        }
        println!("{out}");
        return Ok(());
    }
    println!(
        "{}: plain accuracy {:.2}% on {n} {} test images ({seconds:.2} s); smallest top-2 logit margin {smallest:.3e}",
        a.model.display(),
        accuracy * 100.0,
        m.dataset
    );
    if let Some(e) = a.logit_error {
        let listed = if at_risk.is_empty() {
            String::new()
        } else {
            let shown: Vec<String> = at_risk.iter().take(20).map(usize::to_string).collect();
            let more = if at_risk.len() > 20 { ", …" } else { "" };
            format!(" (at risk: {}{more})", shown.join(", "))
        };
        println!(
            "{} image(s) have their two largest logits within 2×{e:e}: an encrypted run whose logit errors stay below {e:e} classifies at least {:.2}% of the images as the plain network does{listed}",
            at_risk.len(),
            100.0 * (n - at_risk.len()) as f64 / n.max(1) as f64,
        );
    }
    Ok(())
}
