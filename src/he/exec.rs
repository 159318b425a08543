//! One interface over two executions of the same packing code: `Real` runs CKKS operations on
//! SEAL ciphertexts; `Symbolic` only tracks levels, counts operations and collects rotation
//! steps. The planner runs the packings symbolically, so a plan's predicted counts, depth and
//! Galois-key steps are those of the real evaluation by construction.
//!
//! Weight plaintexts that a packing asks for by key ([`Exec::stored`]) live in a [`Store`] that
//! outlasts one run: encoded once per model by [`Exec::prepare`], then only looked up.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::seal::{self, Ciphertext, OpCounts, Ops, Plaintext};

use super::HeError;

/// A ciphertext, real or symbolic (a level and the memory a real one would hold).
pub enum Ct {
    Real(Ciphertext),
    Sym { level: usize, mem: Held },
}

/// A ciphertext as a coefficient array, the operand of [`Exec::dot_scalars`]: real or
/// symbolic.
pub enum RawCt {
    Real(seal::RawCiphertext),
    Sym { level: usize, mem: Held },
}

impl RawCt {
    /// Its level.
    pub fn level(&self) -> usize {
        match self {
            RawCt::Real(r) => r.level(),
            RawCt::Sym { level, .. } => *level,
        }
    }
}

/// A plaintext, real or symbolic.
pub enum Pt {
    Real(Plaintext),
    Sym { level: usize, zero: bool, mem: Held },
}

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
pub struct Held {
    memory: Arc<Memory>,
    bytes: i64,
}

impl Held {
    fn new(memory: &Arc<Memory>, bytes: i64) -> Self {
        memory.change(bytes);
        Self {
            memory: memory.clone(),
            bytes,
        }
    }

    fn resize(&mut self, bytes: i64) {
        self.memory.change(bytes - self.bytes);
        self.bytes = bytes;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.memory.change(-self.bytes);
    }
}

type R<T> = Result<T, HeError>;

/// The key of a stored plaintext: the layer's index and a number unique within the layer.
pub type Key = (usize, u64);

/// Plaintexts encoded once per model and shared by every run (weights at the level where they
/// are used). Real after [`Exec::prepare`]; symbolic in a plan, where only its size matters.
#[derive(Default)]
pub struct Store {
    map: RwLock<HashMap<Key, Arc<Pt>>>,
    bytes: AtomicU64,
}

impl Store {
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

    fn get(&self, key: Key, level: usize) -> R<Option<Arc<Pt>>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(&key) {
            Some(p) if p.level() == level => Ok(Some(p.clone())),
            Some(p) => Err(HeError::Internal(format!(
                "stored plaintext {key:?} is at level {}, wanted at {level}",
                p.level()
            ))),
            None => Ok(None),
        }
    }

    fn insert(&self, key: Key, pt: Pt, bytes: u64) -> Arc<Pt> {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.entry(key)
            .or_insert_with(|| {
                self.bytes.fetch_add(bytes, Ordering::Relaxed);
                Arc::new(pt)
            })
            .clone()
    }
}

impl Pt {
    fn level(&self) -> usize {
        match self {
            Pt::Real(p) => p.level(),
            Pt::Sym { level, .. } => *level,
        }
    }

    fn is_zero(&self) -> bool {
        match self {
            Pt::Real(p) => p.is_zero(),
            Pt::Sym { zero, .. } => *zero,
        }
    }
}

enum Mode<'a> {
    Real {
        ops: Ops<'a>,
        scales: Vec<f64>,
    },
    Sym {
        counts: &'a OpCounts,
        steps: Mutex<BTreeSet<i64>>,
        memory: Arc<Memory>,
        /// Preparing a store: stored plaintexts are encoded for real with these ops and scales.
        encoder: Option<(Ops<'a>, Vec<f64>)>,
    },
}

/// The operations a packing may use, counted into one `OpCounts`.
///
/// With `lanes` > 1, that many images share each ciphertext slot by slot (image `j` in the
/// physical slots `lanes·s + j`): the packing sees `slots / lanes` slots, every rotation moves
/// by `lanes` times its step, and every encoded vector is repeated for each image.
pub struct Exec<'a> {
    mode: Mode<'a>,
    /// Slots as the packing sees them (physical slots / lanes).
    slots: usize,
    lanes: usize,
    store: &'a Store,
}

