//! Raw declarations of the Microsoft SEAL 4.0 C API functions hejob uses.
//!
//! They resolve against the static `sealc`/`seal` libraries that the `sealy` crate builds and
//! links; nothing outside `crate::seal` may call them. Every function returns an HRESULT
//! (`0` = success); see `super::check`.

use std::ffi::{c_char, c_int, c_void};

/// SEAL's HRESULT is a C `long`.
pub type HResult = std::ffi::c_long;

/// `scheme_type::ckks`.
pub const SCHEME_CKKS: u8 = 2;
/// `sec_level_type::tc128`.
pub const SEC_LEVEL_TC128: c_int = 128;
/// `compr_mode_type::zstd`.
pub const COMPR_ZSTD: u8 = 2;
/// SEAL's `compr_mode_type::none`: coefficients serialized as they are.
pub const COMPR_NONE: u8 = 0;

unsafe extern "C" {
    pub fn EncParams_Create1(scheme: u8, enc_params: *mut *mut c_void) -> HResult;
    pub fn EncParams_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn EncParams_SetPolyModulusDegree(thisptr: *mut c_void, degree: u64) -> HResult;
    pub fn EncParams_SetCoeffModulus(
        thisptr: *mut c_void,
        length: u64,
        coeffs: *mut *mut c_void,
    ) -> HResult;
    pub fn EncParams_GetCoeffModulus(
        thisptr: *mut c_void,
        length: *mut u64,
        coeffs: *mut *mut c_void,
    ) -> HResult;
    pub fn EncParams_GetParmsId(thisptr: *mut c_void, parms_id: *mut u64) -> HResult;

    pub fn Modulus_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn Modulus_Value(thisptr: *mut c_void, value: *mut u64) -> HResult;
    pub fn CoeffModulus_Create1(
        poly_modulus_degree: u64,
        length: u64,
        bit_sizes: *mut c_int,
        coeffs: *mut *mut c_void,
    ) -> HResult;
    pub fn CoeffModulus_MaxBitCount(
        poly_modulus_degree: u64,
        sec_level: c_int,
        bit_count: *mut c_int,
    ) -> HResult;

    pub fn SEALContext_Create(
        enc_params: *mut c_void,
        expand_mod_chain: bool,
        sec_level: c_int,
        context: *mut *mut c_void,
    ) -> HResult;
    pub fn SEALContext_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn SEALContext_ParametersSet(thisptr: *mut c_void, params_set: *mut bool) -> HResult;
    pub fn SEALContext_ParameterErrorMessage(
        thisptr: *mut c_void,
        outstr: *mut c_char,
        length: *mut u64,
    ) -> HResult;
    pub fn SEALContext_FirstContextData(thisptr: *mut c_void, data: *mut *mut c_void) -> HResult;
    pub fn SEALContext_GetSecurityLevel(thisptr: *mut c_void, sec_level: *mut i32) -> HResult;
    pub fn ContextData_Parms(thisptr: *mut c_void, parms: *mut *mut c_void) -> HResult;
    pub fn ContextData_NextContextData(thisptr: *mut c_void, next: *mut *mut c_void) -> HResult;
    pub fn ContextData_ChainIndex(thisptr: *mut c_void, index: *mut u64) -> HResult;

    pub fn KeyGenerator_Create1(context: *mut c_void, keygen: *mut *mut c_void) -> HResult;
    pub fn KeyGenerator_Create2(
        context: *mut c_void,
        secret_key: *mut c_void,
        keygen: *mut *mut c_void,
    ) -> HResult;
    pub fn KeyGenerator_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn KeyGenerator_CreatePublicKey(
        thisptr: *mut c_void,
        save_seed: bool,
        public_key: *mut *mut c_void,
    ) -> HResult;
    pub fn KeyGenerator_CreateRelinKeys(
        thisptr: *mut c_void,
        save_seed: bool,
        relin_keys: *mut *mut c_void,
    ) -> HResult;
    pub fn KeyGenerator_CreateGaloisKeysFromSteps(
        thisptr: *mut c_void,
        count: u64,
        steps: *mut c_int,
        save_seed: bool,
        galois_keys: *mut *mut c_void,
    ) -> HResult;
    pub fn KeyGenerator_SecretKey(thisptr: *mut c_void, secret_key: *mut *mut c_void) -> HResult;
    pub fn SecretKey_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn SecretKey_Create1(secret_key: *mut *mut c_void) -> HResult;
    pub fn SecretKey_SaveSize(thisptr: *mut c_void, compr_mode: u8, result: *mut i64) -> HResult;
    pub fn SecretKey_Save(
        thisptr: *mut c_void,
        outptr: *mut u8,
        size: u64,
        compr_mode: u8,
        out_bytes: *mut i64,
    ) -> HResult;
    pub fn SecretKey_Load(
        thisptr: *mut c_void,
        context: *mut c_void,
        inptr: *mut u8,
        size: u64,
        in_bytes: *mut i64,
    ) -> HResult;
    pub fn PublicKey_Create1(public_key: *mut *mut c_void) -> HResult;
    pub fn PublicKey_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn PublicKey_SaveSize(thisptr: *mut c_void, compr_mode: u8, result: *mut i64) -> HResult;
    pub fn PublicKey_Save(
        thisptr: *mut c_void,
        outptr: *mut u8,
        size: u64,
        compr_mode: u8,
        out_bytes: *mut i64,
    ) -> HResult;
    pub fn PublicKey_Load(
        thisptr: *mut c_void,
        context: *mut c_void,
        inptr: *mut u8,
        size: u64,
        in_bytes: *mut i64,
    ) -> HResult;

    pub fn KSwitchKeys_Create1(keys: *mut *mut c_void) -> HResult;
    pub fn KSwitchKeys_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn KSwitchKeys_SaveSize(thisptr: *mut c_void, compr_mode: u8, result: *mut i64) -> HResult;
    pub fn KSwitchKeys_Save(
        thisptr: *mut c_void,
        outptr: *mut u8,
        size: u64,
        compr_mode: u8,
        out_bytes: *mut i64,
    ) -> HResult;
    pub fn KSwitchKeys_Load(
        thisptr: *mut c_void,
        context: *mut c_void,
        inptr: *mut u8,
        size: u64,
        in_bytes: *mut i64,
    ) -> HResult;

    pub fn CKKSEncoder_Create(context: *mut c_void, encoder: *mut *mut c_void) -> HResult;
    pub fn CKKSEncoder_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn CKKSEncoder_Encode1(
        thisptr: *mut c_void,
        value_count: u64,
        values: *mut f64,
        parms_id: *mut u64,
        scale: f64,
        destination: *mut c_void,
        pool: *mut c_void,
    ) -> HResult;
    pub fn CKKSEncoder_Encode3(
        thisptr: *mut c_void,
        value: f64,
        parms_id: *mut u64,
        scale: f64,
        destination: *mut c_void,
        pool: *mut c_void,
    ) -> HResult;
    pub fn CKKSEncoder_Decode1(
        thisptr: *mut c_void,
        plain: *mut c_void,
        value_count: *mut u64,
        values: *mut f64,
        pool: *mut c_void,
    ) -> HResult;

    pub fn Plaintext_Create1(pool: *mut c_void, plaintext: *mut *mut c_void) -> HResult;
    pub fn Plaintext_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn Plaintext_IsZero(thisptr: *mut c_void, is_zero: *mut bool) -> HResult;

    pub fn MemoryPoolHandle_New(clear_on_destruction: bool, handle: *mut *mut c_void) -> HResult;
    pub fn MemoryPoolHandle_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn MemoryPoolHandle_Global(handle: *mut *mut c_void) -> HResult;
    pub fn MemoryPoolHandle_AllocByteCount(thisptr: *mut c_void, count: *mut u64) -> HResult;

    pub fn Ciphertext_Create1(pool: *mut c_void, cipher: *mut *mut c_void) -> HResult;
    pub fn Ciphertext_Set(thisptr: *mut c_void, assign: *mut c_void) -> HResult;
    pub fn Ciphertext_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn Ciphertext_Size(thisptr: *mut c_void, size: *mut u64) -> HResult;
    pub fn Ciphertext_ParmsId(thisptr: *mut c_void, parms_id: *mut u64) -> HResult;
    pub fn Ciphertext_PolyModulusDegree(thisptr: *mut c_void, degree: *mut u64) -> HResult;
    pub fn Ciphertext_CoeffModulusSize(thisptr: *mut c_void, size: *mut u64) -> HResult;
    pub fn Ciphertext_GetDataAt1(thisptr: *mut c_void, index: u64, data: *mut u64) -> HResult;
    pub fn Ciphertext_Scale(thisptr: *mut c_void, scale: *mut f64) -> HResult;
    pub fn Ciphertext_SetScale(thisptr: *mut c_void, scale: f64) -> HResult;
    pub fn Ciphertext_SaveSize(thisptr: *mut c_void, compr_mode: u8, result: *mut i64) -> HResult;
    pub fn Ciphertext_Save(
        thisptr: *mut c_void,
        outptr: *mut u8,
        size: u64,
        compr_mode: u8,
        out_bytes: *mut i64,
    ) -> HResult;
    pub fn Ciphertext_Load(
        thisptr: *mut c_void,
        context: *mut c_void,
        inptr: *mut u8,
        size: u64,
        in_bytes: *mut i64,
    ) -> HResult;

    pub fn Encryptor_Create(
        context: *mut c_void,
        public_key: *mut c_void,
        secret_key: *mut c_void,
        encryptor: *mut *mut c_void,
    ) -> HResult;
    pub fn Encryptor_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn Encryptor_EncryptSymmetric(
        thisptr: *mut c_void,
        plaintext: *mut c_void,
        save_seed: bool,
        destination: *mut c_void,
        pool: *mut c_void,
    ) -> HResult;
    pub fn Encryptor_Encrypt(
        thisptr: *mut c_void,
        plaintext: *mut c_void,
        destination: *mut c_void,
        pool: *mut c_void,
    ) -> HResult;

    pub fn Decryptor_Create(
        context: *mut c_void,
        secret_key: *mut c_void,
        decryptor: *mut *mut c_void,
    ) -> HResult;
    pub fn Decryptor_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn Decryptor_Decrypt(
        thisptr: *mut c_void,
        encrypted: *mut c_void,
        destination: *mut c_void,
    ) -> HResult;

    pub fn Evaluator_Create(context: *mut c_void, evaluator: *mut *mut c_void) -> HResult;
    pub fn Evaluator_Destroy(thisptr: *mut c_void) -> HResult;
    pub fn Evaluator_Add(
        thisptr: *mut c_void,
        a: *mut c_void,
        b: *mut c_void,
        destination: *mut c_void,
    ) -> HResult;
    pub fn Evaluator_Sub(
        thisptr: *mut c_void,
        a: *mut c_void,
        b: *mut c_void,
        destination: *mut c_void,
    ) -> HResult;
    pub fn Evaluator_AddPlain(
        thisptr: *mut c_void,
        encrypted: *mut c_void,
        plain: *mut c_void,
        destination: *mut c_void,
    ) -> HResult;
    pub fn Evaluator_Multiply(
        thisptr: *mut c_void,
        a: *mut c_void,
        b: *mut c_void,
        destination: *mut c_void,
        pool: *mut c_void,
    ) -> HResult;
    pub fn Evaluator_MultiplyPlain(
        thisptr: *mut c_void,
        encrypted: *mut c_void,
        plain: *mut c_void,
        destination: *mut c_void,
        pool: *mut c_void,
    ) -> HResult;
    pub fn Evaluator_Square(
        thisptr: *mut c_void,
        encrypted: *mut c_void,
        destination: *mut c_void,
        pool: *mut c_void,
    ) -> HResult;
    pub fn Evaluator_Relinearize(
        thisptr: *mut c_void,
        encrypted: *mut c_void,
        relin_keys: *mut c_void,
        destination: *mut c_void,
        pool: *mut c_void,
    ) -> HResult;
    pub fn Evaluator_RescaleToNext(
        thisptr: *mut c_void,
        encrypted: *mut c_void,
        destination: *mut c_void,
        pool: *mut c_void,
    ) -> HResult;
    pub fn Evaluator_ModSwitchTo1(
        thisptr: *mut c_void,
        encrypted: *mut c_void,
        parms_id: *mut u64,
        destination: *mut c_void,
        pool: *mut c_void,
    ) -> HResult;
    pub fn Evaluator_RotateVector(
        thisptr: *mut c_void,
        encrypted: *mut c_void,
        steps: c_int,
        galois_keys: *mut c_void,
        destination: *mut c_void,
        pool: *mut c_void,
    ) -> HResult;
}

// glibc's allocator, which SEAL's memory pools and hejob's coefficient arrays allocate from.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    pub fn mallopt(param: c_int, value: c_int) -> c_int;
}

/// glibc's `M_MMAP_THRESHOLD` parameter of `mallopt`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub const M_MMAP_THRESHOLD: c_int = -3;
