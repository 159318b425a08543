//! The preparation pass: a symbolic evaluation that encodes every stored weight plaintext for
//! real, at the level where the evaluation uses it, once per model before any run.

use std::sync::Arc;

use super::symbolic::{SymCt, SymPt, Symbolic};
use super::{level_scales, pt_bytes, Backend, Key, Store, R};
use crate::seal::{Evaluator, Plaintext};

/// Symbolic ciphertexts with the real scales of `evaluator`'s context; stored plaintexts are
/// encoded for real into `store`.
pub struct Prepare<'a> {
    sym: Symbolic,
    evaluator: &'a Evaluator,
    store: &'a Store<Plaintext>,
    scales: Vec<f64>,
}

impl<'a> Prepare<'a> {
    /// A preparation pass filling `store` with `evaluator`'s encoder.
    pub fn new(evaluator: &'a Evaluator, store: &'a Store<Plaintext>) -> R<Self> {
        let ctx = evaluator.context();
        Ok(Self {
            sym: Symbolic::new(ctx.slots()),
            scales: level_scales(ctx)?,
            evaluator,
            store,
        })
    }

    /// A fresh input ciphertext at `level`.
    pub fn input(&self, level: usize) -> SymCt {
        self.sym.input(level)
    }
}

impl Backend for Prepare<'_> {
    type Ct = SymCt;
    type Pt = SymPt;
    type Raw = SymCt;

    fn slots(&self) -> usize {
        self.sym.slots()
    }

    fn scale(&self, level: usize) -> f64 {
        self.scales[level.min(self.scales.len() - 1)]
    }

    fn level(ct: &SymCt) -> usize {
        Symbolic::level(ct)
    }

    fn pt_level(pt: &SymPt) -> usize {
        Symbolic::pt_level(pt)
    }

    fn raw_level(raw: &SymCt) -> usize {
        Symbolic::raw_level(raw)
    }

    fn is_zero(pt: &SymPt) -> bool {
        Symbolic::is_zero(pt)
    }

    fn encode(&self, values: &[f64], level: usize, scale: f64) -> R<SymPt> {
        self.sym.encode(values, level, scale)
    }

    fn encode_scalar(&self, value: f64, level: usize, scale: f64) -> R<SymPt> {
        self.sym.encode_scalar(value, level, scale)
    }

    /// Encodes `values()` for real into the store (once per key).
    fn stored(
        &self,
        key: Key,
        level: usize,
        scale: f64,
        values: impl FnOnce() -> Vec<f64>,
    ) -> R<Arc<SymPt>> {
        let bytes = pt_bytes(self.slots(), level);
        self.store.get_or_insert(key, level, bytes, || {
            Ok(self.evaluator.encode(&values(), level, scale)?)
        })?;
        Ok(Arc::new(SymPt::stored(level)))
    }

    fn copy(&self, a: &SymCt) -> R<SymCt> {
        self.sym.copy(a)
    }

    fn add_assign(&self, acc: &mut SymCt, b: &SymCt) -> R<()> {
        self.sym.add_assign(acc, b)
    }

    fn add_plain_assign(&self, acc: &mut SymCt, p: &SymPt) -> R<()> {
        self.sym.add_plain_assign(acc, p)
    }

    fn multiply_plain(&self, a: &SymCt, p: &SymPt) -> R<SymCt> {
        self.sym.multiply_plain(a, p)
    }

    fn multiply_plain_add(&self, acc: &mut SymCt, a: &SymCt, p: &SymPt) -> R<()> {
        self.sym.multiply_plain_add(acc, a, p)
    }

    fn multiply(&self, a: &SymCt, b: &SymCt) -> R<SymCt> {
        self.sym.multiply(a, b)
    }

    fn square(&self, a: &SymCt) -> R<SymCt> {
        self.sym.square(a)
    }

    fn rescale(&self, a: &mut SymCt) -> R<()> {
        self.sym.rescale(a)
    }

    fn mod_switch_to(&self, a: &mut SymCt, level: usize) -> R<()> {
        self.sym.mod_switch_to(a, level)
    }

    fn rotate(&self, a: &SymCt, step: i64) -> R<SymCt> {
        self.sym.rotate(a, step)
    }

    fn to_raw(&self, a: SymCt) -> R<SymCt> {
        self.sym.to_raw(a)
    }

    fn dot_scalars(&self, terms: &[(&SymCt, f64)], scale: f64) -> R<SymCt> {
        self.sym.dot_scalars(terms, scale)
    }

    fn memory_log_level(&self) -> log::Level {
        self.sym.memory_log_level()
    }

    fn memory_now(&self) -> String {
        self.sym.memory_now()
    }
}
