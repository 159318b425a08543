//! Ciphertexts as coefficient arrays, and the fused scalar linear combination `Σ w_t · a_t`
//! computed over them in Rust: one pass over the terms' coefficients instead of a SEAL
//! product, a temporary ciphertext and a SEAL sum per term. The result is bit for bit the
//! ciphertext that SEAL's `multiply_plain` by each scalar plaintext and `add` would give.
//!
//! CKKS encodes a scalar `w` at scale Δ as the constant polynomial `round(w·Δ)`, whose NTT form
//! is that constant in every coefficient; a product by it multiplies every coefficient of the
//! ciphertext, prime by prime. Summing those products exactly in 128-bit integers and reducing
//! once per coefficient gives the same residues as SEAL's product-then-sum.

use super::ciphertext::Ciphertext;
use super::context::Context;
use super::evaluator::{same_level, same_scale, Evaluator};
use super::ffi;
use super::{check, Result, SealError};

/// One ciphertext's coefficients in RNS and NTT form (polynomial, then prime, then coefficient),
/// with what it takes to make a SEAL ciphertext of the same shape again.
#[derive(PartialEq)]
pub struct RawCiphertext {
    level: usize,
    scale: f64,
    polys: usize,
    degree: usize,
    /// SEAL's uncompressed serialization up to the coefficients (header and metadata).
    prefix: Vec<u8>,
    data: Vec<u64>,
}

/// Largest magnitude of an encoded weight, `round(w·Δ)`: keeps every sum of products below
/// 2^128 (checked again per call against the actual weights).
const WEIGHT_BITS: u32 = 62;

/// Coefficients per block of accumulators (16 bytes each: the block stays in L1 cache).
const BLOCK: usize = 512;

impl RawCiphertext {
    /// Its level.
    pub fn level(&self) -> usize {
        self.level
    }

