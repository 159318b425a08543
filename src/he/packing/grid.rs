//! Feature-map geometry shared by the channel-wise packings: where value (y, x) of a plane sits
//! among the slots, and sums along a row or column of it by rotations.

use crate::he::exec::{Backend, Exec};
use crate::he::HeError;

/// Where a feature map's values sit: value `(y, x)` of every channel at slot
/// `y·row + x·col`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Grid {
    pub h: usize,
    pub w: usize,
    pub row: usize,
    pub col: usize,
}

impl Grid {
    /// An `h × w` plane stored row after row with no gaps.
    pub fn compact(h: usize, w: usize) -> Self {
        Self {
            h,
            w,
            row: w,
            col: 1,
        }
    }

    pub fn slot(&self, y: usize, x: usize) -> usize {
        y * self.row + x * self.col
    }

    /// One past the highest slot used.
    pub fn span(&self) -> usize {
        self.slot(self.h - 1, self.w - 1) + 1
    }

    /// A slot vector with `value` at every position of the grid and 0 elsewhere.
    pub fn mask(&self, slots: usize, value: f64) -> Vec<f64> {
        let mut v = vec![0.0; slots.min(self.span())];
        for y in 0..self.h {
            for x in 0..self.w {
                v[self.slot(y, x)] = value;
            }
        }
        v
    }
}

/// Sums the `n` values at slots `0, pitch, …, (n−1)·pitch` into slot 0: log2(n) rotations when
/// `n` is a power of two, else n − 1.
pub(super) fn sum_progression<B: Backend>(
    exec: &Exec<B>,
    ct: B::Ct,
    n: usize,
    pitch: usize,
) -> Result<B::Ct, HeError> {
    if n <= 1 {
        return Ok(ct);
    }
    if n.is_power_of_two() {
        let mut acc = ct;
        let mut k = n / 2;
        while k >= 1 {
            let r = exec.rotate(&acc, (k * pitch) as i64)?;
            exec.add_assign(&mut acc, &r)?;
            k /= 2;
        }
        Ok(acc)
    } else {
        let mut acc = exec.copy(&ct)?;
        for j in 1..n {
            let r = exec.rotate(&ct, (j * pitch) as i64)?;
            exec.add_assign(&mut acc, &r)?;
        }
        Ok(acc)
    }
}
