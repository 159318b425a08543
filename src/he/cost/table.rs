//! Measured single-thread costs of the operations an evaluation is made of, by ring degree and
//! by the number of primes the operand holds: what `hejob bench-ops --json` writes and `hejob
//! plan --costs` reads, or the table built in (measured on this project's 2-core machine).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// An operation the cost model charges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A slot vector encoded (the FFT and an NTT per prime).
    Encode,
    /// A scalar encoded into every slot.
    EncodeScalar,
    /// Public-key encryption of an encoded plaintext.
    Encrypt,
    /// Decryption and decoding.
    Decrypt,
    /// A ciphertext copied.
    Copy,
    /// Ciphertext + ciphertext.
    Add,
    /// Ciphertext + plaintext.
    AddPlain,
    /// Ciphertext × plaintext.
    MultiplyPlain,
    /// Ciphertext × plaintext added into an accumulator (the product in a reused scratch).
    MultiplyPlainAdd,
    /// Ciphertext × ciphertext, relinearized.
    Multiply,
    /// Ciphertext², relinearized.
    Square,
    /// Rescale by the last prime.
    Rescale,
    /// One prime dropped without rescaling.
    ModSwitch,
    /// A rotation (a key switch).
    Rotate,
    /// A ciphertext copied out as a coefficient array.
    ToRaw,
    /// A fused scalar sum's fixed part (the result made into a ciphertext).
    DotBase,
    /// A fused scalar sum's cost per term.
    DotTerm,
    /// One key-switching key (relinearization or Galois) generated over the whole chain,
    /// charged at the chain's primes.
    Keygen,
}

impl std::fmt::Display for Op {
    /// The name a cost file gives it.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(name)) => f.write_str(&name),
            _ => write!(f, "{self:?}"),
        }
    }
}

/// Every operation, in declaration order.
pub const OPS: [Op; 18] = [
    Op::Encode,
    Op::EncodeScalar,
    Op::Encrypt,
    Op::Decrypt,
    Op::Copy,
    Op::Add,
    Op::AddPlain,
    Op::MultiplyPlain,
    Op::MultiplyPlainAdd,
    Op::Multiply,
    Op::Square,
    Op::Rescale,
    Op::ModSwitch,
    Op::Rotate,
    Op::ToRaw,
    Op::DotBase,
    Op::DotTerm,
    Op::Keygen,
];

/// Milliseconds of each operation at several prime counts, at one ring degree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// The prime counts measured, ascending.
    pub primes: Vec<usize>,
    /// Milliseconds per call, one per entry of `primes`.
    pub ms: BTreeMap<Op, Vec<f64>>,
    /// `(threads, factor)`: how much longer an operation takes while that many threads run
    /// operations at once than alone (memory bandwidth, shared cores), ascending in threads.
    #[serde(default)]
    pub slowdown: Vec<(usize, f64)>,
    /// Milliseconds per MB to serialize evaluation keys and load them back (the set-up of
    /// every rank but the first).
    #[serde(default)]
    pub key_ms_per_mb: f64,
}

/// Where a table of costs came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Source {
    /// The table built into hejob.
    BuiltIn,
    /// A `hejob bench-ops --json` file.
    File(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Source::BuiltIn => write!(
                f,
                "the built-in table (hejob bench-ops on this project's 2-core machine)"
            ),
            Source::File(p) => write!(f, "{p}"),
        }
    }
}

/// A cost table that cannot be read or does not cover what is asked.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{source_name} has no costs at N={n} (it has {have:?}); run `hejob bench-ops --json --degrees {n}`")]
    NoDegree {
        source_name: String,
        n: u64,
        have: Vec<u64>,
    },
    #[error("{source_name} has no cost of {op} at N={n}")]
    NoOp { source_name: String, op: Op, n: u64 },
}

/// Costs by ring degree: each operation's measured milliseconds smoothed by the quadratic in
/// the prime count `k` that fits them best (relative least squares), so that one noisy point
/// does not decide a prediction; key switching grows as `k²`, everything else as `k`.
#[derive(Clone, Debug)]
pub struct OpCosts {
    pub source: Source,
    /// Per degree and operation: the quadratic's coefficients and the smallest cost measured,
    /// below which the curve is not taken (a cheap operation's noisy points can bend it to zero).
    fits: BTreeMap<u64, BTreeMap<Op, ([f64; 3], f64)>>,
    slowdown: BTreeMap<u64, Vec<(usize, f64)>>,
    key_ms_per_mb: BTreeMap<u64, f64>,
}

