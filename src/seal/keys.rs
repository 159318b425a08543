//! Public evaluation keys (relinearization and Galois keys for chosen rotation steps) and
//! their byte form; these are all a server ever receives.
//!
//! Galois keys come in sets of at most [`STEPS_PER_SET`] steps, and the byte form is a
//! sequence of pieces (a head, then one piece per key set), so that sending or receiving keys
//! of many gigabytes needs one set's bytes beside the keys, never a second copy of them all.

use std::collections::{BTreeMap, BTreeSet};

use super::context::Context;
use super::ffi;
use super::handle::Handle;
use super::{Result, SealError};

const MAGIC: &[u8; 8] = b"HEJOBEK2";
/// Bytes of the head piece: the magic, the relinearization flag, the number of Galois sets.
const HEAD_BYTES: usize = MAGIC.len() + 1 + 4;
/// Bytes of the length before each piece after the head in [`EvaluationKeys::to_bytes`].
const LENGTH_BYTES: u64 = 8;
/// Most rotation steps in one set of Galois keys: 8 keys at N = 32768 with 13 primes are
/// 650 MB, and SEAL's per-set overhead (8 bytes per Galois element slot when serialized) stays
/// below 0.1 % of them.
pub(crate) const STEPS_PER_SET: usize = 8;

/// Normalises a rotation step to `0..slots` (a left rotation by `step` equals one by
/// `step mod slots`, and both use the same Galois element).
pub(crate) fn normalize_step(step: i64, slots: usize) -> i32 {
    step.rem_euclid(slots as i64) as i32
}

/// One set of SEAL key-switching keys (relinearization or Galois).
pub(crate) struct SwitchKeys(Handle);

impl SwitchKeys {
    pub(crate) fn ptr(&self) -> *mut std::ffi::c_void {
        self.0.ptr()
    }

    pub(crate) fn from_handle(handle: Handle) -> Self {
        Self(handle)
    }

    fn to_bytes(&self) -> Result<Vec<u8>> {
        self.0.save(
            "KSwitchKeys::save",
            ffi::KSwitchKeys_SaveSize,
            ffi::KSwitchKeys_Save,
        )
    }

    fn uncompressed_size(&self) -> Result<u64> {
        self.0
            .uncompressed_size("KSwitchKeys::save_size", ffi::KSwitchKeys_SaveSize)
    }

    fn from_bytes(context: &Context, what: &'static str, bytes: &[u8]) -> Result<Self> {
        // SAFETY: out-pointer constructor.
        let mut handle =
            Handle::create("KSwitchKeys::new", ffi::KSwitchKeys_Destroy, |p| unsafe {
                ffi::KSwitchKeys_Create1(p)
            })?;
        handle.load(what, context.ptr(), bytes, ffi::KSwitchKeys_Load)?;
        Ok(Self(handle))
    }
}

/// Galois keys for a few rotation steps.
pub(crate) struct GaloisSet {
    pub(crate) steps: BTreeSet<i32>,
    pub(crate) keys: SwitchKeys,
}

impl GaloisSet {
    /// The steps (count, then each), before the keys in this set's piece.
    fn head(&self) -> Vec<u8> {
        let mut out = (self.steps.len() as u32).to_le_bytes().to_vec();
        for s in &self.steps {
            out.extend(s.to_le_bytes());
        }
        out
    }
}

/// The keys an evaluator needs: relinearization keys (if it multiplies ciphertexts) and
/// Galois keys for exactly the rotation steps of its computation. Holds no secret.
pub struct EvaluationKeys {
    relin: Option<SwitchKeys>,
    galois: Vec<GaloisSet>,
    /// Each step's set in `galois`.
    set_of: BTreeMap<i32, usize>,
}

impl EvaluationKeys {
    /// Keys from their sets; each step must be in exactly one set.
    pub(crate) fn new(relin: Option<SwitchKeys>, galois: Vec<GaloisSet>) -> Result<Self> {
        let mut set_of = BTreeMap::new();
        for (i, set) in galois.iter().enumerate() {
            if set.steps.is_empty() {
                return Err(malformed("a set of Galois keys without rotation steps"));
            }
            for &step in &set.steps {
                if set_of.insert(step, i).is_some() {
                    return Err(malformed(&format!("rotation step {step} has two keys")));
                }
            }
        }
        Ok(Self {
            relin,
            galois,
            set_of,
        })
    }

    /// The rotation steps (normalised to `1..slots`) that Galois keys exist for.
    pub fn steps(&self) -> Vec<i32> {
        self.set_of.keys().copied().collect()
    }

    /// Whether relinearization keys are present.
    pub fn has_relin(&self) -> bool {
        self.relin.is_some()
    }

    /// The relinearization keys, if any.
    pub(crate) fn relin(&self) -> Option<&SwitchKeys> {
        self.relin.as_ref()
    }

    /// The Galois keys that hold the (normalised) `step`.
    pub(crate) fn galois(&self, step: i32) -> Option<&SwitchKeys> {
        self.set_of.get(&step).map(|&i| &self.galois[i].keys)
    }

    /// How many pieces [`Self::pieces`] yields.
    pub fn piece_count(&self) -> usize {
        1 + usize::from(self.relin.is_some()) + self.galois.len()
    }

