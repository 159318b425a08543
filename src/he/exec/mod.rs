//! The operations a packing evaluates with, counted in one place and generic over a
//! [`Backend`]: [`Real`] runs CKKS on SEAL ciphertexts, [`Symbolic`] only tracks levels, memory
//! and rotation steps, and [`Prepare`] walks the evaluation symbolically while it encodes the
//! weight plaintexts for real. Each backend has its own ciphertext type, so values of two
//! executions cannot be mixed: such code does not compile.
//!
//! ```compile_fail
//! use hejob::he::exec::{Exec, Real, Symbolic};
//! fn mixed(real: &Exec<Real>, sym: &Exec<Symbolic>) {
//!     let x = sym.backend().input(2);
//!     real.square(&x); // a symbolic ciphertext is not a SEAL one
//! }
//! ```
//!
//! The planner runs the packings on [`Symbolic`], so a plan's predicted counts, depth and
//! Galois-key steps are those of the real evaluation by construction: [`Exec`] decides what is
//! counted, the same way for every backend.
//!
//! Weight plaintexts that a packing asks for by key ([`Exec::stored`]) live in a [`Store`] that
//! outlasts one run: encoded once per model by [`Prepare`], then only looked up.

mod prepare;
mod real;
mod symbolic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use prepare::Prepare;
pub use real::Real;
pub use symbolic::{Memory, SymCt, SymPt, Symbolic};

use super::counts::{OpCounts, OpTally};
use super::HeError;
use crate::seal;

type R<T> = Result<T, HeError>;

/// What a packing evaluates on: ciphertexts, plaintexts and the primitive operations over
/// them. Nothing here counts; [`Exec`] checks operands and counts before it calls a backend.
pub trait Backend: Sync {
    /// A ciphertext.
    type Ct: Send + Sync;
    /// A plaintext.
    type Pt: Send + Sync;
    /// A ciphertext as a coefficient array, the operand of [`Exec::dot_scalars`].
    type Raw: Send + Sync;

    /// Physical slots per ciphertext.
    fn slots(&self) -> usize;
    /// The scale every ciphertext at `level` carries (see [`level_scales`]).
    fn scale(&self, level: usize) -> f64;
    /// Level of a ciphertext.
    fn level(ct: &Self::Ct) -> usize;
    /// Level of a plaintext.
    fn pt_level(pt: &Self::Pt) -> usize;
    /// Level of a coefficient array.
    fn raw_level(raw: &Self::Raw) -> usize;
    /// Whether a plaintext is exactly zero.
    fn is_zero(pt: &Self::Pt) -> bool;

    /// Encodes a (physical) slot vector.
    fn encode(&self, values: &[f64], level: usize, scale: f64) -> R<Self::Pt>;
    /// Encodes a scalar into every slot.
    fn encode_scalar(&self, value: f64, level: usize, scale: f64) -> R<Self::Pt>;
    /// The plaintext stored under `key`, encoding `values()` (physical slots) the first time.
    fn stored(
        &self,
        key: Key,
        level: usize,
        scale: f64,
        values: impl FnOnce() -> Vec<f64>,
    ) -> R<Arc<Self::Pt>>;

    /// A copy.
    fn copy(&self, a: &Self::Ct) -> R<Self::Ct>;
    /// `acc += b` (same level).
    fn add_assign(&self, acc: &mut Self::Ct, b: &Self::Ct) -> R<()>;
    /// `acc += p` (same level).
    fn add_plain_assign(&self, acc: &mut Self::Ct, p: &Self::Pt) -> R<()>;
    /// `a × p` for a non-zero `p` at `a`'s level.
    fn multiply_plain(&self, a: &Self::Ct, p: &Self::Pt) -> R<Self::Ct>;
    /// `acc += a × p` for a non-zero `p`, all at one level.
    fn multiply_plain_add(&self, acc: &mut Self::Ct, a: &Self::Ct, p: &Self::Pt) -> R<()>;
    /// `a × b`, relinearized.
    fn multiply(&self, a: &Self::Ct, b: &Self::Ct) -> R<Self::Ct>;
    /// `a²`, relinearized.
    fn square(&self, a: &Self::Ct) -> R<Self::Ct>;
    /// Rescale in place (level ≥ 1).
    fn rescale(&self, a: &mut Self::Ct) -> R<()>;
    /// Drops primes until `a` is at `level` (below its own).
    fn mod_switch_to(&self, a: &mut Self::Ct, level: usize) -> R<()>;
    /// Rotates left by `step` physical slots, `0 < step < slots`.
    fn rotate(&self, a: &Self::Ct, step: i64) -> R<Self::Ct>;
    /// `a` as a coefficient array.
    fn to_raw(&self, a: Self::Ct) -> R<Self::Raw>;
    /// `Σ w · a` over at least one term, every weight non-zero, all at one level, each weight
    /// a scalar at the scale `scale`.
    fn dot_scalars(&self, terms: &[(&Self::Raw, f64)], scale: f64) -> R<Self::Ct>;

