//! Public-key encryption: the public key, its byte form, and an encryptor built from it alone.
//! Whoever holds these can encrypt but never decrypt, so a worker rank may play the encrypting
//! client for its own images while the secret key stays with the key owner.

use std::sync::Arc;

use super::ciphertext::Ciphertext;
use super::context::Context;
use super::encoder::{Encoder, Plaintext};
use super::ffi;
use super::handle::Handle;
use super::{check, Result};

/// A CKKS public (encryption) key.
pub struct PublicKey(Handle);

impl PublicKey {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        Self(handle)
    }

    /// SEAL's serialization of the key.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.0.save(
            "PublicKey::save",
            ffi::PublicKey_SaveSize,
            ffi::PublicKey_Save,
        )
    }

    /// Loads a key written by [`PublicKey::to_bytes`], validated by SEAL against `context`.
    pub fn from_bytes(context: &Context, bytes: &[u8]) -> Result<Self> {
        // SAFETY: out-pointer constructor.
        let mut handle = Handle::create("PublicKey::new", ffi::PublicKey_Destroy, |p| unsafe {
            ffi::PublicKey_Create1(p)
        })?;
        handle.load("public key", context.ptr(), bytes, ffi::PublicKey_Load)?;
        Ok(Self(handle))
    }
}

/// Encodes and encrypts with a public key only.
pub struct Encryptor {
    context: Arc<Context>,
    encoder: Encoder,
    handle: Handle,
}

impl Encryptor {
    /// An encryptor for `context` under `key`.
    pub fn new(context: Arc<Context>, key: &PublicKey) -> Result<Self> {
        // SAFETY: live context and public key; a null secret key selects public-key encryption.
        let handle = Handle::create("Encryptor::new", ffi::Encryptor_Destroy, |p| unsafe {
            ffi::Encryptor_Create(context.ptr(), key.0.ptr(), std::ptr::null_mut(), p)
        })?;
        Ok(Self {
            encoder: Encoder::new(context.clone())?,
            context,
            handle,
        })
    }

    /// The context the key belongs to.
    pub fn context(&self) -> &Arc<Context> {
        &self.context
    }

    /// The encoder of this context (the key owner decodes with it too).
    pub(crate) fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Encodes `values` at `level` and `scale` and encrypts them.
    pub fn encrypt(&self, values: &[f64], level: usize, scale: f64) -> Result<Ciphertext> {
        let plain = self.encoder.encode(values, level, scale)?;
        self.encrypt_plain(&plain)
    }

    /// Encrypts an already encoded plaintext.
    pub fn encrypt_plain(&self, plain: &Plaintext) -> Result<Ciphertext> {
        let ct = Ciphertext::empty(plain.level())?;
        // SAFETY: live encryptor, plaintext and destination; global pool.
        check("Encryptor::encrypt", unsafe {
            ffi::Encryptor_Encrypt(
                self.handle.ptr(),
                plain.ptr(),
                ct.ptr(),
                std::ptr::null_mut(),
            )
        })?;
        Ok(ct)
    }
}
