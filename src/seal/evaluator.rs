//! The server side: homomorphic operations over evaluation keys only (uncounted: the
//! encrypted evaluation counts them, `he::exec`).

use std::cell::RefCell;
use std::sync::Arc;

use super::ciphertext::Ciphertext;
use super::context::Context;
use super::encoder::{Encoder, Plaintext};
use super::ffi;
use super::handle::Handle;
use super::keys::{normalize_step, EvaluationKeys};
use super::{check, Result, SealError};

/// SEAL's evaluator with the public evaluation keys of one computation. It can encode weights
/// but has no way to decrypt: it never sees a secret key.
pub struct Evaluator {
    handle: Handle,
    encoder: Encoder,
    keys: EvaluationKeys,
}

impl Evaluator {
    pub fn new(context: Arc<Context>, keys: EvaluationKeys) -> Result<Self> {
        // SAFETY: out-pointer constructor over a live context.
        let handle = Handle::create("Evaluator::new", ffi::Evaluator_Destroy, |p| unsafe {
            ffi::Evaluator_Create(context.ptr(), p)
        })?;
        Ok(Self {
            handle,
            encoder: Encoder::new(context)?,
            keys,
        })
    }

    /// The context it evaluates in.
    pub fn context(&self) -> &Arc<Context> {
        self.encoder.context()
    }

    /// The keys it holds.
    pub fn keys(&self) -> &EvaluationKeys {
        &self.keys
    }

    /// Encodes a vector at `level` and `scale`.
    pub fn encode(&self, values: &[f64], level: usize, scale: f64) -> Result<Plaintext> {
        self.encoder.encode(values, level, scale)
    }

    /// Encodes a scalar into every slot at `level` and `scale`.
    pub fn encode_scalar(&self, value: f64, level: usize, scale: f64) -> Result<Plaintext> {
        self.encoder.encode_scalar(value, level, scale)
    }

