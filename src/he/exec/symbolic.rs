//! The symbolic backend: ciphertexts are levels and the memory a real one would hold; rotation
//! steps are collected, nothing is computed; under a cost trace each operation is charged its
//! measured cost. The planner's and the cost model's execution.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use super::{ct_bytes, pt_bytes, Backend, Key, Store, R};
use crate::he::cost::trace::{charge, charge_setup};
use crate::he::cost::Op;

/// Bytes of live symbolic values, and their peak: what the real evaluation would hold in
/// ciphertexts and plaintexts (keys excluded) with the same interleaving of threads.
#[derive(Debug, Default)]
pub struct Memory {
    current: AtomicI64,
    peak: AtomicI64,
}

impl Memory {
    /// The highest number of bytes live at once so far.
    pub fn peak_bytes(&self) -> u64 {
        self.peak.load(Ordering::Relaxed).max(0) as u64
    }

    /// The bytes live now.
    pub fn current_bytes(&self) -> u64 {
        self.current.load(Ordering::Relaxed).max(0) as u64
    }

    fn change(&self, delta: i64) {
        let now = self.current.fetch_add(delta, Ordering::Relaxed) + delta;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
}

/// The memory one symbolic value stands for; given back when it is dropped.
struct Held {
    memory: Option<Arc<Memory>>,
    bytes: i64,
}

impl Held {
    fn new(memory: &Arc<Memory>, bytes: u64) -> Self {
        memory.change(bytes as i64);
        Self {
            memory: Some(memory.clone()),
            bytes: bytes as i64,
        }
    }

    /// Memory that is not the evaluation's (a stored plaintext).
    fn none() -> Self {
        Self {
            memory: None,
            bytes: 0,
        }
    }

    fn resize(&mut self, bytes: u64) {
        if let Some(m) = &self.memory {
            m.change(bytes as i64 - self.bytes);
        }
        self.bytes = bytes as i64;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(m) = &self.memory {
            m.change(-self.bytes);
        }
    }
}

/// A symbolic ciphertext (also the symbolic coefficient array): its level and its memory.
pub struct SymCt {
    level: usize,
    mem: Held,
}

/// A symbolic plaintext: its level, whether it is zero, and its memory.
pub struct SymPt {
    level: usize,
    zero: bool,
    _mem: Held,
}

impl SymPt {
    /// A non-zero plaintext at `level` outside the evaluation's memory (a stored one).
    pub(super) fn stored(level: usize) -> Self {
        Self {
            level,
            zero: false,
            _mem: Held::none(),
        }
    }
}

/// Symbolic execution over `slots` physical slots: tracks the memory of live values, collects
/// rotation steps, and keeps a symbolic store of weight plaintexts.
pub struct Symbolic {
    slots: usize,
    memory: Arc<Memory>,
    steps: Mutex<BTreeSet<i64>>,
    store: Store<SymPt>,
}

impl Symbolic {
    /// A symbolic execution with `slots` physical slots.
    pub fn new(slots: usize) -> Self {
        Self {
            slots,
            memory: Arc::default(),
            steps: Mutex::default(),
            store: Store::default(),
        }
    }

    /// A fresh input ciphertext at `level`.
    pub fn input(&self, level: usize) -> SymCt {
        self.sym(level)
    }

    /// The memory of live values so far.
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The rotation steps used so far (physical steps, normalised to `1..slots`).
    pub fn steps(&self) -> Vec<i64> {
        self.steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// The stored plaintexts the evaluation asked for.
    pub fn store(&self) -> &Store<SymPt> {
        &self.store
    }

    /// A fresh encoded plaintext at `level`, held in the evaluation's memory.
    fn pt(&self, level: usize, zero: bool) -> SymPt {
        SymPt {
            level,
            zero,
            _mem: Held::new(&self.memory, pt_bytes(self.slots, level)),
        }
    }

    fn sym(&self, level: usize) -> SymCt {
        SymCt {
            level,
            mem: Held::new(&self.memory, ct_bytes(self.slots, level)),
        }
    }
}

impl Backend for Symbolic {
    type Ct = SymCt;
    type Pt = SymPt;
    type Raw = SymCt;

    fn slots(&self) -> usize {
        self.slots
    }

    /// 1: symbolic values have no scale.
    fn scale(&self, _level: usize) -> f64 {
        1.0
    }

