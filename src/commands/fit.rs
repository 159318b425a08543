//! `hejob fit`: a least-squares polynomial of ReLU or Swish, printed as a polynomial or JSON.

use serde_json::json;

use crate::cli::FitArgs;
use crate::error::{Error, UsageError};
use crate::model::poly;

/// Fits and prints.
pub fn run(a: FitArgs) -> Result<(), Error> {
    if !(a.range.is_finite() && a.range > 0.0) || a.degree > 12 {
        return Err(UsageError::Fit {
            range: a.range,
            degree: a.degree,
        }
        .into());
    }
    let c = poly::fit(a.function, a.range, a.degree);
    if a.json {
        println!("{}", json!({ "coefficients": c }));
        return Ok(());
    }
    let terms: Vec<String> = c
        .iter()
        .enumerate()
        .rev()
        .map(|(k, v)| match k {
            0 => format!("{v:+.6}"),
            1 => format!("{v:+.6}x"),
            _ => format!("{v:+.6}x^{k}"),
        })
        .collect();
    println!("{}", terms.join(" "));
    Ok(())
}