    /// The keys as pieces, serialized one at a time as the iterator advances: the head (magic,
    /// whether relinearization keys follow, the number of Galois sets), the relinearization
    /// keys, then each Galois set (its steps, then SEAL's encoding of its keys).
    pub fn pieces(&self) -> impl Iterator<Item = Result<Vec<u8>>> + '_ {
        let mut head = MAGIC.to_vec();
        head.push(u8::from(self.relin.is_some()));
        head.extend((self.galois.len() as u32).to_le_bytes());
        debug_assert_eq!(head.len(), HEAD_BYTES);
        let relin = self.relin.iter().map(SwitchKeys::to_bytes);
        let galois = self.galois.iter().map(|set| {
            let mut out = set.head();
            out.extend(set.keys.to_bytes()?);
            Ok(out)
        });
        std::iter::once(Ok(head)).chain(relin).chain(galois)
    }

    /// Rebuilds keys from [`Self::pieces`], each validated against `context` as it arrives;
    /// `next` hands over the next piece. Asks for exactly [`Self::piece_count`] pieces unless
    /// one is malformed.
    pub fn from_pieces<E: From<SealError>>(
        context: &Context,
        mut next: impl FnMut() -> std::result::Result<Vec<u8>, E>,
    ) -> std::result::Result<Self, E> {
        let head = next()?;
        let mut r = Reader::new(&head);
        if head.len() < MAGIC.len() || r.take(MAGIC.len())? != MAGIC {
            return Err(malformed("not an hejob evaluation-key blob (bad magic)").into());
        }
        let has_relin = match r.array::<1>()? {
            [0] => false,
            [1] => true,
            [b] => return Err(malformed(&format!("relinearization flag {b}")).into()),
        };
        let sets = u32::from_le_bytes(r.array()?) as usize;
        r.end()?;
        let relin = if has_relin {
            Some(SwitchKeys::from_bytes(
                context,
                "relinearization keys",
                &next()?,
            )?)
        } else {
            None
        };
        let mut galois = Vec::with_capacity(sets.min(1 << 16));
        for _ in 0..sets {
            let piece = next()?;
            let mut r = Reader::new(&piece);
            let count = u32::from_le_bytes(r.array()?) as usize;
            let mut steps = BTreeSet::new();
            for _ in 0..count {
                let step = i32::from_le_bytes(r.array()?);
                if step <= 0 || step as usize >= context.slots() {
                    return Err(
                        malformed(&format!("rotation step {step} is not normalised")).into(),
                    );
                }
                steps.insert(step);
            }
            let keys = SwitchKeys::from_bytes(context, "Galois keys", r.rest())?;
            galois.push(GaloisSet { steps, keys });
        }
        Ok(Self::new(relin, galois)?)
    }

    /// The size of [`Self::to_bytes`] were the key sets stored uncompressed, worked out without
    /// serializing them (which would briefly double the memory of keys that can take 13 GB).
    pub fn uncompressed_size(&self) -> Result<u64> {
        let mut total = HEAD_BYTES as u64 + LENGTH_BYTES * (self.piece_count() as u64 - 1);
        if let Some(relin) = &self.relin {
            total += relin.uncompressed_size()?;
        }
        for set in &self.galois {
            total += set.head().len() as u64 + set.keys.uncompressed_size()?;
        }
        Ok(total)
    }

    /// All of [`Self::pieces`] in one blob: the head (of fixed size, so the blob starts with the
    /// magic), then every other piece after its length.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for piece in self.pieces() {
            let piece = piece?;
            if !out.is_empty() {
                out.extend((piece.len() as u64).to_le_bytes());
            }
            out.extend(piece);
        }
        Ok(out)
    }

    /// Loads keys written by [`EvaluationKeys::to_bytes`], validated against `context`.
    pub fn from_bytes(context: &Context, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let keys = Self::from_pieces(context, || -> Result<Vec<u8>> {
            let len = if r.at == 0 {
                HEAD_BYTES.min(bytes.len())
            } else {
                u64::from_le_bytes(r.array()?) as usize
            };
            Ok(r.take(len)?.to_vec())
        })?;
        r.end()?;
        Ok(keys)
    }
}

fn malformed(reason: &str) -> SealError {
    SealError::Malformed {
        what: "evaluation keys",
        reason: reason.to_string(),
    }
}

/// A cursor over a byte blob that fails cleanly on truncation.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| malformed(&format!("truncated at byte {}", self.at)))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self
            .take(N)?
            .try_into()
            .expect("take returns exactly N bytes"))
    }

    /// Everything not read yet.
    fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.at..];
        self.at = self.bytes.len();
        out
    }

    /// Fails unless everything was read.
    fn end(&self) -> Result<()> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(malformed("trailing bytes after the keys"))
        }
    }
}

/// Evaluation keys whose second halves are seeds: about half the bytes, good only for sending.
/// Loading their pieces ([`EvaluationKeys::from_pieces`]) gives full keys.
pub struct SeededKeys(pub(crate) EvaluationKeys);

impl SeededKeys {
    /// The keys as [`EvaluationKeys::pieces`], serialized one at a time.
    pub fn pieces(&self) -> impl Iterator<Item = Result<Vec<u8>>> + '_ {
        self.0.pieces()
    }
}
