//! Whether a result file is still evidence for this build: its model planned again and the
//! parameters and operation counts compared with those the file records; and what explains
//! each image whose encrypted prediction differs from the plain one.

use super::read::{Disagreement, Entry};
use crate::he::counts::OpTally;
use crate::he::{plan, Network};

/// A result file's plan beside this build's (operation counts over all its runs).
#[derive(Clone, Debug, PartialEq)]
pub enum Standing {
    /// This build plans the same parameters and counts: the file stands.
    Current,
    /// This build plans otherwise (what differs): the file is an older build's evidence.
    Differs(String),
    /// It could not be planned again (why: the model is gone, say).
    Unchecked(String),
}

/// Plans the file's model again (from where its job named it, with its fixed scale if any)
/// and compares; a model file that is not the one the job read is not planned.
pub fn standing(entry: &Entry) -> Standing {
    if let Some(recorded) = &entry.model_md5 {
        match crate::data::checksums::md5_file(&entry.model) {
            Ok(md5) if &md5 == recorded => {}
            Ok(md5) => {
                return Standing::Unchecked(format!(
                    "{} is no longer the model the job read (md5 {md5}, the job's {recorded})",
                    entry.model.display()
                ))
            }
            Err(e) => return Standing::Unchecked(e.to_string()),
        }
    }
    let planned = crate::model::file::load(&entry.model)
        .map_err(|e| e.to_string())
        .and_then(|m| Network::from_model(&m).map_err(|e| e.to_string()))
        .and_then(|net| {
            plan::plan(entry.packing, &net, entry.fixed_scale).map_err(|e| e.to_string())
        });
    let p = match planned {
        Ok(p) => p,
        Err(why) => return Standing::Unchecked(why),
    };
    let mut differs = Vec::new();
    let (now, file) = (&p.params, &entry.params);
    if now.poly_modulus_degree != file.poly_modulus_degree {
        differs.push(format!(
            "N {} (file: {})",
            now.poly_modulus_degree, file.poly_modulus_degree
        ));
    }
    if now.coeff_modulus_bits != file.coeff_modulus_bits {
        differs.push(format!(
            "modulus {:?} (file: {:?})",
            now.coeff_modulus_bits, file.coeff_modulus_bits
        ));
    }
    if now.scale_bits != file.scale_bits {
        differs.push(format!(
            "scale 2^{} (file: 2^{})",
            now.scale_bits, file.scale_bits
        ));
    }
    let file = entry.summary.totals.values();
    for ((name, now), was) in OpTally::NAMES.iter().zip(p.totals.values()).zip(file) {
        let now = now * entry.runs;
        if now != was {
            differs.push(format!("{name} {now} (file: {was})"));
        }
    }
    if differs.is_empty() {
        Standing::Current
    } else {
        Standing::Differs(differs.join("; "))
    }
}

/// Why an image's encrypted prediction can differ from the plain one, in words: the two top
/// logits can trade places only when the logit error reaches half the plain margin between
/// them; where a plain logit is beyond `range` too, that error is the wrap-around of a
/// plaintext too large for the first prime.
pub fn explain(d: &Disagreement, range: f64) -> String {
    if d.margin > 2.0 * d.error {
        format!(
            "not explained: the margin {:.2e} exceeds twice the error {:.2e}",
            d.margin, d.error
        )
    } else if d.largest_logit > range {
        format!(
            "a plain logit of {:.3e} is beyond the ±{range} that every slot decrypts at once, \
             and the logits wrapped (error {:.2e}, margin {:.2e})",
            d.largest_logit, d.error, d.margin
        )
    } else {
        format!(
            "the plain margin {:.2e} is within twice the logit error {:.2e}",
            d.margin, d.error
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(margin: f64, error: f64, largest_logit: f64) -> Disagreement {
        Disagreement {
            index: 7,
            label: 1,
            plain_pred: 1,
            he_pred: 2,
            margin,
            error,
            largest_logit,
        }
    }

    #[test]
    fn a_disagreement_is_explained_only_by_an_error_of_half_its_margin() {
        let range = 16384.0;
        assert!(explain(&d(1e-3, 4.1e4, 3.3e6), range).starts_with("a plain logit of 3.300e6"));
        // a large logit that decrypted within half the margin does not explain a flip
        assert!(explain(&d(2e5, 7.7, 3.3e6), range).starts_with("not explained"));
        assert!(explain(&d(1.9e-3, 2.5e-3, 8.0), range).starts_with("the plain margin 1.90e-3"));
        assert!(explain(&d(0.5, 1e-4, 8.0), range).starts_with("not explained"));
    }
}
