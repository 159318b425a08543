//! An owned pointer to one SEAL C++ object, destroyed exactly once on drop.

use std::ffi::c_void;

use super::ffi::HResult;

/// The destructor SEAL's C API exports for one object type.
pub(crate) type Destroy = unsafe extern "C" fn(*mut c_void) -> HResult;

/// Owns one SEAL object created through the C API.
pub(crate) struct Handle {
    ptr: *mut c_void,
    destroy: Destroy,
}

// SAFETY: a `Handle` is the sole owner of its object. Shared (`&`) access only ever reaches
// SEAL's `const` methods or methods that SEAL documents as thread-safe (see the module docs of
// `crate::seal`); mutation goes through `&mut` wrappers.
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

impl Handle {
    /// Creates an object with `create` (an out-pointer constructor) and takes ownership of it.
    pub(crate) fn create(
        op: &'static str,
        destroy: Destroy,
        create: impl FnOnce(*mut *mut c_void) -> HResult,
    ) -> super::Result<Self> {
        let mut ptr = std::ptr::null_mut();
        super::check(op, create(&mut ptr))?;
        if ptr.is_null() {
            return Err(super::SealError::Call {
                op,
                code: 0x8000_4003,
                reason: "SEAL returned a null object",
            });
        }
        Ok(Self { ptr, destroy })
    }

    /// The raw pointer, for passing to SEAL. Valid as long as `self` lives.
    pub(crate) fn ptr(&self) -> *mut c_void {
        self.ptr
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: `ptr` was created by the matching SEAL constructor and is destroyed once.
        let code = unsafe { (self.destroy)(self.ptr) };
        if code != 0 {
            log::error!("SEAL destructor failed with HRESULT {:#x}", code as u32);
        }
    }
}

/// SEAL's `*_SaveSize` for one object type.
pub(crate) type SaveSizeFn = unsafe extern "C" fn(*mut c_void, u8, *mut i64) -> HResult;
/// SEAL's `*_Save` for one object type.
pub(crate) type SaveFn = unsafe extern "C" fn(*mut c_void, *mut u8, u64, u8, *mut i64) -> HResult;
/// SEAL's validating `*_Load` for one object type.
pub(crate) type LoadFn =
    unsafe extern "C" fn(*mut c_void, *mut c_void, *mut u8, u64, *mut i64) -> HResult;

impl Handle {
    /// Serializes the object with SEAL's own format (header, then zstd-compressed data).
    pub(crate) fn save(
        &self,
        op: &'static str,
        size: SaveSizeFn,
        save: SaveFn,
    ) -> super::Result<Vec<u8>> {
        self.save_as(op, size, save, super::ffi::COMPR_ZSTD)
    }

    /// The exact size of the object's uncompressed serialization, without making it.
    pub(crate) fn uncompressed_size(
        &self,
        op: &'static str,
        size: SaveSizeFn,
    ) -> super::Result<u64> {
        let mut bytes = 0i64;
        // SAFETY: live object, out-parameter.
        super::check(op, unsafe {
            size(self.ptr, super::ffi::COMPR_NONE, &mut bytes)
        })?;
        Ok(bytes.max(0) as u64)
    }

    /// Serializes the object with SEAL's own format and compression `mode`.
    pub(crate) fn save_as(
        &self,
        op: &'static str,
        size: SaveSizeFn,
        save: SaveFn,
        mode: u8,
    ) -> super::Result<Vec<u8>> {
        let mut bound = 0i64;
        // SAFETY: live object, out-parameter.
        super::check(op, unsafe { size(self.ptr, mode, &mut bound) })?;
        let mut out = vec![0u8; bound.max(0) as usize];
        let mut written = 0i64;
        // SAFETY: `out` has `bound` writable bytes.
        super::check(op, unsafe {
            save(
                self.ptr,
                out.as_mut_ptr(),
                out.len() as u64,
                mode,
                &mut written,
            )
        })?;
        out.truncate(written.max(0) as usize);
        Ok(out)
    }

    /// Replaces the object's contents with `bytes`, which SEAL validates against `context`.
    pub(crate) fn load(
        &mut self,
        what: &'static str,
        context: *mut c_void,
        bytes: &[u8],
        load: LoadFn,
    ) -> super::Result<()> {
        let malformed = |reason: String| super::SealError::Malformed { what, reason };
        if bytes.len() < 16 {
            return Err(malformed(format!(
                "{} bytes is shorter than a SEAL header",
                bytes.len()
            )));
        }
        let mut read = 0i64;
        // SAFETY: SEAL only reads `bytes.len()` bytes through the pointer.
        let code = unsafe {
            load(
                self.ptr,
                context,
                bytes.as_ptr() as *mut u8,
                bytes.len() as u64,
                &mut read,
            )
        };
        super::check(what, code).map_err(|e| malformed(e.to_string()))?;
        if read as usize != bytes.len() {
            return Err(malformed(format!(
                "{} trailing bytes after the SEAL object",
                bytes.len() - read as usize
            )));
        }
        Ok(())
    }
}
