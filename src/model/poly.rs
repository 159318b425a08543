//! Polynomial activations: least-squares fits of ReLU and Swish over [-R, R] (integrated, not
//! sampled) and the named activations of the paper's Table 5.3.

use super::{Activation, ModelError};

/// A function that can be fitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Relu,
    Swish,
}

impl Function {
    /// Both functions.
    pub const ALL: [Function; 2] = [Function::Relu, Function::Swish];

    /// Its name (`relu`, `swish`).
    pub fn name(&self) -> &'static str {
        match self {
            Function::Relu => "relu",
            Function::Swish => "swish",
        }
    }

    pub fn eval(&self, x: f64) -> f64 {
        match self {
            Function::Relu => Activation::Relu.apply(x),
            Function::Swish => Activation::Swish.apply(x),
        }
    }
}

/// Every activation name a config or model may use.
pub const NAMES: &[&str] = &[
    "square",
    "relu",
    "swish",
    "relu-rg5-deg2",
    "relu-rg7-deg2",
    "relu-rg5-deg4",
    "relu-rg7-deg4",
    "swish-rg5-deg2",
    "swish-rg7-deg2",
    "swish-rg5-deg4",
    "swish-rg7-deg4",
];

/// The activation called `name`: `square`, exact `relu`/`swish`, or a fit `F-rgR-degD`.
pub fn named(name: &str) -> Result<Activation, ModelError> {
    let unknown = || ModelError::UnknownActivation(name.to_string());
    match name {
        "square" => return Ok(Activation::Poly(vec![0.0, 0.0, 1.0])),
        "relu" => return Ok(Activation::Relu),
        "swish" => return Ok(Activation::Swish),
        _ => {}
    }
    if !NAMES.contains(&name) {
        return Err(unknown());
    }
    let mut parts = name.split('-');
    let function = match parts.next() {
        Some("relu") => Function::Relu,
        Some("swish") => Function::Swish,
        _ => return Err(unknown()),
    };
    let range: f64 = parts
        .next()
        .and_then(|p| p.strip_prefix("rg")?.parse().ok())
        .ok_or_else(unknown)?;
    let degree: usize = parts
        .next()
        .and_then(|p| p.strip_prefix("deg")?.parse().ok())
        .ok_or_else(unknown)?;
    Ok(Activation::Poly(fit(function, range, degree)))
}

/// Least-squares polynomial of `degree` for `f` over the continuous interval [-range, range]:
/// minimises ∫(f − p)² by the normal equations, with the integrals computed by composite
/// Gauss–Legendre quadrature (exact to rounding for these smooth pieces, with x = 0 a node
/// boundary for ReLU's kink). Returns coefficients from degree 0 upward.
pub fn fit(f: Function, range: f64, degree: usize) -> Vec<f64> {
    let n = degree + 1;
    // Work in t = x / range on [-1, 1] for conditioning: p(x) = Σ a_k t^k.
    let mut gram = vec![vec![0.0; n]; n];
    let mut rhs = vec![0.0; n];
    for (j, row) in gram.iter_mut().enumerate() {
        for (k, g) in row.iter_mut().enumerate() {
            let m = j + k;
            *g = if m % 2 == 0 {
                2.0 / (m as f64 + 1.0)
            } else {
                0.0
            };
        }
        rhs[j] = integrate(|t| f.eval(t * range) * t.powi(j as i32));
    }
    let a = solve(gram, rhs);
    // Both functions are x/2 plus an even function, so every odd coefficient above 1 is exactly
    // zero; the solve leaves rounding noise (~1e-16) there, which is snapped back to zero.
    let big = a.iter().fold(0f64, |m, v| m.max(v.abs()));
    a.iter()
        .enumerate()
        .map(|(k, ak)| {
            if ak.abs() < 1e-12 * big {
                0.0
            } else {
                ak / range.powi(k as i32)
            }
        })
        .collect()
}