    /// The level progress logs of memory go at.
    fn memory_log_level(&self) -> log::Level;
    /// The memory held now, for progress logs.
    fn memory_now(&self) -> String;
}

/// The key of a stored plaintext: the layer's index and a number unique within the layer.
pub type Key = (usize, u64);

/// Plaintexts encoded once per model and shared by every run (weights at the level where they
/// are used): real ones filled by [`Prepare`] and read by [`Real`], or symbolic ones in a plan,
/// where only their number and size matter.
pub struct Store<P> {
    map: RwLock<HashMap<Key, (usize, Arc<P>)>>,
    bytes: AtomicU64,
}

impl<P> Default for Store<P> {
    fn default() -> Self {
        Self {
            map: RwLock::default(),
            bytes: AtomicU64::new(0),
        }
    }
}

impl<P> Store<P> {
    /// Number of stored plaintexts.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the stored plaintexts hold (N coefficients × primes × 8 bytes each).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The plaintext under `key`, or `make()`'s, stored with `bytes` bytes. A plaintext found
    /// at another level than `level` is an internal error.
    fn get_or_insert(
        &self,
        key: Key,
        level: usize,
        bytes: u64,
        make: impl FnOnce() -> R<P>,
    ) -> R<Arc<P>> {
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            match map.get(&key) {
                Some((l, p)) if *l == level => return Ok(p.clone()),
                Some((l, _)) => {
                    return Err(HeError::Internal(format!(
                        "stored plaintext {key:?} is at level {l}, wanted at {level}"
                    )))
                }
                None => {}
            }
        }
        let made = make()?;
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        Ok(map
            .entry(key)
            .or_insert_with(|| {
                self.bytes.fetch_add(bytes, Ordering::Relaxed);
                (level, Arc::new(made))
            })
            .1
            .clone())
    }
}

/// The operations a packing may use over a backend, counted into one [`OpCounts`].
///
/// With `lanes` > 1, that many images share each ciphertext slot by slot (image `j` in the
/// physical slots `lanes·s + j`): the packing sees `slots / lanes` slots, every rotation moves
/// by `lanes` times its step, and every encoded vector is repeated for each image.
pub struct Exec<'a, B: Backend> {
    backend: B,
    counts: &'a OpCounts,
    /// Slots as the packing sees them (physical slots / lanes).
    slots: usize,
    lanes: usize,
}

