//! CKKS ciphertexts: level and scale bookkeeping, copying and serialization.

use super::context::Context;
use super::ffi;
use super::handle::Handle;
use super::{check, Result, SealError};

/// One CKKS ciphertext at a known level of its context's modulus chain.
pub struct Ciphertext {
    handle: Handle,
    level: usize,
}

impl Ciphertext {
    /// An empty ciphertext for SEAL to write into; `level` is set by the caller.
    ///
    /// Its data lives in a memory pool of its own, which SEAL frees when the ciphertext is
    /// dropped. In SEAL's global pool, freed buffers stay cached per size class for the life of
    /// the process, so a computation whose ciphertexts shrink level by level would keep the peak
    /// of every level resident at once.
    pub(crate) fn empty(level: usize) -> Result<Self> {
        // SAFETY: out-pointer constructors; the ciphertext keeps its own handle to the pool.
        let pool = Handle::create(
            "MemoryPoolHandle::New",
            ffi::MemoryPoolHandle_Destroy,
            |p| unsafe { ffi::MemoryPoolHandle_New(false, p) },
        )?;
        let handle = Handle::create("Ciphertext::new", ffi::Ciphertext_Destroy, |p| unsafe {
            ffi::Ciphertext_Create1(pool.ptr(), p)
        })?;
        Ok(Self { handle, level })
    }

    /// Records the level SEAL left it at after writing into it.
    pub(super) fn set_level(&mut self, level: usize) {
        self.level = level;
    }

    pub(crate) fn ptr(&self) -> *mut std::ffi::c_void {
        self.handle.ptr()
    }

    /// The level (chain index): how many more rescales it can take.
    pub fn level(&self) -> usize {
        self.level
    }

    /// Its current scale.
    pub fn scale(&self) -> f64 {
        let mut scale = 0f64;
        // SAFETY: live ciphertext, out-parameter; this call cannot fail on a live object.
        unsafe { ffi::Ciphertext_Scale(self.handle.ptr(), &mut scale) };
        scale
    }

    /// Number of polynomials: 2 after relinearization, 3 after a product.
    pub fn size(&self) -> Result<u64> {
        let mut size = 0u64;
        // SAFETY: live ciphertext, out-parameter.
        check("Ciphertext::size", unsafe {
            ffi::Ciphertext_Size(self.handle.ptr(), &mut size)
        })?;
        Ok(size)
    }

    /// Declares the ciphertext's scale to be `scale` without touching its data: the decrypted
    /// values are multiplied by `old / scale`. Used to snap a scale that differs from the
    /// nominal one by a prime's tiny deviation from `2^bits`, so that terms can be added.
    pub fn set_scale(&mut self, scale: f64) -> Result<()> {
        // SAFETY: live ciphertext; we hold it mutably.
        check("Ciphertext::set_scale", unsafe {
            ffi::Ciphertext_SetScale(self.handle.ptr(), scale)
        })
    }

    /// A deep copy, in a memory pool of its own like every ciphertext here. (SEAL's copy
    /// constructor would put the copy in the global pool, whose cache then kept the memory of
    /// every copy ever live at once: 2–3 GB of a CIFAR-10 batch-axis run's peak.)
    pub fn try_clone(&self) -> Result<Self> {
        let copy = Self::empty(self.level)?;
        // SAFETY: copy assignment between two live ciphertexts; the destination resizes within
        // its own pool.
        check("Ciphertext::clone", unsafe {
            ffi::Ciphertext_Set(copy.ptr(), self.ptr())
        })?;
        Ok(copy)
    }

    /// SEAL's serialization of the ciphertext (zstd-compressed).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.handle.save(
            "Ciphertext::save",
            ffi::Ciphertext_SaveSize,
            ffi::Ciphertext_Save,
        )
    }

    /// SEAL's serialization of the ciphertext without compression: the coefficients come last,
    /// as they are in memory.
    pub(crate) fn to_bytes_uncompressed(&self) -> Result<Vec<u8>> {
        self.handle.save_as(
            "Ciphertext::save",
            ffi::Ciphertext_SaveSize,
            ffi::Ciphertext_Save,
            ffi::COMPR_NONE,
        )
    }

    /// Loads a ciphertext, validated by SEAL against `context`.
    pub fn from_bytes(context: &Context, bytes: &[u8]) -> Result<Self> {
        let mut ct = Self::empty(0)?;
        ct.handle
            .load("ciphertext", context.ptr(), bytes, ffi::Ciphertext_Load)?;
        let mut parms_id = [0u64; 4];
        // SAFETY: live ciphertext, 4-word out buffer.
        check("Ciphertext::parms_id", unsafe {
            ffi::Ciphertext_ParmsId(ct.handle.ptr(), parms_id.as_mut_ptr())
        })?;
        ct.level = context.level_of(&parms_id).ok_or(SealError::Malformed {
            what: "ciphertext",
            reason: "its parameters are not a data level of this context".into(),
        })?;
        Ok(ct)
    }
}

/// A ciphertext encrypted with the secret key whose second polynomial SEAL stores as the seed
/// it grows from: about half the bytes of a public-key ciphertext, and good only for sending.
/// SEAL expands the seed when the bytes are loaded ([`Ciphertext::from_bytes`]).
pub struct SeededCiphertext(pub(crate) Ciphertext);

impl SeededCiphertext {
    /// SEAL's serialization: the first polynomial and the seed (zstd-compressed).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.0.to_bytes()
    }
}