impl<'a> Exec<'a> {
    /// Real CKKS over `ops`. Ciphertexts at level ℓ always carry the scale `scales[ℓ]` (see
    /// [`level_scales`]).
    /// Stored plaintexts come from `store` (see [`Exec::prepare`]).
    pub fn real(ops: Ops<'a>, store: &'a Store, lanes: usize) -> R<Self> {
        let ctx = ops.evaluator().context();
        Ok(Self {
            slots: logical(ctx.slots(), lanes)?,
            lanes,
            mode: Mode::Real {
                scales: level_scales(ctx)?,
                ops,
            },
            store,
        })
    }

    /// Symbolic execution with `slots` (physical) slots, counting into `counts` and tracking
    /// the memory of live values in `memory`; stored plaintexts are symbolic entries of `store`.
    pub fn symbolic(
        slots: usize,
        lanes: usize,
        counts: &'a OpCounts,
        memory: Arc<Memory>,
        store: &'a Store,
    ) -> R<Self> {
        Ok(Self {
            slots: logical(slots, lanes)?,
            lanes,
            mode: Mode::Sym {
                counts,
                steps: Mutex::new(BTreeSet::new()),
                memory,
                encoder: None,
            },
            store,
        })
    }

    /// A symbolic execution over `ops`'s context that encodes every stored plaintext for real
    /// into `store`: run a packing's evaluation on it once per model, before any run.
    /// `counts` receives the (symbolic) operations of that pass.
    pub fn prepare(ops: Ops<'a>, counts: &'a OpCounts, store: &'a Store, lanes: usize) -> R<Self> {
        let ctx = ops.evaluator().context();
        Ok(Self {
            slots: logical(ctx.slots(), lanes)?,
            lanes,
            mode: Mode::Sym {
                counts,
                steps: Mutex::new(BTreeSet::new()),
                memory: Arc::new(Memory::default()),
                encoder: Some((ops, level_scales(ctx)?)),
            },
            store,
        })
    }

    /// The level that progress logs of memory go at: info for a real run (the process's
    /// resident memory), debug for a symbolic one (the ciphertexts it plans), so that a real
    /// run's log can be set against the plan's.
    pub fn memory_log_level(&self) -> log::Level {
        match &self.mode {
            Mode::Real { .. } => log::Level::Info,
            Mode::Sym { .. } => log::Level::Debug,
        }
    }

    /// The memory this execution holds now, for progress logs: the process's resident memory
    /// when real; when symbolic, the ciphertexts and plaintexts that a real run would hold at
    /// this point. Reads `/proc`, so callers ask only when `memory_log_level` is logged.
    pub fn memory_now(&self) -> String {
        match &self.mode {
            Mode::Real { .. } => format!(
                "{} resident, {} of them in SEAL's global pool",
                crate::sys::rss_mb().map_or("? MB".into(), |mb| format!("{mb:.0} MB")),
                seal::global_pool_bytes()
                    .map_or("? MB".into(), |b| format!("{:.0} MB", b as f64 / 1e6))
            ),
            Mode::Sym { memory, .. } => format!(
                "{:.0} MB of ciphertexts planned",
                memory.current_bytes() as f64 / 1e6
            ),
        }
    }

    /// A fresh symbolic ciphertext at `level` (symbolic execution only).
    pub fn sym(&self, level: usize) -> Ct {
        Ct::Sym {
            level,
            mem: self.held(self.ct_bytes(level)),
        }
    }

    fn held(&self, bytes: i64) -> Held {
        match &self.mode {
            Mode::Sym {
                memory,
                encoder: None,
                ..
            } => Held::new(memory, bytes),
            _ => Held::new(&Arc::new(Memory::default()), bytes),
        }
    }

    /// Bytes of a size-2 ciphertext at `level`: 2 polynomials × N coefficients × (level + 1)
    /// primes × 8 bytes.
    fn ct_bytes(&self, level: usize) -> i64 {
        (2 * 2 * self.slots * self.lanes * (level + 1) * 8) as i64
    }

    /// Slots per ciphertext, as the packing sees them (per image when images share one).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// `values` (one image's slots) repeated in every lane.
    fn lay_out(&self, values: &[f64]) -> Vec<f64> {
        interleave(&vec![values; self.lanes])
    }