impl<'a, B: Backend> Exec<'a, B> {
    /// An execution on `backend` with `lanes` images per ciphertext, counting into `counts`.
    pub fn new(backend: B, counts: &'a OpCounts, lanes: usize) -> R<Self> {
        let physical = backend.slots();
        if lanes == 0 || !physical.is_multiple_of(lanes) {
            return Err(HeError::Internal(format!(
                "{lanes} images cannot share {physical} slots evenly"
            )));
        }
        Ok(Self {
            slots: physical / lanes,
            lanes,
            backend,
            counts,
        })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Slots per ciphertext, as the packing sees them (per image when images share one).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The scale every ciphertext at `level` carries.
    pub fn scale(&self, level: usize) -> f64 {
        self.backend.scale(level)
    }

    /// The operations counted so far.
    pub fn tally(&self) -> OpTally {
        self.counts.snapshot()
    }

    /// The level that progress logs of memory go at (see [`Backend::memory_log_level`]).
    pub fn memory_log_level(&self) -> log::Level {
        self.backend.memory_log_level()
    }

    /// The memory this execution holds now (see [`Backend::memory_now`]). Callers ask only
    /// when `memory_log_level` is logged.
    pub fn memory_now(&self) -> String {
        self.backend.memory_now()
    }

    /// Level of a ciphertext.
    pub fn level(&self, ct: &B::Ct) -> usize {
        B::level(ct)
    }

    /// `values` (one image's slots) repeated in every lane.
    fn lay_out(&self, values: &[f64]) -> Vec<f64> {
        interleave(&vec![values; self.lanes])
    }

    /// Encodes a vector (counted as `encode`).
    pub fn encode(&self, values: &[f64], level: usize, scale: f64) -> R<B::Pt> {
        OpCounts::bump(&self.counts.encode);
        self.backend.encode(&self.lay_out(values), level, scale)
    }

    /// Encodes a scalar into every slot (counted as `encode`).
    pub fn encode_scalar(&self, value: f64, level: usize, scale: f64) -> R<B::Pt> {
        OpCounts::bump(&self.counts.encode);
        self.backend.encode_scalar(value, level, scale)
    }

    /// The plaintext stored under `key`, encoding `values()` at `level` and `scale` the first
    /// time. Not counted as an `encode`: it is done once per model (by [`Prepare`]), not per
    /// run. `values` must not be all zero (skip the product instead).
    pub fn stored(
        &self,
        key: Key,
        level: usize,
        scale: f64,
        values: impl FnOnce() -> Vec<f64>,
    ) -> R<Arc<B::Pt>> {
        self.backend
            .stored(key, level, scale, || self.lay_out(&values()))
    }

    /// Records a product skipped because its weight is exactly zero, without encoding it.
    pub fn skip_zero(&self) {
        OpCounts::bump(&self.counts.skipped_zero);
    }

    /// A copy (not counted).
    pub fn copy(&self, a: &B::Ct) -> R<B::Ct> {
        self.backend.copy(a)
    }

    /// `acc += b`.
    pub fn add_assign(&self, acc: &mut B::Ct, b: &B::Ct) -> R<()> {
        same_level("add", B::level(acc), B::level(b))?;
        OpCounts::bump(&self.counts.hadd);
        self.backend.add_assign(acc, b)
    }

    /// Adds `b` to an optional accumulator (taking `b` as the first term).
    pub fn accumulate(&self, acc: &mut Option<B::Ct>, b: B::Ct) -> R<()> {
        match acc {
            Some(a) => self.add_assign(a, &b),
            None => {
                *acc = Some(b);
                Ok(())
            }
        }
    }

    /// `acc += p`.
    pub fn add_plain_assign(&self, acc: &mut B::Ct, p: &B::Pt) -> R<()> {
        same_level("add_plain", B::level(acc), B::pt_level(p))?;
        OpCounts::bump(&self.counts.hadd);
        self.backend.add_plain_assign(acc, p)
    }

    /// `a × p`, `None` (counted `skipped_zero`) when `p` is zero.
    pub fn multiply_plain(&self, a: &B::Ct, p: &B::Pt) -> R<Option<B::Ct>> {
        same_level("multiply_plain", B::level(a), B::pt_level(p))?;
        if B::is_zero(p) {
            OpCounts::bump(&self.counts.skipped_zero);
            return Ok(None);
        }
        OpCounts::bump(&self.counts.hmulplain);
        self.backend.multiply_plain(a, p).map(Some)
    }

    /// `acc += a × p`, taking the product as the first term when `acc` is empty: counted as
    /// [`Exec::multiply_plain`] and [`Exec::accumulate`] would count it, but the product is
    /// never a ciphertext of its own.
    pub fn multiply_plain_accumulate(
        &self,
        acc: &mut Option<B::Ct>,
        a: &B::Ct,
        p: &B::Pt,
    ) -> R<()> {
        let Some(sum) = acc else {
            *acc = self.multiply_plain(a, p)?;
            return Ok(());
        };
        same_level("multiply_plain", B::level(a), B::pt_level(p))?;
        same_level("add", B::level(sum), B::level(a))?;
        if B::is_zero(p) {
            OpCounts::bump(&self.counts.skipped_zero);
            return Ok(());
        }
        OpCounts::bump(&self.counts.hmulplain);
        OpCounts::bump(&self.counts.hadd);
        self.backend.multiply_plain_add(sum, a, p)
    }

    /// `a` as a coefficient array for [`Exec::dot_scalars`] (a copy: not counted).
    pub fn to_raw(&self, a: B::Ct) -> R<B::Raw> {
        self.backend.to_raw(a)
    }

    /// `Σ w · a` over `terms` at their (common) level ℓ, each weight a scalar at the scale
    /// `S_ℓ` (as [`Exec::encode_scalar`] would encode it): one pass over the coefficients,
    /// counted as the products and sums it replaces (a `hmulplain` per non-zero weight, a
    /// `hadd` per such term after the first, a `skipped_zero` per zero weight). `None` when
    /// no weight is non-zero.
    pub fn dot_scalars(&self, terms: &[(&B::Raw, f64)]) -> R<Option<B::Ct>> {
        let Some((first, _)) = terms.first() else {
            return Ok(None);
        };
        let level = B::raw_level(first);
        let mut nonzero = Vec::with_capacity(terms.len());
        for &(a, w) in terms {
            same_level("dot_scalars", level, B::raw_level(a))?;
            if w == 0.0 {
                OpCounts::bump(&self.counts.skipped_zero);
            } else {
                nonzero.push((a, w));
            }
        }
        if nonzero.is_empty() {
            return Ok(None);
        }
        let products = nonzero.len() as u64;
        OpCounts::bump_by(&self.counts.hmulplain, products);
        OpCounts::bump_by(&self.counts.hadd, products - 1);
        self.backend
            .dot_scalars(&nonzero, self.scale(level))
            .map(Some)
    }

    /// `a²`, relinearized.
    pub fn square(&self, a: &B::Ct) -> R<B::Ct> {
        OpCounts::bump(&self.counts.hsquare);
        OpCounts::bump(&self.counts.relinearize);
        self.backend.square(a)
    }

    /// `a × b`, relinearized.
    pub fn multiply(&self, a: &B::Ct, b: &B::Ct) -> R<B::Ct> {
        same_level("multiply", B::level(a), B::level(b))?;
        OpCounts::bump(&self.counts.hmul);
        OpCounts::bump(&self.counts.relinearize);
        self.backend.multiply(a, b)
    }

    /// Rescale in place (level − 1).
    pub fn rescale(&self, a: &mut B::Ct) -> R<()> {
        if B::level(a) == 0 {
            return Err(HeError::TooDeep);
        }
        OpCounts::bump(&self.counts.rescale);
        self.backend.rescale(a)
    }

    /// Drops primes until `a` is at `level`.
    pub fn mod_switch_to(&self, a: &mut B::Ct, level: usize) -> R<()> {
        let from = B::level(a);
        if level > from {
            return Err(HeError::Internal(format!(
                "mod-switch from level {from} up to {level}"
            )));
        }
        if level == from {
            return Ok(());
        }
        OpCounts::bump(&self.counts.mod_switch);
        self.backend.mod_switch_to(a, level)
    }

    /// Rotates left by `step` (right if negative), in every lane. Counted as a `rotation`, as
    /// the paper counts its algorithm's rotations, including a step that is a multiple of the
    /// slot count (a copy), which is also counted as `rotation_zero`: `rotation −
    /// rotation_zero` is the number of key switches.
    pub fn rotate(&self, a: &B::Ct, step: i64) -> R<B::Ct> {
        OpCounts::bump(&self.counts.rotation);
        let physical = (self.slots * self.lanes) as i64;
        let step = (step * self.lanes as i64).rem_euclid(physical);
        if step == 0 {
            OpCounts::bump(&self.counts.rotation_zero);
            return self.backend.copy(a);
        }
        self.backend.rotate(a, step)
    }
}

/// Scales by level, with `S_{ℓ−1} = S_ℓ² / q_ℓ` so that a product of two level-ℓ operands (or a
/// level-ℓ ciphertext and a plaintext encoded at scale `S_ℓ`) rescales to exactly `S_{ℓ−1}` and
/// terms always add without scale fix-ups. Built from the bottom, `S_0 = 2^scale_bits` and
/// `S_ℓ = √(S_{ℓ−1}·q_ℓ)`: every scale stays between `2^scale_bits` and the primes, however far
/// below `2^scale_bits` the primes lie (built from the top, such gaps compound level by level).
/// Inputs are encrypted at `S_top`.
pub fn level_scales(ctx: &seal::Context) -> R<Vec<f64>> {
    let top = ctx.top_level();
    let mut scales = vec![ctx.params().scale(); top + 1];
    for level in 1..=top {
        scales[level] = (scales[level - 1] * ctx.prime(level)? as f64).sqrt();
    }
    Ok(scales)
}

/// Bytes of a size-2 ciphertext at `level` over `slots` physical slots: 2 polynomials ×
/// N coefficients × (level + 1) primes × 8 bytes.
fn ct_bytes(slots: usize, level: usize) -> u64 {
    (2 * 2 * slots * (level + 1) * 8) as u64
}

/// Bytes of a plaintext at `level`: one polynomial, half a ciphertext.
fn pt_bytes(slots: usize, level: usize) -> u64 {
    ct_bytes(slots, level) / 2
}

/// One slot vector holding `lanes` vectors slot by slot: `out[lanes·s + j] = lanes[j][s]`
/// (a lane shorter than the longest is padded with zeros).
pub fn interleave(lanes: &[&[f64]]) -> Vec<f64> {
    let k = lanes.len();
    let len = lanes.iter().map(|l| l.len()).max().unwrap_or(0);
    let mut out = vec![0.0; k * len];
    for (j, lane) in lanes.iter().enumerate() {
        for (s, v) in lane.iter().enumerate() {
            out[k * s + j] = *v;
        }
    }
    out
}

/// Lane `j` of a slot vector holding `lanes` interleaved vectors.
pub fn lane(values: &[f64], lanes: usize, j: usize) -> Vec<f64> {
    values.iter().skip(j).step_by(lanes).copied().collect()
}

fn same_level(op: &str, a: usize, b: usize) -> R<()> {
    if a == b {
        Ok(())
    } else {
        Err(HeError::Internal(format!("{op} of levels {a} and {b}")))
    }
}
