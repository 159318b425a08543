//! Polynomials in one tensor: how a chain of `Mul`, `Add`, `Sub`, `Div`, `Neg` and `Pow` nodes
//! over one tensor and constants folds into the coefficients of one activation.

/// `Σ c[k] · x^k`, coefficients from degree 0 upward, trailing zeros trimmed (at least one).
#[derive(Clone, Debug, PartialEq)]
pub struct Poly(Vec<f64>);

/// The highest power an imported polynomial may reach (an encrypted evaluation takes at most
/// degree 4; the plain one any degree up to this).
pub const MAX_DEGREE: usize = 16;

impl Poly {
    /// `x` itself.
    pub fn identity() -> Self {
        Self(vec![0.0, 1.0])
    }

    pub fn constant(c: f64) -> Self {
        Self(vec![c]).trimmed()
    }

    pub fn is_identity(&self) -> bool {
        self.0 == [0.0, 1.0]
    }

    pub fn coefficients(&self) -> &[f64] {
        &self.0
    }

    pub fn degree(&self) -> usize {
        self.0.len() - 1
    }

    fn trimmed(mut self) -> Self {
        while self.0.len() > 1 && self.0.last() == Some(&0.0) {
            self.0.pop();
        }
        self
    }

    pub fn add(&self, other: &Poly) -> Poly {
        let n = self.0.len().max(other.0.len());
        let at = |p: &Poly, k: usize| p.0.get(k).copied().unwrap_or(0.0);
        Poly((0..n).map(|k| at(self, k) + at(other, k)).collect()).trimmed()
    }

    pub fn scale(&self, s: f64) -> Poly {
        Poly(self.0.iter().map(|c| c * s).collect()).trimmed()
    }

    /// The product, or `None` past [`MAX_DEGREE`].
    pub fn mul(&self, other: &Poly) -> Option<Poly> {
        if self.degree() + other.degree() > MAX_DEGREE {
            return None;
        }
        let mut out = vec![0.0; self.0.len() + other.0.len() - 1];
        for (i, a) in self.0.iter().enumerate() {
            for (j, b) in other.0.iter().enumerate() {
                out[i + j] += a * b;
            }
        }
        Some(Poly(out).trimmed())
    }

    /// `self^k`, or `None` past [`MAX_DEGREE`].
    pub fn pow(&self, k: u32) -> Option<Poly> {
        (0..k).try_fold(Poly::constant(1.0), |acc, _| acc.mul(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_polynomial_agree() {
        let x = Poly::identity();
        // 0.5 * x + 0.1 * x ** 2
        let a = x.scale(0.5).add(&x.pow(2).unwrap().scale(0.1));
        // x * (0.5 + 0.1 * x), with the 0.5 added by subtracting -0.5
        let b = x
            .mul(&x.scale(0.1).add(&Poly::constant(-0.5).scale(-1.0)))
            .unwrap();
        assert_eq!(a, Poly(vec![0.0, 0.5, 0.1]));
        assert_eq!(a, b);
        // (x + 1)^3 = 1 + 3x + 3x² + x³
        let cube = x.add(&Poly::constant(1.0)).pow(3).unwrap();
        assert_eq!(cube.coefficients(), [1.0, 3.0, 3.0, 1.0]);
        // x - x = 0 keeps one coefficient
        assert_eq!(x.add(&x.scale(-1.0)).coefficients(), [0.0]);
    }

    #[test]
    fn degrees_past_the_limit_are_none() {
        let x = Poly::identity();
        assert_eq!(x.pow(MAX_DEGREE as u32).unwrap().degree(), MAX_DEGREE);
        assert!(x.pow(MAX_DEGREE as u32 + 1).is_none());
        assert!(x.pow(9).unwrap().mul(&x.pow(8).unwrap()).is_none());
    }
}