    /// The rotation steps used so far (symbolic execution only; physical steps normalised to
    /// `1..slots`).
    pub fn steps(&self) -> Vec<i64> {
        match &self.mode {
            Mode::Sym { steps, .. } => lock(steps).iter().copied().collect(),
            Mode::Real { .. } => Vec::new(),
        }
    }

    /// The scale every ciphertext at `level` carries (1 in symbolic execution).
    pub fn scale(&self, level: usize) -> f64 {
        match &self.mode {
            Mode::Real { scales, .. }
            | Mode::Sym {
                encoder: Some((_, scales)),
                ..
            } => scales[level.min(scales.len() - 1)],
            Mode::Sym { .. } => 1.0,
        }
    }

    /// The operations counted so far.
    pub fn tally(&self) -> seal::OpTally {
        self.counts().snapshot()
    }

    fn counts(&self) -> &OpCounts {
        match &self.mode {
            Mode::Real { ops, .. } => ops.counts(),
            Mode::Sym { counts, .. } => counts,
        }
    }

    /// Level of a ciphertext.
    pub fn level(&self, ct: &Ct) -> usize {
        match ct {
            Ct::Real(c) => c.level(),
            Ct::Sym { level, .. } => *level,
        }
    }

    /// Encodes a vector (counted as `encode`).
    pub fn encode(&self, values: &[f64], level: usize, scale: f64) -> R<Pt> {
        match &self.mode {
            Mode::Real { ops, .. } => {
                Ok(Pt::Real(ops.encode(&self.lay_out(values), level, scale)?))
            }
            Mode::Sym { counts, .. } => {
                OpCounts::bump(&counts.encode);
                Ok(Pt::Sym {
                    level,
                    zero: values.iter().all(|v| *v == 0.0),
                    mem: self.held(self.ct_bytes(level) / 2),
                })
            }
        }
    }

    /// Encodes a scalar into every slot (counted as `encode`).
    pub fn encode_scalar(&self, value: f64, level: usize, scale: f64) -> R<Pt> {
        match &self.mode {
            Mode::Real { ops, .. } => Ok(Pt::Real(ops.encode_scalar(value, level, scale)?)),
            Mode::Sym { counts, .. } => {
                OpCounts::bump(&counts.encode);
                Ok(Pt::Sym {
                    level,
                    zero: value == 0.0,
                    mem: self.held(self.ct_bytes(level) / 2),
                })
            }
        }
    }

    /// The plaintext stored under `key`, encoding `values()` at `level` and `scale` the first
    /// time. Not counted as an `encode`: it is done once per model (by [`Exec::prepare`]), not
    /// per run. `values` must not be all zero (skip the product instead).
    pub fn stored(
        &self,
        key: Key,
        level: usize,
        scale: f64,
        values: impl FnOnce() -> Vec<f64>,
    ) -> R<Arc<Pt>> {
        if let Some(p) = self.store.get(key, level)? {
            return Ok(p);
        }
        let pt = match &self.mode {
            // a model prepared before its runs never gets here; a miss is encoded, and counted
            Mode::Real { ops, .. }
            | Mode::Sym {
                encoder: Some((ops, _)),
                ..
            } => Pt::Real(ops.encode(&self.lay_out(&values()), level, scale)?),
            Mode::Sym { .. } => Pt::Sym {
                level,
                zero: false,
                mem: Held::new(&Arc::new(Memory::default()), 0),
            },
        };
        Ok(self.store.insert(key, pt, self.ct_bytes(level) as u64 / 2))
    }

    /// Records a product skipped because its weight is exactly zero, without encoding it.
    pub fn skip_zero(&self) {
        OpCounts::bump(&self.counts().skipped_zero);
    }

    /// A copy (not counted).
    pub fn copy(&self, a: &Ct) -> R<Ct> {
        Ok(match a {
            Ct::Real(c) => Ct::Real(c.try_clone()?),
            Ct::Sym { level, .. } => self.sym(*level),
        })
    }