/// ∫_{-1}^{1} g(t) dt by 5-point Gauss–Legendre on 2048 equal panels.
fn integrate(g: impl Fn(f64) -> f64) -> f64 {
    const NODES: [f64; 5] = [
        0.0,
        -0.538_469_310_105_683_1,
        0.538_469_310_105_683_1,
        -0.906_179_845_938_664,
        0.906_179_845_938_664,
    ];
    const WEIGHTS: [f64; 5] = [
        0.568_888_888_888_888_9,
        0.478_628_670_499_366_5,
        0.478_628_670_499_366_5,
        0.236_926_885_056_189_1,
        0.236_926_885_056_189_1,
    ];
    const PANELS: usize = 2048;
    let h = 2.0 / PANELS as f64;
    (0..PANELS)
        .map(|p| {
            let mid = -1.0 + (p as f64 + 0.5) * h;
            NODES
                .iter()
                .zip(WEIGHTS)
                .map(|(x, w)| w * g(mid + x * h / 2.0))
                .sum::<f64>()
                * h
                / 2.0
        })
        .sum()
}

/// Gaussian elimination with partial pivoting (the Gram matrix is small and positive definite).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (top, below) = a.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for (offset, row) in below.iter_mut().enumerate() {
            let factor = row[col] / pivot_row[col];
            row.iter_mut()
                .zip(pivot_row)
                .skip(col)
                .for_each(|(r, p)| *r -= factor * p);
            b[col + 1 + offset] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's Table 5.3 (NOTES.md), coefficients from degree 0 upward.
    const TABLE_5_3: &[(&str, &[f64])] = &[
        ("relu-rg5-deg2", &[0.47, 0.5, 0.09]),
        ("relu-rg7-deg2", &[0.6569, 0.5, 0.0669]),
        ("relu-rg5-deg4", &[0.2932, 0.5, 0.1639, 0.0, -0.00327]),
        ("relu-rg7-deg4", &[0.41056, 0.5, 0.11707, 0.0, -0.00119]),
        ("swish-rg5-deg2", &[0.24, 0.5, 0.1]),
        ("swish-rg7-deg2", &[0.4517, 0.5, 0.0723]),
        ("swish-rg5-deg4", &[0.07066, 0.5, 0.17, 0.0, -0.00315]),
        ("swish-rg7-deg4", &[0.1773, 0.5, 0.128, 0.0, -0.001328]),
    ];

    /// Half a unit in the last printed digit of `printed`.
    fn rounding(printed: f64) -> f64 {
        let s = format!("{printed}");
        let decimals = s.split('.').nth(1).map_or(0, str::len);
        0.5 * 10f64.powi(-(decimals as i32))
    }

    #[test]
    fn fits_reproduce_table_5_3() {
        for (name, paper) in TABLE_5_3 {
            let Activation::Poly(ours) = named(name).unwrap() else {
                panic!("{name} is not a polynomial")
            };
            assert_eq!(ours.len(), paper.len(), "{name}");
            for (k, (&o, &p)) in ours.iter().zip(paper.iter()).enumerate() {
                let tol = (0.01 * p.abs()).max(rounding(p)) + 1e-12;
                assert!((o - p).abs() <= tol, "{name} x^{k}: ours {o}, paper {p}");
            }
        }
    }

    #[test]
    fn odd_part_is_exactly_half_x() {
        for f in [Function::Relu, Function::Swish] {
            let c = fit(f, 6.0, 5);
            assert!((c[1] - 0.5).abs() < 1e-9 && c[3].abs() < 1e-9 && c[5].abs() < 1e-9);
        }
    }

    #[test]
    fn names_resolve_and_unknown_names_are_errors() {
        for name in NAMES {
            named(name).unwrap();
        }
        assert_eq!(
            named("square").unwrap(),
            Activation::Poly(vec![0.0, 0.0, 1.0])
        );
        let err = named("relu-rg9-deg3").unwrap_err().to_string();
        assert!(
            err.contains("unknown activation") && err.contains("swish-rg7-deg4"),
            "{err}"
        );
    }
}
