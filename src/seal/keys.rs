//! Public evaluation keys (relinearization and Galois keys for chosen rotation steps) and
//! their byte form; these are all a server ever receives.

use std::collections::BTreeSet;

use super::context::Context;
use super::ffi;
use super::handle::Handle;
use super::{Result, SealError};

const MAGIC: &[u8; 8] = b"HEJOBEK1";
/// Bytes of the length before each serialized key set.
const LENGTH_BYTES: u64 = 8;

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

/// The keys an evaluator needs: relinearization keys (if it multiplies ciphertexts) and
/// Galois keys for exactly the rotation steps of its computation. Holds no secret.
pub struct EvaluationKeys {
    pub(crate) relin: Option<SwitchKeys>,
    pub(crate) galois: Option<SwitchKeys>,
    pub(crate) steps: BTreeSet<i32>,
}

impl EvaluationKeys {
    /// The rotation steps (normalised to `1..slots`) that Galois keys exist for.
    pub fn steps(&self) -> Vec<i32> {
        self.steps.iter().copied().collect()
    }

    /// Whether relinearization keys are present.
    pub fn has_relin(&self) -> bool {
        self.relin.is_some()
    }

    /// The size of [`Self::to_bytes`] were the key sets stored uncompressed, worked out without
    /// serializing them (which would briefly double the memory of keys that can take 13 GB).
    pub fn uncompressed_size(&self) -> Result<u64> {
        let mut total = self.header().len() as u64;
        for keys in self.sets() {
            total += LENGTH_BYTES
                + keys
                    .map(SwitchKeys::uncompressed_size)
                    .transpose()?
                    .unwrap_or(0);
        }
        Ok(total)
    }

    /// Serializes the keys: magic, steps, then SEAL's own encodings of both key sets, each after
    /// its length.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = self.header();
        for keys in self.sets() {
            let bytes = keys.map(SwitchKeys::to_bytes).transpose()?;
            let bytes = bytes.unwrap_or_default();
            out.extend((bytes.len() as u64).to_le_bytes());
            out.extend(bytes);
        }
        Ok(out)
    }

    /// The magic and the rotation steps.
    fn header(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend((self.steps.len() as u32).to_le_bytes());
        for s in &self.steps {
            out.extend(s.to_le_bytes());
        }
        out
    }

    /// The key sets in their serialized order.
    fn sets(&self) -> [Option<&SwitchKeys>; 2] {
        [self.relin.as_ref(), self.galois.as_ref()]
    }

    /// Loads keys written by [`EvaluationKeys::to_bytes`], validated against `context`.
    pub fn from_bytes(context: &Context, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(malformed("not an hejob evaluation-key blob (bad magic)"));
        }
        let count = u32::from_le_bytes(r.array()?) as usize;
        let mut steps = BTreeSet::new();
        for _ in 0..count {
            let step = i32::from_le_bytes(r.array()?);
            if step <= 0 || step as usize >= context.slots() {
                return Err(malformed(&format!(
                    "rotation step {step} is not normalised"
                )));
            }
            steps.insert(step);
        }
        let mut sets = [None, None];
        for (set, what) in sets.iter_mut().zip(["relinearization keys", "Galois keys"]) {
            let len = u64::from_le_bytes(r.array()?) as usize;
            if len > 0 {
                *set = Some(SwitchKeys::from_bytes(context, what, r.take(len)?)?);
            }
        }
        if r.at != bytes.len() {
            return Err(malformed("trailing bytes after the keys"));
        }
        let [relin, galois] = sets;
        if galois.is_none() != steps.is_empty() {
            return Err(malformed("rotation steps and Galois keys disagree"));
        }
        Ok(Self {
            relin,
            galois,
            steps,
        })
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
}