    /// `acc += b`.
    pub fn add_assign(&self, acc: &mut Ct, b: &Ct) -> R<()> {
        match (&self.mode, acc, b) {
            (Mode::Real { ops, .. }, Ct::Real(a), Ct::Real(b)) => Ok(ops.add_assign(a, b)?),
            (Mode::Sym { counts, .. }, Ct::Sym { level: a, .. }, Ct::Sym { level: b, .. }) => {
                same_level("add", *a, *b)?;
                OpCounts::bump(&counts.hadd);
                Ok(())
            }
            _ => Err(mixed()),
        }
    }

    /// Adds `b` to an optional accumulator (taking `b` as the first term).
    pub fn accumulate(&self, acc: &mut Option<Ct>, b: Ct) -> R<()> {
        match acc {
            Some(a) => self.add_assign(a, &b),
            None => {
                *acc = Some(b);
                Ok(())
            }
        }
    }

    /// `acc += p`.
    pub fn add_plain_assign(&self, acc: &mut Ct, p: &Pt) -> R<()> {
        match (&self.mode, acc, p) {
            (Mode::Real { ops, .. }, Ct::Real(a), Pt::Real(p)) => Ok(ops.add_plain_assign(a, p)?),
            (Mode::Sym { counts, .. }, Ct::Sym { level, .. }, p) => {
                same_level("add_plain", *level, p.level())?;
                OpCounts::bump(&counts.hadd);
                Ok(())
            }
            _ => Err(mixed()),
        }
    }

    /// `a × p`, `None` (counted `skipped_zero`) when `p` is zero.
    pub fn multiply_plain(&self, a: &Ct, p: &Pt) -> R<Option<Ct>> {
        match (&self.mode, a, p) {
            (Mode::Real { ops, .. }, Ct::Real(a), Pt::Real(p)) => {
                Ok(ops.multiply_plain(a, p)?.map(Ct::Real))
            }
            (Mode::Sym { counts, .. }, Ct::Sym { level, .. }, p) => {
                same_level("multiply_plain", *level, p.level())?;
                if p.is_zero() {
                    OpCounts::bump(&counts.skipped_zero);
                    return Ok(None);
                }
                OpCounts::bump(&counts.hmulplain);
                Ok(Some(self.sym(*level)))
            }
            _ => Err(mixed()),
        }
    }

    /// `a` as a coefficient array for [`Exec::dot_scalars`] (a copy: not counted).
    pub fn to_raw(&self, a: Ct) -> R<RawCt> {
        Ok(match a {
            Ct::Real(c) => RawCt::Real(c.to_raw()?),
            Ct::Sym { level, mem } => RawCt::Sym { level, mem },
        })
    }

    /// `Σ w · a` over `terms` at their (common) level ℓ, each weight a scalar at the scale
    /// `S_ℓ` (as [`Exec::encode_scalar`] would encode it): one pass over the coefficients,
    /// counted as the products and sums it replaces (see [`seal::Ops::dot_scalars`]). `None`
    /// when there is no term. Weights that are exactly zero should be skipped by the caller.
    pub fn dot_scalars(&self, terms: &[(&RawCt, f64)]) -> R<Option<Ct>> {
        let Some((first, _)) = terms.first() else {
            return Ok(None);
        };
        let level = first.level();
        match &self.mode {
            Mode::Real { ops, .. } => {
                let real = terms
                    .iter()
                    .map(|(a, w)| match a {
                        RawCt::Real(a) => Ok((a, *w)),
                        RawCt::Sym { .. } => Err(mixed()),
                    })
                    .collect::<R<Vec<_>>>()?;
                Ok(ops.dot_scalars(&real, self.scale(level))?.map(Ct::Real))
            }
            Mode::Sym { counts, .. } => {
                let mut products = 0;
                for (a, w) in terms {
                    let RawCt::Sym { level: l, .. } = a else {
                        return Err(mixed());
                    };
                    same_level("dot_scalars", level, *l)?;
                    if *w == 0.0 {
                        OpCounts::bump(&counts.skipped_zero);
                    } else {
                        products += 1;
                    }
                }
                if products == 0 {
                    return Ok(None);
                }
                OpCounts::bump_by(&counts.hmulplain, products);
                OpCounts::bump_by(&counts.hadd, products - 1);
                Ok(Some(self.sym(level)))
            }
        }
    }