    fn level(ct: &SymCt) -> usize {
        ct.level
    }

    fn pt_level(pt: &SymPt) -> usize {
        pt.level
    }

    fn raw_level(raw: &SymCt) -> usize {
        raw.level
    }

    fn is_zero(pt: &SymPt) -> bool {
        pt.zero
    }

    fn encode(&self, values: &[f64], level: usize, _scale: f64) -> R<SymPt> {
        charge(Op::Encode, level + 1, 1);
        Ok(self.pt(level, values.iter().all(|v| *v == 0.0)))
    }

    fn encode_scalar(&self, value: f64, level: usize, _scale: f64) -> R<SymPt> {
        charge(Op::EncodeScalar, level + 1, 1);
        Ok(self.pt(level, value == 0.0))
    }

    fn stored(
        &self,
        key: Key,
        level: usize,
        _scale: f64,
        _values: impl FnOnce() -> Vec<f64>,
    ) -> R<Arc<SymPt>> {
        let bytes = pt_bytes(self.slots, level);
        self.store.get_or_insert(key, level, bytes, || {
            charge_setup(Op::Encode, level + 1);
            Ok(SymPt::stored(level))
        })
    }

    fn copy(&self, a: &SymCt) -> R<SymCt> {
        charge(Op::Copy, a.level + 1, 1);
        Ok(self.sym(a.level))
    }

    fn add_assign(&self, acc: &mut SymCt, _b: &SymCt) -> R<()> {
        charge(Op::Add, acc.level + 1, 1);
        Ok(())
    }

    fn add_plain_assign(&self, acc: &mut SymCt, _p: &SymPt) -> R<()> {
        charge(Op::AddPlain, acc.level + 1, 1);
        Ok(())
    }

    fn multiply_plain(&self, a: &SymCt, _p: &SymPt) -> R<SymCt> {
        charge(Op::MultiplyPlain, a.level + 1, 1);
        Ok(self.sym(a.level))
    }

    fn multiply_plain_add(&self, acc: &mut SymCt, _a: &SymCt, _p: &SymPt) -> R<()> {
        charge(Op::MultiplyPlainAdd, acc.level + 1, 1);
        Ok(())
    }

    fn multiply(&self, a: &SymCt, _b: &SymCt) -> R<SymCt> {
        charge(Op::Multiply, a.level + 1, 1);
        Ok(self.sym(a.level))
    }

    fn square(&self, a: &SymCt) -> R<SymCt> {
        charge(Op::Square, a.level + 1, 1);
        Ok(self.sym(a.level))
    }

    fn rescale(&self, a: &mut SymCt) -> R<()> {
        charge(Op::Rescale, a.level + 1, 1);
        a.level -= 1;
        a.mem.resize(ct_bytes(self.slots, a.level));
        Ok(())
    }

    fn mod_switch_to(&self, a: &mut SymCt, level: usize) -> R<()> {
        // SEAL drops one prime at a time
        for from in level + 1..=a.level {
            charge(Op::ModSwitch, from + 1, 1);
        }
        a.level = level;
        a.mem.resize(ct_bytes(self.slots, level));
        Ok(())
    }

    fn rotate(&self, a: &SymCt, step: i64) -> R<SymCt> {
        self.steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(step);
        charge(Op::Rotate, a.level + 1, 1);
        Ok(self.sym(a.level))
    }

    fn to_raw(&self, a: SymCt) -> R<SymCt> {
        charge(Op::ToRaw, a.level + 1, 1);
        Ok(a)
    }

    fn dot_scalars(&self, terms: &[(&SymCt, f64)], _scale: f64) -> R<SymCt> {
        let primes = terms[0].0.level + 1;
        charge(Op::DotBase, primes, 1);
        charge(Op::DotTerm, primes, terms.len());
        Ok(self.sym(terms[0].0.level))
    }

    /// Debug: a plan's memory is logged beside a real run's only on request.
    fn memory_log_level(&self) -> log::Level {
        log::Level::Debug
    }

    /// The ciphertexts and plaintexts that a real run would hold at this point.
    fn memory_now(&self) -> String {
        format!(
            "{:.0} MB of ciphertexts planned",
            self.memory.current_bytes() as f64 / 1e6
        )
    }
}
