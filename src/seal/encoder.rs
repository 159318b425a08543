//! CKKS encoding of real vectors and scalars into plaintexts at a chosen level and scale.

use std::sync::Arc;

use super::context::Context;
use super::ffi;
use super::handle::Handle;
use super::{check, Result, SealError};

/// An encoded plaintext, remembering its level, scale and whether every coefficient is zero
/// (a product with such a plaintext would be SEAL's "transparent" ciphertext).
pub struct Plaintext {
    handle: Handle,
    level: usize,
    scale: f64,
    zero: bool,
}

impl Plaintext {
    /// The level (chain index) it was encoded at.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The scale it was encoded with.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// True if every coefficient is exactly zero, so that multiplying by it gives nothing.
    pub fn is_zero(&self) -> bool {
        self.zero
    }

    pub(crate) fn ptr(&self) -> *mut std::ffi::c_void {
        self.handle.ptr()
    }

    pub(crate) fn empty() -> Result<Handle> {
        // SAFETY: out-pointer constructor with the global pool.
        Handle::create("Plaintext::new", ffi::Plaintext_Destroy, |p| unsafe {
            ffi::Plaintext_Create1(std::ptr::null_mut(), p)
        })
    }
}

/// SEAL's CKKS encoder for one context. Shared by reference across threads (see
/// `crate::seal` docs).
pub struct Encoder {
    handle: Handle,
    context: Arc<Context>,
}

impl Encoder {
    pub fn new(context: Arc<Context>) -> Result<Self> {
        // SAFETY: out-pointer constructor over a live context.
        let handle = Handle::create("CKKSEncoder::new", ffi::CKKSEncoder_Destroy, |p| unsafe {
            ffi::CKKSEncoder_Create(context.ptr(), p)
        })?;
        Ok(Self { handle, context })
    }

    /// The context it encodes for.
    pub fn context(&self) -> &Arc<Context> {
        &self.context
    }

    /// Encodes `values` into the first slots (the rest are zero) at `level` and `scale`.
    pub fn encode(&self, values: &[f64], level: usize, scale: f64) -> Result<Plaintext> {
        const OP: &str = "CKKSEncoder::encode";
        let slots = self.context.slots();
        if values.len() > slots {
            return Err(SealError::TooManyValues {
                op: OP,
                count: values.len(),
                slots,
            });
        }
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(SealError::NonFinite {
                op: OP,
                index,
                value,
            });
        }
        let mut parms_id = self.context.parms_id(level, OP)?;
        let handle = Plaintext::empty()?;
        // SAFETY: SEAL reads `values.len()` doubles and writes into the live plaintext.
        check(OP, unsafe {
            ffi::CKKSEncoder_Encode1(
                self.handle.ptr(),
                values.len() as u64,
                values.as_ptr() as *mut f64,
                parms_id.as_mut_ptr(),
                scale,
                handle.ptr(),
                std::ptr::null_mut(),
            )
        })?;
        Self::finish(handle, level, scale)
    }

    /// Encodes `value` into every slot at `level` and `scale`.
    pub fn encode_scalar(&self, value: f64, level: usize, scale: f64) -> Result<Plaintext> {
        const OP: &str = "CKKSEncoder::encode_scalar";
        if !value.is_finite() {
            return Err(SealError::NonFinite {
                op: OP,
                index: 0,
                value,
            });
        }
        let mut parms_id = self.context.parms_id(level, OP)?;
        let handle = Plaintext::empty()?;
        // SAFETY: live encoder and plaintext.
        check(OP, unsafe {
            ffi::CKKSEncoder_Encode3(
                self.handle.ptr(),
                value,
                parms_id.as_mut_ptr(),
                scale,
                handle.ptr(),
                std::ptr::null_mut(),
            )
        })?;
        Self::finish(handle, level, scale)
    }

    /// Decodes all slots of a plaintext.
    pub fn decode(&self, plain: &Plaintext) -> Result<Vec<f64>> {
        self.decode_raw(plain.ptr())
    }

    pub(crate) fn decode_raw(&self, plain: *mut std::ffi::c_void) -> Result<Vec<f64>> {
        let mut out = vec![0f64; self.context.slots()];
        let mut count = out.len() as u64;
        // SAFETY: `out` has room for every slot.
        check("CKKSEncoder::decode", unsafe {
            ffi::CKKSEncoder_Decode1(
                self.handle.ptr(),
                plain,
                &mut count,
                out.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        })?;
        out.truncate(count as usize);
        Ok(out)
    }

    fn finish(handle: Handle, level: usize, scale: f64) -> Result<Plaintext> {
        let mut zero = false;
        // SAFETY: live plaintext, out-parameter.
        check("Plaintext::is_zero", unsafe {
            ffi::Plaintext_IsZero(handle.ptr(), &mut zero)
        })?;
        Ok(Plaintext {
            handle,
            level,
            scale,
            zero,
        })
    }
}
