//! CKKS parameters, SEAL's 128-bit security check, and the modulus chain (levels) they give.

use std::ffi::{c_char, c_int};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ffi;
use super::handle::Handle;
use super::{check, Result, SealError};

/// The CKKS parameters of one computation.
///
/// `coeff_modulus_bits` lists the prime sizes from the first (level-0) prime to the last, the
/// special key-switching prime: `[60, 40, 40, 60]` gives levels 0..=1 of data primes. The
/// default `scale` is `2^scale_bits`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CkksParams {
    pub poly_modulus_degree: u64,
    pub coeff_modulus_bits: Vec<i32>,
    pub scale_bits: u32,
}

impl CkksParams {
    /// The nominal scale `2^scale_bits`.
    pub fn scale(&self) -> f64 {
        2f64.powi(self.scale_bits as i32)
    }

    /// The |value| below which every slot of a ciphertext at level 0 decrypts correctly, all
    /// at once: 2^(first prime − scale − 1). Decryption is exact while the plaintext's
    /// coefficients, whose size is at most the mean |slot| times the scale, stay inside the
    /// first prime; so one larger value among small ones can still decrypt (CIFAR-10 test image
    /// 7835, batch-axis: a plain logit of 3.3e6 against this bound of 16384).
    pub fn logit_range(&self) -> f64 {
        let first = self.coeff_modulus_bits.first().copied().unwrap_or(0);
        2f64.powi(first - self.scale_bits as i32 - 1)
    }

    /// Total bits of the coefficient modulus, special prime included.
    pub fn total_bits(&self) -> i32 {
        self.coeff_modulus_bits.iter().sum()
    }

    /// The largest total modulus SEAL allows for degree `n` at 128-bit security.
    pub fn max_bits_128(n: u64) -> Result<i32> {
        let mut bits: c_int = 0;
        // SAFETY: plain out-parameter call.
        check("CoeffModulus::MaxBitCount", unsafe {
            ffi::CoeffModulus_MaxBitCount(n, ffi::SEC_LEVEL_TC128, &mut bits)
        })?;
        Ok(bits)
    }
}

/// One level of the modulus chain: SEAL's `parms_id` and the prime a rescale at it divides by.
#[derive(Clone, Copy, Debug)]
struct Level {
    parms_id: [u64; 4],
    prime: u64,
}

/// A SEAL context at 128-bit security, with its levels indexed from 0 (one data prime left)
/// up to [`Context::top_level`] (all data primes; where fresh ciphertexts live).
pub struct Context {
    handle: Handle,
    params: CkksParams,
    levels: Vec<Level>,
    slots: usize,
}

