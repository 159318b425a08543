//! Safe CKKS over Microsoft SEAL 4.0: the only module of hejob that touches FFI.
//!
//! Layout: [`context`] (parameters, 128-bit check, the modulus chain), [`encoder`]
//! (plaintexts), [`ciphertext`], [`keys`] (evaluation keys only), [`encryptor`] (the public
//! key: encryption only), [`client`] (key generation and decryption: the only owner of a secret
//! key), [`evaluator`] (homomorphic
//! operations over evaluation keys), [`raw`] (ciphertexts as
//! coefficient arrays, and the fused scalar linear combination computed over them).
//!
//! # Thread safety
//! SEAL objects are shared across rayon threads only where SEAL itself makes that sound:
//! - [`Context`], [`EvaluationKeys`] and the plaintexts/ciphertexts handed out by `&` are never
//!   mutated after construction; every method that changes a SEAL object takes `&mut self`.
//! - `Evaluator` and `CKKSEncoder` methods are `const` in SEAL and allocate from the memory pool
//!   we pass. hejob always passes a null pool, which SEAL maps to the global pool
//!   (`MemoryManager::GetPool()`): a `MemoryPoolMT`, safe for concurrent allocation.
//! - `Encryptor::encrypt` is `const` and draws a fresh PRNG from the context's thread-safe
//!   factory on each call. `Decryptor::decrypt` is not `const` in SEAL, so the client keeps its
//!   decryptor behind a mutex.

mod alloc;
pub mod ciphertext;
pub mod client;
pub mod context;
pub mod encoder;
pub mod encryptor;
pub mod evaluator;
mod ffi;
mod handle;
pub mod keys;
pub mod raw;

pub use alloc::global_pool_bytes;
pub use ciphertext::{Ciphertext, SeededCiphertext};
pub use client::Client;
pub use context::{CkksParams, Context};
pub use encoder::{Encoder, Plaintext};
pub use encryptor::{Encryptor, PublicKey};
pub use evaluator::Evaluator;
pub use keys::{EvaluationKeys, SeededKeys};
pub use raw::RawCiphertext;

/// Everything that can go wrong in the CKKS engine, each naming the operation.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("SEAL {op} failed: {reason} (HRESULT {code:#010x})")]
    Call {
        op: &'static str,
        code: u32,
        reason: &'static str,
    },
    #[error("CKKS parameters N={degree}, coefficient modulus bits {bits:?} rejected: {message}")]
    Parameters {
        degree: u64,
        bits: Vec<i32>,
        message: String,
    },
    #[error("{op}: no Galois key for rotation step {step} (keys exist for steps {available:?})")]
    MissingGaloisKey {
        op: &'static str,
        step: i32,
        available: Vec<i32>,
    },
    #[error("{op}: the evaluator was given no relinearization keys")]
    MissingRelinKeys { op: &'static str },
    #[error("{op}: level {level} does not exist (levels are 0..={top})")]
    NoSuchLevel {
        op: &'static str,
        level: usize,
        top: usize,
    },
    #[error("{op}: operands are at different levels ({a} and {b}); mod-switch first")]
    LevelMismatch {
        op: &'static str,
        a: usize,
        b: usize,
    },
    #[error("{op}: cannot go from level {from} to level {to} (levels only go down)")]
    LevelUp {
        op: &'static str,
        from: usize,
        to: usize,
    },
    #[error("{op}: the ciphertext is at level 0, no prime is left to drop")]
    EndOfChain { op: &'static str },
    #[error("{op}: operand scales differ (2^{a:.4} and 2^{b:.4}); normalise with set_scale first")]
    ScaleMismatch { op: &'static str, a: f64, b: f64 },
    #[error("{op}: {count} values do not fit in {slots} slots")]
    TooManyValues {
        op: &'static str,
        count: usize,
        slots: usize,
    },
    #[error("{op}: value at index {index} is {value}, not a finite number")]
    NonFinite {
        op: &'static str,
        index: usize,
        value: f64,
    },
    #[error("{op}: weight {value} at scale 2^{scale_bits:.1} does not fit a {bits}-bit integer")]
    WeightTooLarge {
        op: &'static str,
        value: f64,
        scale_bits: f64,
        bits: u32,
    },
    #[error("{op}: the result's scale 2^{scale_bits:.1} exceeds the {modulus_bits:.1}-bit modulus of its level")]
    ScaleOutOfBounds {
        op: &'static str,
        scale_bits: f64,
        modulus_bits: f64,
    },
    #[error("{what}: malformed serialized data: {reason}")]
    Malformed { what: &'static str, reason: String },
}

/// Result of an engine call.
pub type Result<T> = std::result::Result<T, SealError>;

/// Turns an HRESULT from SEAL's C API into a typed error naming the operation.
///
/// SEAL defines its error codes as `long` literals such as `0x80070057L`, which are *positive*
/// on LP64 Linux, so its own `FAILED()` sign test does not apply: only `S_OK` (0) and
/// `S_FALSE` (1) mean success.
fn check(op: &'static str, code: ffi::HResult) -> Result<()> {
    if code == 0 || code == 1 {
        return Ok(());
    }
    let code = code as u32;
    let reason = match code {
        0x8000_4003 => "null pointer",
        0x8007_0057 => {
            "invalid argument (mismatched parameters, level, scale, or a value SEAL cannot encode)"
        }
        0x8007_000E => "out of memory",
        0x8013_1620 => "I/O error or malformed serialized data",
        0x8013_1509 => {
            "invalid operation (SEAL logic error, e.g. scale out of bounds or a transparent result)"
        }
        0x8000_FFFF => "unexpected internal error",
        _ => "unknown SEAL error",
    };
    Err(SealError::Call { op, code, reason })
}