    /// `a²`, relinearized.
    pub fn square(&self, a: &Ct) -> R<Ct> {
        match (&self.mode, a) {
            (Mode::Real { ops, .. }, Ct::Real(a)) => {
                let mut s = ops.square(a)?;
                ops.relinearize(&mut s)?;
                Ok(Ct::Real(s))
            }
            (Mode::Sym { counts, .. }, Ct::Sym { level, .. }) => {
                OpCounts::bump(&counts.hsquare);
                OpCounts::bump(&counts.relinearize);
                Ok(self.sym(*level))
            }
            _ => Err(mixed()),
        }
    }

    /// `a × b`, relinearized.
    pub fn multiply(&self, a: &Ct, b: &Ct) -> R<Ct> {
        match (&self.mode, a, b) {
            (Mode::Real { ops, .. }, Ct::Real(a), Ct::Real(b)) => {
                let mut s = ops.multiply(a, b)?;
                ops.relinearize(&mut s)?;
                Ok(Ct::Real(s))
            }
            (Mode::Sym { counts, .. }, Ct::Sym { level: a, .. }, Ct::Sym { level: b, .. }) => {
                same_level("multiply", *a, *b)?;
                OpCounts::bump(&counts.hmul);
                OpCounts::bump(&counts.relinearize);
                Ok(self.sym(*a))
            }
            _ => Err(mixed()),
        }
    }

    /// Rescale in place (level − 1).
    pub fn rescale(&self, a: &mut Ct) -> R<()> {
        match (&self.mode, a) {
            (Mode::Real { ops, .. }, Ct::Real(a)) => Ok(ops.rescale(a)?),
            (Mode::Sym { counts, .. }, Ct::Sym { level, mem }) => {
                if *level == 0 {
                    return Err(HeError::TooDeep);
                }
                OpCounts::bump(&counts.rescale);
                *level -= 1;
                mem.resize(self.ct_bytes(*level));
                Ok(())
            }
            _ => Err(mixed()),
        }
    }

    /// Drops primes until `a` is at `level`.
    pub fn mod_switch_to(&self, a: &mut Ct, level: usize) -> R<()> {
        match (&self.mode, a) {
            (Mode::Real { ops, .. }, Ct::Real(a)) => Ok(ops.mod_switch_to(a, level)?),
            (Mode::Sym { counts, .. }, Ct::Sym { level: l, mem }) => {
                if level > *l {
                    return Err(HeError::Internal(format!(
                        "mod-switch from level {l} up to {level}"
                    )));
                }
                if level < *l {
                    OpCounts::bump(&counts.mod_switch);
                    *l = level;
                    mem.resize(self.ct_bytes(level));
                }
                Ok(())
            }
            _ => Err(mixed()),
        }
    }

    /// Rotates left by `step` (right if negative), in every lane.
    pub fn rotate(&self, a: &Ct, step: i64) -> R<Ct> {
        let step = step * self.lanes as i64;
        match (&self.mode, a) {
            (Mode::Real { ops, .. }, Ct::Real(a)) => Ok(Ct::Real(ops.rotate(a, step)?)),
            (Mode::Sym { counts, steps, .. }, Ct::Sym { level, .. }) => {
                OpCounts::bump(&counts.rotation);
                let s = step.rem_euclid((self.slots * self.lanes) as i64);
                if s == 0 {
                    OpCounts::bump(&counts.rotation_zero);
                } else {
                    lock(steps).insert(s);
                }
                Ok(self.sym(*level))
            }
            _ => Err(mixed()),
        }
    }

    /// The real ciphertext inside (for decryption by the client).
    pub fn into_real(ct: Ct) -> R<Ciphertext> {
        match ct {
            Ct::Real(c) => Ok(c),
            Ct::Sym { .. } => Err(mixed()),
        }
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

/// Physical slots `slots` seen as `slots / lanes` per image.
fn logical(slots: usize, lanes: usize) -> R<usize> {
    if lanes == 0 || !slots.is_multiple_of(lanes) {
        return Err(HeError::Internal(format!(
            "{lanes} images cannot share {slots} slots evenly"
        )));
    }
    Ok(slots / lanes)
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn same_level(op: &str, a: usize, b: usize) -> R<()> {
    if a == b {
        Ok(())
    } else {
        Err(HeError::Internal(format!("{op} of levels {a} and {b}")))
    }
}

fn mixed() -> HeError {
    HeError::Internal("real and symbolic values mixed".into())
}
