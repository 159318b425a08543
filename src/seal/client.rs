//! The client side: key generation, encryption and decryption. The secret key lives here and
//! nowhere else; the server side only ever receives [`EvaluationKeys`] and ciphertexts.

use std::collections::BTreeSet;
use std::ffi::c_int;
use std::sync::{Arc, Mutex};

use super::ciphertext::{Ciphertext, SeededCiphertext};
use super::context::Context;
use super::encoder::Plaintext;
use super::encryptor::{Encryptor, PublicKey};
use super::ffi;
use super::handle::Handle;
use super::keys::{
    normalize_step, EvaluationKeys, GaloisSet, SeededKeys, SwitchKeys, STEPS_PER_SET,
};
use super::{check, Result};

/// A key owner: generates keys, encrypts inputs, decrypts results. Not `Clone`; the secret key
/// leaves it only as the bytes of the owner's own key file ([`Client::secret_key_bytes`]).
pub struct Client {
    context: Arc<Context>,
    keygen: Handle,
    secret: Handle,
    public: PublicKey,
    encryptor: Encryptor,
    /// Encrypts with the secret key (seeded uploads).
    symmetric: Handle,
    decryptor: Mutex<Handle>,
}

impl Client {
    /// Generates a fresh secret key and public key for `context`.
    pub fn new(context: Arc<Context>) -> Result<Self> {
        // SAFETY: out-pointer constructor over the live context.
        let keygen = Handle::create("KeyGenerator::new", ffi::KeyGenerator_Destroy, |p| unsafe {
            ffi::KeyGenerator_Create1(context.ptr(), p)
        })?;
        Self::from_keygen(context, keygen)
    }

    /// The owner of a secret key saved by [`Client::secret_key_bytes`], which SEAL validates
    /// against `context`. Its public key is a fresh one under the same secret.
    pub fn from_secret_bytes(context: Arc<Context>, bytes: &[u8]) -> Result<Self> {
        // SAFETY: out-pointer constructors over live objects.
        let mut secret = Handle::create("SecretKey::new", ffi::SecretKey_Destroy, |p| unsafe {
            ffi::SecretKey_Create1(p)
        })?;
        secret.load("secret key", context.ptr(), bytes, ffi::SecretKey_Load)?;
        let keygen = Handle::create("KeyGenerator::new", ffi::KeyGenerator_Destroy, |p| unsafe {
            ffi::KeyGenerator_Create2(context.ptr(), secret.ptr(), p)
        })?;
        Self::from_keygen(context, keygen)
    }

    fn from_keygen(context: Arc<Context>, keygen: Handle) -> Result<Self> {
        // SAFETY: out-pointer constructors over live objects; the secret-key copy handed out
        // by KeyGenerator_SecretKey is owned (and destroyed) by `secret`.
        let secret = Handle::create(
            "KeyGenerator::secret_key",
            ffi::SecretKey_Destroy,
            |p| unsafe { ffi::KeyGenerator_SecretKey(keygen.ptr(), p) },
        )?;
        let public = Handle::create(
            "KeyGenerator::create_public_key",
            ffi::PublicKey_Destroy,
            |p| unsafe { ffi::KeyGenerator_CreatePublicKey(keygen.ptr(), false, p) },
        )?;
        let public = PublicKey::from_handle(public);
        let encryptor = Encryptor::new(context.clone(), &public)?;
        // SAFETY: live context and secret key; a null public key selects symmetric encryption.
        let symmetric = Handle::create("Encryptor::new", ffi::Encryptor_Destroy, |p| unsafe {
            ffi::Encryptor_Create(context.ptr(), std::ptr::null_mut(), secret.ptr(), p)
        })?;
        let decryptor = Handle::create("Decryptor::new", ffi::Decryptor_Destroy, |p| unsafe {
            ffi::Decryptor_Create(context.ptr(), secret.ptr(), p)
        })?;
        Ok(Self {
            context,
            keygen,
            secret,
            public,
            encryptor,
            symmetric,
            decryptor: Mutex::new(decryptor),
        })
    }

    /// SEAL's serialization of the secret key, for the key owner's own file and nothing else.
    pub fn secret_key_bytes(&self) -> Result<Vec<u8>> {
        self.secret.save(
            "SecretKey::save",
            ffi::SecretKey_SaveSize,
            ffi::SecretKey_Save,
        )
    }

    /// The context the keys belong to.
    pub fn context(&self) -> &Arc<Context> {
        &self.context
    }