impl Context {
    /// Builds the context with SEAL's 128-bit security check on. A parameter set SEAL rejects
    /// (insecure, or malformed) is [`SealError::Parameters`] carrying SEAL's own message.
    pub fn new(params: &CkksParams) -> Result<Arc<Self>> {
        super::alloc::configure();
        let reject = |message: String| SealError::Parameters {
            degree: params.poly_modulus_degree,
            bits: params.coeff_modulus_bits.clone(),
            message,
        };
        if params.coeff_modulus_bits.len() < 2 {
            return Err(reject(
                "need at least one data prime and the special key-switching prime".into(),
            ));
        }
        // SAFETY: out-pointer constructor.
        let enc = Handle::create(
            "EncryptionParameters::new",
            ffi::EncParams_Destroy,
            |p| unsafe { ffi::EncParams_Create1(ffi::SCHEME_CKKS, p) },
        )?;
        // SAFETY: `enc` is a live EncryptionParameters object.
        check("EncryptionParameters::set_poly_modulus_degree", unsafe {
            ffi::EncParams_SetPolyModulusDegree(enc.ptr(), params.poly_modulus_degree)
        })
        .map_err(|e| reject(e.to_string()))?;
        let mut bits: Vec<c_int> = params.coeff_modulus_bits.clone();
        let mut moduli = vec![std::ptr::null_mut(); bits.len()];
        // SAFETY: `bits` and `moduli` have the declared length; SEAL fills `moduli` with newly
        // allocated Modulus objects that we destroy below.
        let created = check("CoeffModulus::Create", unsafe {
            ffi::CoeffModulus_Create1(
                params.poly_modulus_degree,
                bits.len() as u64,
                bits.as_mut_ptr(),
                moduli.as_mut_ptr(),
            )
        });
        let set = created.and_then(|()| {
            // SAFETY: `moduli` holds `bits.len()` valid Modulus pointers.
            check("EncryptionParameters::set_coeff_modulus", unsafe {
                ffi::EncParams_SetCoeffModulus(enc.ptr(), moduli.len() as u64, moduli.as_mut_ptr())
            })
        });
        destroy_moduli(&moduli);
        set.map_err(|_| {
            reject(format!(
                "SEAL cannot make primes of these sizes for N={} (each must be at most 60 bits, and there must be enough primes of each size)",
                params.poly_modulus_degree
            ))
        })?;
        // SAFETY: `enc` is fully set; SEAL copies it into the new context.
        let handle = Handle::create("SEALContext::new", ffi::SEALContext_Destroy, |p| unsafe {
            ffi::SEALContext_Create(enc.ptr(), true, ffi::SEC_LEVEL_TC128, p)
        })?;
        let mut ok = false;
        // SAFETY: live context, out-parameter.
        check("SEALContext::parameters_set", unsafe {
            ffi::SEALContext_ParametersSet(handle.ptr(), &mut ok)
        })?;
        if !ok {
            let mut message = parameter_error_message(&handle)?;
            if let Ok(max) = CkksParams::max_bits_128(params.poly_modulus_degree) {
                if params.total_bits() > max {
                    message += &format!(
                        " (the moduli total {} bits; N={} allows at most {max} at 128-bit security)",
                        params.total_bits(),
                        params.poly_modulus_degree
                    );
                }
            }
            return Err(reject(message));
        }
        let levels = read_levels(&handle)?;
        Ok(Arc::new(Self {
            handle,
            params: params.clone(),
            levels,
            slots: (params.poly_modulus_degree / 2) as usize,
        }))
    }

    /// The parameters this context was built from.
    pub fn params(&self) -> &CkksParams {
        &self.params
    }

    /// Number of CKKS slots, N/2.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The level of fresh ciphertexts: the number of rescales available.
    pub fn top_level(&self) -> usize {
        self.levels.len() - 1
    }

    /// The security level SEAL enforces for this context, in bits.
    pub fn security_bits(&self) -> Result<i32> {
        let mut level = 0i32;
        // SAFETY: live context, out-parameter.
        check("SEALContext::sec_level", unsafe {
            ffi::SEALContext_GetSecurityLevel(self.handle.ptr(), &mut level)
        })?;
        Ok(level)
    }

    /// The prime that a rescale at `level` divides by.
    pub fn prime(&self, level: usize) -> Result<u64> {
        Ok(self.level(level, "Context::prime")?.prime)
    }

    pub(crate) fn ptr(&self) -> *mut std::ffi::c_void {
        self.handle.ptr()
    }

    /// SEAL's `parms_id` for `level` (a copy, since SEAL's C API takes it by mutable pointer).
    pub(crate) fn parms_id(&self, level: usize, op: &'static str) -> Result<[u64; 4]> {
        Ok(self.level(level, op)?.parms_id)
    }

    /// The level whose `parms_id` this is, if it belongs to this context's data levels.
    pub(crate) fn level_of(&self, parms_id: &[u64; 4]) -> Option<usize> {
        self.levels.iter().position(|l| &l.parms_id == parms_id)
    }

    fn level(&self, level: usize, op: &'static str) -> Result<&Level> {
        self.levels.get(level).ok_or(SealError::NoSuchLevel {
            op,
            level,
            top: self.top_level(),
        })
    }
}

