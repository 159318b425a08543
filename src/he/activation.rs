//! Polynomial activations on ciphertexts with the fewest levels: ⌈log2 d⌉ for a monic
//! polynomial of degree d ≤ 4 (the folds make the paper's activations monic), one more otherwise.
//! Every term lands on the same level with the same scale, and one rescale finishes the sum.

use std::sync::Arc;

use super::exec::{Backend, Exec};
use super::HeError;

/// The highest degree the packings evaluate.
pub const MAX_DEGREE: usize = 4;

/// Coefficients without trailing zeros; an error for a constant or a degree above 4.
pub fn trimmed(coeffs: &[f64]) -> Result<&[f64], String> {
    let d = coeffs.iter().rposition(|c| *c != 0.0).unwrap_or(0);
    if d == 0 {
        return Err("a constant activation carries no information".into());
    }
    if d > MAX_DEGREE {
        return Err(format!(
            "degree {d} activations are not supported (at most {MAX_DEGREE})"
        ));
    }
    Ok(&coeffs[..=d])
}

/// Levels the activation consumes: 1 for degree 1 and monic degree 2, 2 for degree 3, monic
/// degree 4 and other degree 2, 3 for other degree 4.
pub fn depth(coeffs: &[f64]) -> usize {
    let d = coeffs.len() - 1;
    let monic = coeffs[d] == 1.0;
    match d {
        1 => 1,
        2 if monic => 1,
        2 | 3 => 2,
        _ if monic => 2,
        _ => 3,
    }
}

/// Evaluates `Σ c_k x^k` on `x`. `constant(c, level, scale)` encodes the constant term where
/// it belongs (a packing masks it to its valid slots so that unused slots stay zero).
///
/// Every term is brought to the same level `top` at scale `S_top²` (the level-scale table of
/// `exec`), summed, and rescaled once: a monic leading power is left unrescaled from its last
/// product, `c₃x³` is `x² · (c₃x)` so that it costs no extra level, and the other terms are a
/// power times a scalar encoded at exactly the scale that lands on `S_top²`.
pub fn evaluate<B: Backend>(
    exec: &Exec<B>,
    x: B::Ct,
    coeffs: &[f64],
    constant: &dyn Fn(f64, usize, f64) -> Result<Arc<B::Pt>, HeError>,
) -> Result<B::Ct, HeError> {
    let d = coeffs.len() - 1;
    let l = exec.level(&x);
    let depth = depth(coeffs);
    if l < depth {
        return Err(HeError::TooDeep);
    }
    let top = l + 1 - depth;
    let target = exec.scale(top) * exec.scale(top);
    let monic = coeffs[d] == 1.0;
    // x² rescaled to level l−1, when any term needs it as a factor
    let x2 = if d >= 3 || (d == 2 && !monic) {
        let mut s = exec.square(&x)?;
        exec.rescale(&mut s)?;
        Some(s)
    } else {
        None
    };
    let x2 = || {
        x2.as_ref()
            .ok_or(HeError::Internal("x² not computed".into()))
    };
    // c·x rescaled to level l−1 with the table scale (None if c encodes to zero)
    let scaled_x = |c: f64| -> Result<Option<B::Ct>, HeError> {
        let pc = exec.encode_scalar(c, l, exec.scale(l))?;
        let Some(mut t) = exec.multiply_plain(&x, &pc)? else {
            return Ok(None);
        };
        exec.rescale(&mut t)?;
        Ok(Some(t))
    };
    // the terms are independent once x² exists: computed in parallel, added in order
    let term = |k: usize| -> Result<Option<B::Ct>, HeError> {
        let c = coeffs[k];
        if c == 0.0 {
            return Ok(None);
        }
        Ok(match k {
            2 if d == 2 && monic => Some(exec.square(&x)?),
            3 if top + 1 == l => match scaled_x(c)? {
                Some(cx) => Some(exec.multiply(x2()?, &cx)?),
                None => None,
            },
            4 if monic => Some(exec.square(x2()?)?),
            _ => {
                let mut power = match k {
                    1 => exec.copy(&x)?,
                    2 => exec.copy(x2()?)?,
                    3 => {
                        let one = scaled_x(1.0)?.ok_or(HeError::Internal("x·1 vanished".into()))?;
                        let mut p = exec.multiply(x2()?, &one)?;
                        exec.rescale(&mut p)?;
                        p
                    }
                    _ => {
                        let mut p = exec.square(x2()?)?;
                        exec.rescale(&mut p)?;
                        p
                    }
                };
                let have = exec.scale(exec.level(&power));
                exec.mod_switch_to(&mut power, top)?;
                let pc = exec.encode_scalar(c, top, target / have)?;
                exec.multiply_plain(&power, &pc)?
            }
        })
    };
    // highest power first
    let terms: Vec<Option<B::Ct>> = crate::he::parallel::par_map(d, |i| term(d - i))?;
    let mut sum: Option<B::Ct> = None;
    for t in terms.into_iter().flatten() {
        exec.accumulate(&mut sum, t)?;
    }
    let mut sum = sum.ok_or(HeError::Internal("activation without terms".into()))?;
    if coeffs[0] != 0.0 {
        let c0 = constant(coeffs[0], top, target)?;
        exec.add_plain_assign(&mut sum, &c0)?;
    }
    exec.rescale(&mut sum)?;
    Ok(sum)
}
