//! The real backend: CKKS on SEAL ciphertexts through a [`seal::Evaluator`].

use std::sync::Arc;

use super::{level_scales, pt_bytes, Backend, Key, Store, R};
use crate::he::HeError;
use crate::seal::{self, Ciphertext, Evaluator, Plaintext, RawCiphertext};

/// SEAL's operations with the model's stored weight plaintexts. Ciphertexts at level ℓ always
/// carry the scale `scales[ℓ]` (see [`level_scales`]).
pub struct Real<'a> {
    evaluator: &'a Evaluator,
    store: &'a Store<Plaintext>,
    scales: Vec<f64>,
}

impl<'a> Real<'a> {
    /// Operations of `evaluator`; stored plaintexts come from `store` (filled by
    /// [`super::Prepare`]).
    pub fn new(evaluator: &'a Evaluator, store: &'a Store<Plaintext>) -> R<Self> {
        Ok(Self {
            scales: level_scales(evaluator.context())?,
            evaluator,
            store,
        })
    }
}

impl Backend for Real<'_> {
    type Ct = Ciphertext;
    type Pt = Plaintext;
    type Raw = RawCiphertext;

    fn slots(&self) -> usize {
        self.evaluator.context().slots()
    }

    fn scale(&self, level: usize) -> f64 {
        self.scales[level.min(self.scales.len() - 1)]
    }

    fn level(ct: &Ciphertext) -> usize {
        ct.level()
    }

    fn pt_level(pt: &Plaintext) -> usize {
        pt.level()
    }

    fn raw_level(raw: &RawCiphertext) -> usize {
        raw.level()
    }

    fn is_zero(pt: &Plaintext) -> bool {
        pt.is_zero()
    }

    fn encode(&self, values: &[f64], level: usize, scale: f64) -> R<Plaintext> {
        Ok(self.evaluator.encode(values, level, scale)?)
    }

    fn encode_scalar(&self, value: f64, level: usize, scale: f64) -> R<Plaintext> {
        Ok(self.evaluator.encode_scalar(value, level, scale)?)
    }

    /// A model prepared before its runs always finds its plaintexts; a miss is encoded here.
    fn stored(
        &self,
        key: Key,
        level: usize,
        scale: f64,
        values: impl FnOnce() -> Vec<f64>,
    ) -> R<Arc<Plaintext>> {
        let bytes = pt_bytes(self.slots(), level);
        self.store
            .get_or_insert(key, level, bytes, || self.encode(&values(), level, scale))
    }

    fn copy(&self, a: &Ciphertext) -> R<Ciphertext> {
        Ok(a.try_clone()?)
    }

    fn add_assign(&self, acc: &mut Ciphertext, b: &Ciphertext) -> R<()> {
        Ok(self.evaluator.add_assign(acc, b)?)
    }

    fn add_plain_assign(&self, acc: &mut Ciphertext, p: &Plaintext) -> R<()> {
        Ok(self.evaluator.add_plain_assign(acc, p)?)
    }

    fn multiply_plain(&self, a: &Ciphertext, p: &Plaintext) -> R<Ciphertext> {
        self.evaluator
            .multiply_plain(a, p)?
            .ok_or_else(|| HeError::Internal("a product by a zero plaintext".into()))
    }

    fn multiply_plain_add(&self, acc: &mut Ciphertext, a: &Ciphertext, p: &Plaintext) -> R<()> {
        Ok(self.evaluator.multiply_plain_add(acc, a, p)?)
    }

    fn multiply(&self, a: &Ciphertext, b: &Ciphertext) -> R<Ciphertext> {
        let mut s = self.evaluator.multiply(a, b)?;
        self.evaluator.relinearize(&mut s)?;
        Ok(s)
    }

    fn square(&self, a: &Ciphertext) -> R<Ciphertext> {
        let mut s = self.evaluator.square(a)?;
        self.evaluator.relinearize(&mut s)?;
        Ok(s)
    }

    fn rescale(&self, a: &mut Ciphertext) -> R<()> {
        Ok(self.evaluator.rescale(a)?)
    }

    fn mod_switch_to(&self, a: &mut Ciphertext, level: usize) -> R<()> {
        Ok(self.evaluator.mod_switch_to(a, level)?)
    }

    fn rotate(&self, a: &Ciphertext, step: i64) -> R<Ciphertext> {
        Ok(self.evaluator.rotate(a, step)?)
    }

    fn to_raw(&self, a: Ciphertext) -> R<RawCiphertext> {
        Ok(a.to_raw()?)
    }

    fn dot_scalars(&self, terms: &[(&RawCiphertext, f64)], scale: f64) -> R<Ciphertext> {
        self.evaluator
            .dot_scalars(terms, scale)?
            .ok_or_else(|| HeError::Internal("every weight of a scalar sum encodes to zero".into()))
    }

    /// Info: the process's resident memory is what a user watches.
    fn memory_log_level(&self) -> log::Level {
        log::Level::Info
    }

    /// The process's resident memory and SEAL's global pool.
    fn memory_now(&self) -> String {
        format!(
            "{} resident, {} of them in SEAL's global pool",
            crate::sys::rss_mb().map_or("? MB".into(), |mb| format!("{mb:.0} MB")),
            seal::global_pool_bytes()
                .map_or("? MB".into(), |b| format!("{:.0} MB", b as f64 / 1e6))
        )
    }
}