fn destroy_moduli(moduli: &[*mut std::ffi::c_void]) {
    for &m in moduli.iter().filter(|m| !m.is_null()) {
        // SAFETY: each pointer was allocated by SEAL for us and is destroyed once.
        unsafe { ffi::Modulus_Destroy(m) };
    }
}

fn parameter_error_message(ctx: &Handle) -> Result<String> {
    let mut len = 0u64;
    // SAFETY: first call asks for the length only (null buffer).
    check("SEALContext::parameter_error_message", unsafe {
        ffi::SEALContext_ParameterErrorMessage(ctx.ptr(), std::ptr::null_mut(), &mut len)
    })?;
    let mut buf = vec![0u8; len as usize + 1];
    // SAFETY: `buf` holds `len` bytes plus a terminator.
    check("SEALContext::parameter_error_message", unsafe {
        ffi::SEALContext_ParameterErrorMessage(ctx.ptr(), buf.as_mut_ptr() as *mut c_char, &mut len)
    })?;
    buf.truncate(len as usize);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Walks the chain from the first data level down, recording each `parms_id` by chain index
/// and each level's last prime.
fn read_levels(ctx: &Handle) -> Result<Vec<Level>> {
    let mut data = std::ptr::null_mut();
    // SAFETY: live context; the returned pointer is borrowed, not owned.
    check("SEALContext::first_context_data", unsafe {
        ffi::SEALContext_FirstContextData(ctx.ptr(), &mut data)
    })?;
    let mut levels = Vec::new();
    while !data.is_null() {
        let mut index = 0u64;
        // SAFETY: `data` is a borrowed ContextData that lives as long as the context.
        check("ContextData::chain_index", unsafe {
            ffi::ContextData_ChainIndex(data, &mut index)
        })?;
        // SAFETY: ContextData_Parms allocates a copy that the handle destroys.
        let parms = Handle::create("ContextData::parms", ffi::EncParams_Destroy, |p| unsafe {
            ffi::ContextData_Parms(data, p)
        })?;
        let mut parms_id = [0u64; 4];
        // SAFETY: live parameters, 4-word out buffer.
        check("EncryptionParameters::parms_id", unsafe {
            ffi::EncParams_GetParmsId(parms.ptr(), parms_id.as_mut_ptr())
        })?;
        let primes = coeff_modulus(&parms)?;
        let prime = *primes.last().ok_or(SealError::Malformed {
            what: "SEAL context",
            reason: "a level without primes".into(),
        })?;
        levels.push((index as usize, Level { parms_id, prime }));
        let mut next = std::ptr::null_mut();
        // SAFETY: borrowed pointer, null at the end of the chain.
        check("ContextData::next_context_data", unsafe {
            ffi::ContextData_NextContextData(data, &mut next)
        })?;
        data = next;
    }
    levels.sort_by_key(|(i, _)| *i);
    Ok(levels.into_iter().map(|(_, l)| l).collect())
}

fn coeff_modulus(parms: &Handle) -> Result<Vec<u64>> {
    let mut len = 0u64;
    // SAFETY: a null array asks for the length only.
    check("EncryptionParameters::coeff_modulus", unsafe {
        ffi::EncParams_GetCoeffModulus(parms.ptr(), &mut len, std::ptr::null_mut())
    })?;
    let mut moduli = vec![std::ptr::null_mut(); len as usize];
    // SAFETY: `moduli` has `len` slots that SEAL fills with new Modulus objects.
    check("EncryptionParameters::coeff_modulus", unsafe {
        ffi::EncParams_GetCoeffModulus(parms.ptr(), &mut len, moduli.as_mut_ptr())
    })?;
    let values = moduli
        .iter()
        .map(|&m| {
            let mut v = 0u64;
            // SAFETY: `m` is a live Modulus.
            check("Modulus::value", unsafe { ffi::Modulus_Value(m, &mut v) }).map(|()| v)
        })
        .collect();
    destroy_moduli(&moduli);
    values
}