    /// Evaluation keys for exactly these rotation steps (any sign; normalised modulo the slot
    /// count, step 0 needs no key) and, if `relin`, relinearization keys. The Galois keys are
    /// made in sets of a few steps each (see [`EvaluationKeys`]).
    pub fn evaluation_keys(&self, steps: &[i64], relin: bool) -> Result<EvaluationKeys> {
        self.make_keys(steps, relin, false)
    }

    /// The same keys made to be sent: SEAL stores half of each key as the seed it grows from,
    /// so the bytes are about half, and the evaluating side gets full keys when it loads them
    /// ([`EvaluationKeys::from_pieces`]).
    pub fn evaluation_keys_to_send(&self, steps: &[i64], relin: bool) -> Result<SeededKeys> {
        Ok(SeededKeys(self.make_keys(steps, relin, true)?))
    }

    fn make_keys(&self, steps: &[i64], relin: bool, seeded: bool) -> Result<EvaluationKeys> {
        let slots = self.context.slots();
        let steps: BTreeSet<i32> = steps
            .iter()
            .map(|&s| normalize_step(s, slots))
            .filter(|&s| s != 0)
            .collect();
        let relin = if relin {
            // SAFETY: out-pointer constructor over the live key generator.
            let h = Handle::create(
                "KeyGenerator::create_relin_keys",
                ffi::KSwitchKeys_Destroy,
                |p| unsafe { ffi::KeyGenerator_CreateRelinKeys(self.keygen.ptr(), seeded, p) },
            )?;
            Some(SwitchKeys::from_handle(h))
        } else {
            None
        };
        let steps: Vec<i32> = steps.into_iter().collect();
        let galois = steps
            .chunks(STEPS_PER_SET)
            .map(|chunk| {
                let mut raw: Vec<c_int> = chunk.to_vec();
                // SAFETY: SEAL reads `raw.len()` steps.
                let h = Handle::create(
                    "KeyGenerator::create_galois_keys",
                    ffi::KSwitchKeys_Destroy,
                    |p| unsafe {
                        ffi::KeyGenerator_CreateGaloisKeysFromSteps(
                            self.keygen.ptr(),
                            raw.len() as u64,
                            raw.as_mut_ptr(),
                            seeded,
                            p,
                        )
                    },
                )?;
                Ok(GaloisSet {
                    steps: chunk.iter().copied().collect(),
                    keys: SwitchKeys::from_handle(h),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        EvaluationKeys::new(relin, galois)
    }

    /// The public key (anyone may hold it: it encrypts, never decrypts).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Encrypts with the public key.
    pub fn encryptor(&self) -> &Encryptor {
        &self.encryptor
    }

    /// Encodes `values` at `level` and `scale` and encrypts them with the public key.
    pub fn encrypt(&self, values: &[f64], level: usize, scale: f64) -> Result<Ciphertext> {
        self.encryptor.encrypt(values, level, scale)
    }

    /// Encodes `values` at `level` and `scale` and encrypts them with the secret key, keeping
    /// the seed of the second polynomial in its place: an upload of about half the bytes.
    pub fn encrypt_seeded(
        &self,
        values: &[f64],
        level: usize,
        scale: f64,
    ) -> Result<SeededCiphertext> {
        let plain = self.encryptor.encoder().encode(values, level, scale)?;
        self.encrypt_plain_seeded(&plain)
    }

    /// Encrypts an already encoded plaintext as [`Client::encrypt_seeded`] does.
    pub fn encrypt_plain_seeded(&self, plain: &Plaintext) -> Result<SeededCiphertext> {
        let ct = Ciphertext::empty(plain.level())?;
        // SAFETY: live symmetric encryptor, plaintext and destination; global pool.
        check("Encryptor::encrypt_symmetric", unsafe {
            ffi::Encryptor_EncryptSymmetric(
                self.symmetric.ptr(),
                plain.ptr(),
                true,
                ct.ptr(),
                std::ptr::null_mut(),
            )
        })?;
        Ok(SeededCiphertext(ct))
    }

    /// Decrypts and decodes every slot.
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Vec<f64>> {
        let plain = Plaintext::empty()?;
        {
            // A poisoned lock only means another thread panicked mid-call; the decryptor
            // itself holds no partial state, so it stays usable.
            let decryptor = self.decryptor.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: live decryptor (exclusively locked), ciphertext and plaintext.
            check("Decryptor::decrypt", unsafe {
                ffi::Decryptor_Decrypt(decryptor.ptr(), ct.ptr(), plain.ptr())
            })?;
        }
        self.encryptor.encoder().decode_raw(plain.ptr())
    }
}