/// One entry of `hejob bench-ops --json` as far as costs go.
#[derive(Deserialize)]
struct Entry {
    params: Params,
    by_primes: Curve,
}

#[derive(Deserialize)]
struct Params {
    poly_modulus_degree: u64,
}

const BUILT_IN: &str = include_str!("builtin.json");

impl OpCosts {
    /// The table built into hejob.
    pub fn built_in() -> Self {
        Self::parse(BUILT_IN, Source::BuiltIn).expect("the built-in cost table parses")
    }

    /// The costs in a `hejob bench-ops --json` file.
    pub fn read(path: &Path) -> Result<Self, CostError> {
        let fail = |reason: String| CostError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        Self::parse(&text, Source::File(path.display().to_string())).map_err(fail)
    }

    /// `bench-ops` JSON (an array of entries, each with its `by_primes` curve).
    fn parse(text: &str, source: Source) -> Result<Self, String> {
        let entries: Vec<Entry> = serde_json::from_str(text)
            .map_err(|e| format!("not the output of `hejob bench-ops --json` ({e})"))?;
        let mut curves = BTreeMap::new();
        for e in entries {
            let c = e.by_primes;
            let n = e.params.poly_modulus_degree;
            let ascending = c.primes.windows(2).all(|w| w[0] < w[1]);
            if c.primes.is_empty() || c.primes[0] == 0 || !ascending {
                return Err(format!(
                    "N={n}: prime counts {:?} are not ascending from 1",
                    c.primes
                ));
            }
            if let Some(op) = OPS.iter().find(|op| !c.ms.contains_key(op)) {
                return Err(format!(
                    "N={n}: no cost of {op} (a file from an older hejob?); measure again with \
                     `hejob bench-ops --json`"
                ));
            }
            for (op, ms) in &c.ms {
                if ms.len() != c.primes.len() || ms.iter().any(|m| !m.is_finite() || *m < 0.0) {
                    return Err(format!(
                        "N={n}: {op} has {} costs for {} prime counts, or one that is not a \
                         non-negative number",
                        ms.len(),
                        c.primes.len()
                    ));
                }
            }
            curves.insert(n, c);
        }
        if curves.is_empty() {
            return Err("no ring degree measured".into());
        }
        Ok(Self::from_curves(source, curves))
    }

    /// A table from measured curves.
    pub fn from_curves(source: Source, curves: BTreeMap<u64, Curve>) -> Self {
        let slowdown = curves
            .iter()
            .map(|(&n, c)| (n, c.slowdown.clone()))
            .collect();
        let key_ms_per_mb = curves.iter().map(|(&n, c)| (n, c.key_ms_per_mb)).collect();
        let fits = curves
            .into_iter()
            .map(|(n, c)| {
                let ops =
                    c.ms.iter()
                        .map(|(&op, ms)| {
                            let floor = ms
                                .iter()
                                .copied()
                                .filter(|m| *m > 0.0)
                                .fold(f64::INFINITY, f64::min);
                            (
                                op,
                                (
                                    quadratic(&c.primes, ms),
                                    if floor.is_finite() { floor } else { 0.0 },
                                ),
                            )
                        })
                        .collect();
                (n, ops)
            })
            .collect();
        Self {
            source,
            fits,
            slowdown,
            key_ms_per_mb,
        }
    }

    /// Seconds to serialize `bytes` of evaluation keys at ring degree `n` and load them back.
    pub fn key_transfer(&self, n: u64, bytes: u64) -> f64 {
        self.key_ms_per_mb.get(&n).copied().unwrap_or(0.0) * bytes as f64 / 1e6 / 1e3
    }

    /// How much longer each operation takes at ring degree `n` while `busy` threads of the node
    /// run at once: linear between the measured thread counts, the last one's beyond them, 1
    /// where nothing was measured.
    pub fn slowdown(&self, n: u64, busy: usize) -> f64 {
        let Some(points) = self.slowdown.get(&n).filter(|p| !p.is_empty()) else {
            return 1.0;
        };
        let (first, last) = (points[0], points[points.len() - 1]);
        if busy <= first.0 {
            return first.1.max(1.0);
        }
        if busy >= last.0 {
            return last.1.max(1.0);
        }
        let i = points.windows(2).position(|w| busy <= w[1].0).unwrap_or(0);
        let ((t0, f0), (t1, f1)) = (points[i], points[i + 1]);
        let x = (busy - t0) as f64 / (t1 - t0) as f64;
        (f0 + x * (f1 - f0)).max(1.0)
    }