    /// `a + b`.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.binary("Evaluator::add", a, b, ffi::Evaluator_Add)
    }

    /// `a - b`.
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.binary("Evaluator::sub", a, b, ffi::Evaluator_Sub)
    }

    /// `acc += b` in place.
    pub fn add_assign(&self, acc: &mut Ciphertext, b: &Ciphertext) -> Result<()> {
        const OP: &str = "Evaluator::add_assign";
        same_level(OP, acc.level(), b.level())?;
        snap_scale(acc, b.scale())?;
        same_scale(OP, acc.scale(), b.scale())?;
        // SAFETY: SEAL supports destination == first operand.
        check(OP, unsafe {
            ffi::Evaluator_Add(self.handle.ptr(), acc.ptr(), b.ptr(), acc.ptr())
        })
    }

    /// `a + p` for an encoded plaintext at the same level and scale.
    pub fn add_plain(&self, a: &Ciphertext, p: &Plaintext) -> Result<Ciphertext> {
        let mut out = a.try_clone()?;
        self.add_plain_assign(&mut out, p)?;
        Ok(out)
    }

    /// `acc += p` in place.
    pub fn add_plain_assign(&self, acc: &mut Ciphertext, p: &Plaintext) -> Result<()> {
        const OP: &str = "Evaluator::add_plain";
        same_level(OP, acc.level(), p.level())?;
        snap_scale(acc, p.scale())?;
        same_scale(OP, acc.scale(), p.scale())?;
        // SAFETY: SEAL supports destination == ciphertext operand.
        check(OP, unsafe {
            ffi::Evaluator_AddPlain(self.handle.ptr(), acc.ptr(), p.ptr(), acc.ptr())
        })
    }

    /// `a × p`, or `None` when `p` is exactly zero: such a product
    /// is SEAL's "transparent" ciphertext, and the right answer is to leave the term out.
    pub fn multiply_plain(&self, a: &Ciphertext, p: &Plaintext) -> Result<Option<Ciphertext>> {
        const OP: &str = "Evaluator::multiply_plain";
        same_level(OP, a.level(), p.level())?;
        if p.is_zero() {
            return Ok(None);
        }
        let out = Ciphertext::empty(a.level())?;
        // SAFETY: live operands and destination; global pool.
        check(OP, unsafe {
            ffi::Evaluator_MultiplyPlain(
                self.handle.ptr(),
                a.ptr(),
                p.ptr(),
                out.ptr(),
                std::ptr::null_mut(),
            )
        })?;
        Ok(Some(out))
    }

    /// `acc += a × p`, the product formed in a scratch ciphertext that the calling thread keeps
    /// and reuses. A fresh product per term would be a megabyte buffer mapped, zeroed by the
    /// kernel page by page and unmapped again (see `alloc`), which costs more than the product
    /// itself; the scratch only grows, to the largest product its thread has formed. Nothing
    /// is added when `p` is exactly zero.
    pub fn multiply_plain_add(
        &self,
        acc: &mut Ciphertext,
        a: &Ciphertext,
        p: &Plaintext,
    ) -> Result<()> {
        const OP: &str = "Evaluator::multiply_plain_add";
        same_level(OP, a.level(), p.level())?;
        same_level(OP, acc.level(), a.level())?;
        if p.is_zero() {
            return Ok(());
        }
        thread_local! {
            static SCRATCH: RefCell<Option<Ciphertext>> = const { RefCell::new(None) };
        }
        SCRATCH.with(|cell| {
            let mut slot = cell.borrow_mut();
            let scratch = match &mut *slot {
                Some(s) => s,
                None => slot.insert(Ciphertext::empty(a.level())?),
            };
            // SAFETY: live operands and destination; global pool for temporaries.
            check(OP, unsafe {
                ffi::Evaluator_MultiplyPlain(
                    self.handle.ptr(),
                    a.ptr(),
                    p.ptr(),
                    scratch.ptr(),
                    std::ptr::null_mut(),
                )
            })?;
            scratch.set_level(a.level());
            self.add_assign(acc, scratch)
        })
    }

    /// `a × b` of two ciphertexts (size 3 until relinearized).
    pub fn multiply(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        const OP: &str = "Evaluator::multiply";
        same_level(OP, a.level(), b.level())?;
        let out = Ciphertext::empty(a.level())?;
        // SAFETY: live operands and destination; global pool.
        check(OP, unsafe {
            ffi::Evaluator_Multiply(
                self.handle.ptr(),
                a.ptr(),
                b.ptr(),
                out.ptr(),
                std::ptr::null_mut(),
            )
        })?;
        Ok(out)
    }

    /// `a²` (size 3 until relinearized).
    pub fn square(&self, a: &Ciphertext) -> Result<Ciphertext> {
        const OP: &str = "Evaluator::square";
        let out = Ciphertext::empty(a.level())?;
        // SAFETY: live operand and destination; global pool.
        check(OP, unsafe {
            ffi::Evaluator_Square(self.handle.ptr(), a.ptr(), out.ptr(), std::ptr::null_mut())
        })?;
        Ok(out)
    }

    /// Relinearizes a size-3 ciphertext back to size 2, in place.
    pub fn relinearize(&self, a: &mut Ciphertext) -> Result<()> {
        const OP: &str = "Evaluator::relinearize";
        let keys = self.keys.relin();
        let keys = keys.ok_or(SealError::MissingRelinKeys { op: OP })?;
        // SAFETY: SEAL supports destination == operand; keys are read only.
        check(OP, unsafe {
            ffi::Evaluator_Relinearize(
                self.handle.ptr(),
                a.ptr(),
                keys.ptr(),
                a.ptr(),
                std::ptr::null_mut(),
            )
        })
    }

    /// Divides by the prime of the current level and drops it (level − 1). The result goes to
    /// a fresh ciphertext that replaces `a`: SEAL shrinks a ciphertext in place without giving
    /// back its capacity, so one rescaled in place would keep the memory of its top level.
    pub fn rescale(&self, a: &mut Ciphertext) -> Result<()> {
        const OP: &str = "Evaluator::rescale_to_next";
        if a.level() == 0 {
            return Err(SealError::EndOfChain { op: OP });
        }
        let out = Ciphertext::empty(a.level() - 1)?;
        // SAFETY: live operand and destination; global pool for temporaries.
        check(OP, unsafe {
            ffi::Evaluator_RescaleToNext(
                self.handle.ptr(),
                a.ptr(),
                out.ptr(),
                std::ptr::null_mut(),
            )
        })?;
        *a = out;
        Ok(())
    }

    /// Drops primes without rescaling until `a` is at `level` (no-op if it already is).
    pub fn mod_switch_to(&self, a: &mut Ciphertext, level: usize) -> Result<()> {
        const OP: &str = "Evaluator::mod_switch_to";
        if level > a.level() {
            return Err(SealError::LevelUp {
                op: OP,
                from: a.level(),
                to: level,
            });
        }
        if level == a.level() {
            return Ok(());
        }
        let mut parms_id = self.context().parms_id(level, OP)?;
        // into a fresh ciphertext, for the same reason as `rescale`
        let out = Ciphertext::empty(level)?;
        // SAFETY: live operand and destination; global pool for temporaries.
        check(OP, unsafe {
            ffi::Evaluator_ModSwitchTo1(
                self.handle.ptr(),
                a.ptr(),
                parms_id.as_mut_ptr(),
                out.ptr(),
                std::ptr::null_mut(),
            )
        })?;
        *a = out;
        Ok(())
    }

    /// Rotates the slots left by `step` (right if negative). Needs the Galois key of
    /// `step mod slots`. A rotation by a multiple of the slot count is a copy (SEAL does the
    /// same).
    pub fn rotate(&self, a: &Ciphertext, step: i64) -> Result<Ciphertext> {
        const OP: &str = "Evaluator::rotate_vector";
        let step = normalize_step(step, self.context().slots());
        if step == 0 {
            return a.try_clone();
        }
        let keys = &self.keys;
        let galois = keys
            .galois(step)
            .ok_or_else(|| SealError::MissingGaloisKey {
                op: OP,
                step,
                available: keys.steps(),
            })?;
        let out = Ciphertext::empty(a.level())?;
        // SAFETY: live operand, keys and destination; global pool.
        check(OP, unsafe {
            ffi::Evaluator_RotateVector(
                self.handle.ptr(),
                a.ptr(),
                step,
                galois.ptr(),
                out.ptr(),
                std::ptr::null_mut(),
            )
        })?;
        Ok(out)
    }

    fn binary(
        &self,
        op: &'static str,
        a: &Ciphertext,
        b: &Ciphertext,
        f: unsafe extern "C" fn(
            *mut std::ffi::c_void,
            *mut std::ffi::c_void,
            *mut std::ffi::c_void,
            *mut std::ffi::c_void,
        ) -> ffi::HResult,
    ) -> Result<Ciphertext> {
        same_level(op, a.level(), b.level())?;
        same_scale(op, a.scale(), b.scale())?;
        let out = Ciphertext::empty(a.level())?;
        // SAFETY: live operands and destination.
        check(op, unsafe {
            f(self.handle.ptr(), a.ptr(), b.ptr(), out.ptr())
        })?;
        Ok(out)
    }
}

pub(super) fn same_level(op: &'static str, a: usize, b: usize) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(SealError::LevelMismatch { op, a, b })
    }
}

/// Gives `acc` the scale `to` when the two differ only by floating-point rounding (relative
/// 1e-12): scales computed along different paths (a plaintext scale chosen as target/have,
/// times have) can miss each other by an ulp, which SEAL refuses to add. The values change by
/// the same relative 1e-12, far below CKKS noise.
fn snap_scale(acc: &mut Ciphertext, to: f64) -> Result<()> {
    let from = acc.scale();
    if from != to && (from - to).abs() <= 1e-12 * from.abs().max(to.abs()) {
        acc.set_scale(to)?;
    }
    Ok(())
}

/// The same closeness test SEAL applies before adding (relative machine epsilon).
pub(super) fn same_scale(op: &'static str, a: f64, b: f64) -> Result<()> {
    if (a - b).abs() < f64::EPSILON * a.abs().max(b.abs()).max(1.0) {
        Ok(())
    } else {
        Err(SealError::ScaleMismatch {
            op,
            a: a.log2(),
            b: b.log2(),
        })
    }
}