    /// Its scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// A SEAL ciphertext of this one's shape and level holding `data` at `scale`, validated by
    /// SEAL against `context`.
    fn with_data(&self, context: &Context, data: &[u64], scale: f64) -> Result<Ciphertext> {
        let mut bytes = Vec::with_capacity(self.prefix.len() + data.len() * 8);
        bytes.extend_from_slice(&self.prefix);
        for word in data {
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
        let mut ct = Ciphertext::from_bytes(context, &bytes)?;
        ct.set_scale(scale)?;
        Ok(ct)
    }
}

impl Ciphertext {
    /// Its coefficients, copied out of SEAL.
    pub fn to_raw(&self) -> Result<RawCiphertext> {
        const OP: &str = "Ciphertext::to_raw";
        let (mut degree, mut primes) = (0u64, 0u64);
        // SAFETY: live ciphertext, out-parameters.
        check(OP, unsafe {
            ffi::Ciphertext_PolyModulusDegree(self.ptr(), &mut degree)
        })?;
        // SAFETY: as above.
        check(OP, unsafe {
            ffi::Ciphertext_CoeffModulusSize(self.ptr(), &mut primes)
        })?;
        let polys = self.size()? as usize;
        let words = polys * (degree * primes) as usize;
        let layout = |reason: String| SealError::Malformed {
            what: "uncompressed ciphertext",
            reason,
        };
        if words == 0 {
            return Err(layout("the ciphertext is empty".into()));
        }
        let bytes = self.to_bytes_uncompressed()?;
        let start = bytes.len().checked_sub(words * 8).ok_or_else(|| {
            layout(format!(
                "{} bytes cannot hold {words} coefficients",
                bytes.len()
            ))
        })?;
        let data: Vec<u64> = bytes[start..]
            .chunks_exact(8)
            .map(|c| {
                let mut word = [0u8; 8];
                word.copy_from_slice(c);
                u64::from_ne_bytes(word)
            })
            .collect();
        // SEAL's own accessor must agree on where the coefficients are
        for index in [0, words / 2, words - 1] {
            let mut value = 0u64;
            // SAFETY: live ciphertext, index below its coefficient count, out-parameter.
            check(OP, unsafe {
                ffi::Ciphertext_GetDataAt1(self.ptr(), index as u64, &mut value)
            })?;
            if value != data[index] {
                return Err(layout(format!(
                    "coefficient {index} is not where SEAL's serialization was expected to put it"
                )));
            }
        }
        Ok(RawCiphertext {
            level: self.level(),
            scale: self.scale(),
            polys,
            degree: degree as usize,
            prefix: bytes[..start].to_vec(),
            data,
        })
    }
}

impl Evaluator {
    /// `Σ_t w_t · a_t` over `terms`, each weight encoded as SEAL encodes a scalar at `scale`
    /// (`round(w·scale)` in every slot), so the result carries the terms' scale × `scale`.
    /// A weight that encodes to zero contributes nothing and is left out. `None` when no term
    /// is left. The terms must share level and scale.
    pub fn dot_scalars(
        &self,
        terms: &[(&RawCiphertext, f64)],
        scale: f64,
    ) -> Result<Option<Ciphertext>> {
        const OP: &str = "Evaluator::dot_scalars";
        let Some(&(first, _)) = terms.first() else {
            return Ok(None);
        };
        let mut ints = Vec::with_capacity(terms.len());
        for (index, &(a, w)) in terms.iter().enumerate() {
            if !w.is_finite() {
                return Err(SealError::NonFinite {
                    op: OP,
                    index,
                    value: w,
                });
            }
            same_level(OP, first.level, a.level)?;
            same_scale(OP, first.scale, a.scale)?;
            if a.data.len() != first.data.len() {
                return Err(SealError::Malformed {
                    what: "ciphertext",
                    reason: format!(
                        "term {index} has {} polynomials, the first term {}",
                        a.polys, first.polys
                    ),
                });
            }
            let v = (w * scale).round();
            if v.abs() >= 2f64.powi(WEIGHT_BITS as i32) {
                return Err(SealError::WeightTooLarge {
                    op: OP,
                    value: w,
                    scale_bits: scale.log2(),
                    bits: WEIGHT_BITS,
                });
            }
            if v == 0.0 {
                continue;
            }
            ints.push((a, v as i64));
        }
        if ints.is_empty() {
            return Ok(None);
        }
        let context = self.context();
        let primes = (0..=first.level)
            .map(|l| context.prime(l))
            .collect::<Result<Vec<u64>>>()?;
        if first.polys * primes.len() * first.degree != first.data.len() {
            return Err(SealError::Malformed {
                what: "ciphertext",
                reason: format!(
                    "{} coefficients where level {} has {} primes of degree {}",
                    first.data.len(),
                    first.level,
                    primes.len(),
                    first.degree
                ),
            });
        }
        let out_scale = first.scale * scale;
        let modulus_bits: f64 = primes.iter().map(|&q| (q as f64).log2()).sum();
        if out_scale.log2() >= modulus_bits {
            return Err(SealError::ScaleOutOfBounds {
                op: OP,
                scale_bits: out_scale.log2(),
                modulus_bits,
            });
        }
        // every partial sum stays in [0, 2·Σ|W|·q) when it starts at Σ|W|·q (a multiple of q)
        let total: u128 = ints.iter().map(|(_, w)| w.unsigned_abs() as u128).sum();
        let q_max = primes.iter().copied().max().unwrap_or(0) as u128;
        if total
            .checked_mul(2 * q_max)
            .is_none_or(|bound| bound >= u128::MAX / 2)
        {
            return Err(SealError::WeightTooLarge {
                op: OP,
                value: ints
                    .iter()
                    .map(|(_, w)| w.unsigned_abs())
                    .max()
                    .unwrap_or(0) as f64
                    / scale,
                scale_bits: scale.log2(),
                bits: WEIGHT_BITS,
            });
        }
        let degree = first.degree;
        let mut out = vec![0u64; first.data.len()];
        let mut acc = [0u128; BLOCK];
        for (row, out_row) in out.chunks_exact_mut(degree).enumerate() {
            let q = primes[row % primes.len()] as u128;
            for start in (0..degree).step_by(BLOCK) {
                let len = BLOCK.min(degree - start);
                let acc = &mut acc[..len];
                acc.fill(total * q);
                for &(a, w) in &ints {
                    let x = &a.data[row * degree + start..][..len];
                    let m = w.unsigned_abs() as u128;
                    if w > 0 {
                        for (s, &x) in acc.iter_mut().zip(x) {
                            *s += x as u128 * m;
                        }
                    } else {
                        for (s, &x) in acc.iter_mut().zip(x) {
                            *s -= x as u128 * m;
                        }
                    }
                }
                for (o, s) in out_row[start..start + len].iter_mut().zip(acc.iter()) {
                    *o = (*s % q) as u64;
                }
            }
        }
        first.with_data(context, &out, out_scale).map(Some)
    }
}