    /// Seconds of one `op` at ring degree `n` on an operand of `primes` primes (the smoothed
    /// curve; never below zero).
    pub fn seconds(&self, op: Op, n: u64, primes: usize) -> Result<f64, CostError> {
        let ops = self.fits.get(&n).ok_or_else(|| CostError::NoDegree {
            source_name: self.source.to_string(),
            n,
            have: self.fits.keys().copied().collect(),
        })?;
        let ([a, b, c], floor) = ops.get(&op).ok_or_else(|| CostError::NoOp {
            source_name: self.source.to_string(),
            op,
            n,
        })?;
        let k = primes as f64;
        Ok((a + b * k + c * k * k).max(*floor) / 1e3)
    }
}

/// The coefficients `[a, b, c]` of `a + b·k + c·k²` closest to the points `(ks, ms)` in relative
/// terms (weights `1/ms²`), over the points that are not zero (an operation that does not apply
/// at one prime is measured as 0). With fewer than three points: the line, or the constant.
fn quadratic(ks: &[usize], ms: &[f64]) -> [f64; 3] {
    let points: Vec<(f64, f64)> = ks
        .iter()
        .zip(ms)
        .filter(|(_, &m)| m > 0.0)
        .map(|(&k, &m)| (k as f64, m))
        .collect();
    let terms = points.len().min(3);
    if terms == 0 {
        return [0.0; 3];
    }
    // normal equations of the weighted fit, solved by Gaussian elimination
    let mut a = [[0.0f64; 4]; 3];
    for &(k, m) in &points {
        let w = 1.0 / (m * m);
        let basis = [1.0, k, k * k];
        for i in 0..terms {
            for j in 0..terms {
                a[i][j] += w * basis[i] * basis[j];
            }
            a[i][3] += w * basis[i] * m;
        }
    }
    for col in 0..terms {
        let pivot = (col..terms)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        let pivot_row = a[col];
        for (row, r) in a.iter_mut().enumerate().take(terms) {
            if row != col && pivot_row[col] != 0.0 {
                let f = r[col] / pivot_row[col];
                for (x, p) in r.iter_mut().zip(pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    let mut out = [0.0; 3];
    for i in 0..terms {
        out[i] = if a[i][i] == 0.0 {
            0.0
        } else {
            a[i][3] / a[i][i]
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fit_recovers_a_quadratic_and_smooths_a_stray_point() {
        let ks = [1, 2, 4, 8, 16];
        let exact: Vec<f64> = ks
            .iter()
            .map(|&k| 1.0 + 0.5 * k as f64 + 0.25 * (k * k) as f64)
            .collect();
        let [a, b, c] = quadratic(&ks, &exact);
        assert!((a - 1.0).abs() < 1e-9 && (b - 0.5).abs() < 1e-9 && (c - 0.25).abs() < 1e-9);
        // a zero (not applicable) point is left out; two points give the line through them
        assert_eq!(
            quadratic(&[1, 2, 4], &[0.0, 2.0, 4.0]).map(|x| (x * 1e9).round() / 1e9),
            [0.0, 1.0, 0.0]
        );
        assert_eq!(quadratic(&[3], &[6.0]), [6.0, 0.0, 0.0]);
        // one point off by half changes the curve there by much less
        let mut noisy = exact.clone();
        noisy[2] *= 1.5;
        let [a, b, c] = quadratic(&ks, &noisy);
        let at4 = a + 4.0 * b + 16.0 * c;
        assert!(at4 < exact[2] * 1.35, "{at4} vs {}", exact[2]);
    }

    #[test]
    fn the_built_in_table_covers_every_operation_at_every_degree() {
        let t = OpCosts::built_in();
        for n in crate::he::plan::DEGREES {
            for op in OPS {
                assert!(t.seconds(op, n, 3).unwrap() > 0.0, "{op:?} at N={n}");
            }
        }
    }
}
