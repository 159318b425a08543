//! The CKKS engine against plain f64 arithmetic, on real SEAL ciphertexts at 128-bit security.

use std::sync::Arc;

use hejob::seal::{
    Ciphertext, CkksParams, Client, Context, Encryptor, EvaluationKeys, Evaluator, PublicKey,
    SealError,
};

/// Decrypted values must match the f64 computation to this absolute error (scale 2^40, values
/// of order 1; CKKS noise is ~1e-7 here, so this leaves a wide margin without hiding bugs).
const TOL: f64 = 1e-4;

fn params(n: u64, bits: &[i32], scale_bits: u32) -> CkksParams {
    CkksParams {
        poly_modulus_degree: n,
        coeff_modulus_bits: bits.to_vec(),
        scale_bits,
    }
}

struct Setup {
    ctx: Arc<Context>,
    client: Client,
    ev: Evaluator,
}

fn setup(p: &CkksParams, steps: &[i64]) -> Setup {
    let ctx = Context::new(p).expect("secure parameters");
    let client = Client::new(ctx.clone()).unwrap();
    let keys = client.evaluation_keys(steps, true).unwrap();
    let ev = Evaluator::new(ctx.clone(), keys).unwrap();
    Setup { ctx, client, ev }
}

fn small() -> Setup {
    setup(&params(8192, &[60, 40, 40, 60], 40), &[1, -1, 5, -17, 100])
}

fn input(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| ((i as u64 * 2654435761 + seed * 97) % 2000) as f64 / 1000.0 - 1.0)
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "slot {i}: got {g}, want {w} (tol {tol})"
        );
    }
}

#[test]
fn context_reports_levels_slots_and_security() {
    let s = small();
    assert_eq!(s.ctx.slots(), 4096);
    assert_eq!(s.ctx.top_level(), 2);
    assert_eq!(s.ctx.security_bits().unwrap(), 128);
    let p = s.ctx.prime(2).unwrap();
    assert!((p as f64).log2() > 39.9 && (p as f64).log2() < 40.1);
    assert!(matches!(s.ctx.prime(3), Err(SealError::NoSuchLevel { .. })));
}

#[test]
fn insecure_parameters_are_rejected_with_seals_message() {
    // 180 bits of modulus at N = 4096 exceeds the 109 bits that 128-bit security allows.
    let err = Context::new(&params(4096, &[60, 60, 60], 40))
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(matches!(err, SealError::Parameters { .. }), "{msg}");
    assert!(
        msg.contains("HomomorphicEncryption.org security standard") && msg.contains("at most 109"),
        "SEAL's own message is shown: {msg}"
    );
    assert!(CkksParams::max_bits_128(4096).unwrap() == 109);
    let bad = Context::new(&params(8192, &[61, 40, 60], 40))
        .err()
        .unwrap();
    assert!(bad.to_string().contains("at most 60 bits"), "{bad}");
}

#[test]
fn add_sub_and_plain_add_match_f64() {
    let s = small();
    let ops = &s.ev;
    let (a, b) = (input(4096, 1), input(4096, 2));
    let scale = s.ctx.params().scale();
    let ca = s.client.encrypt(&a, 2, scale).unwrap();
    let cb = s.client.encrypt(&b, 2, scale).unwrap();
    let sum = ops.add(&ca, &cb).unwrap();
    let diff = ops.sub(&ca, &cb).unwrap();
    let pb = ops.encode(&b, 2, scale).unwrap();
    let mut plus_plain = ops.add_plain(&ca, &pb).unwrap();
    ops.add_assign(&mut plus_plain, &cb).unwrap();
    let want_sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let want_diff: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    let want_3: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + 2.0 * y).collect();
    assert_close(&s.client.decrypt(&sum).unwrap(), &want_sum, TOL);
    assert_close(&s.client.decrypt(&diff).unwrap(), &want_diff, TOL);
    assert_close(&s.client.decrypt(&plus_plain).unwrap(), &want_3, TOL);
}

#[test]
fn plain_and_cipher_products_with_rescale_match_f64() {
    let s = small();
    let ops = &s.ev;
    let (a, w) = (input(4096, 3), input(4096, 4));
    let scale = s.ctx.params().scale();
    let ca = s.client.encrypt(&a, 2, scale).unwrap();
    let pw = ops.encode(&w, 2, scale).unwrap();
    let mut prod = ops
        .multiply_plain(&ca, &pw)
        .unwrap()
        .expect("non-zero weights");
    ops.rescale(&mut prod).unwrap();
    assert_eq!(prod.level(), 1);
    let want: Vec<f64> = a.iter().zip(&w).map(|(x, y)| x * y).collect();
    assert_close(&s.client.decrypt(&prod).unwrap(), &want, TOL);

    // scalar product, encoded at the operand's (lower) level
    let mut half = ops
        .multiply_plain(&prod, &ops.encode_scalar(0.5, 1, scale).unwrap())
        .unwrap()
        .unwrap();
    ops.rescale(&mut half).unwrap();
    let want_half: Vec<f64> = want.iter().map(|x| x * 0.5).collect();
    assert_close(&s.client.decrypt(&half).unwrap(), &want_half, TOL);

    // ciphertext × ciphertext, relinearized
    let cw = s.client.encrypt(&w, 2, scale).unwrap();
    let mut cc = ops.multiply(&ca, &cw).unwrap();
    assert_eq!(cc.size().unwrap(), 3);
    ops.relinearize(&mut cc).unwrap();
    assert_eq!(cc.size().unwrap(), 2);
    ops.rescale(&mut cc).unwrap();
    assert_close(&s.client.decrypt(&cc).unwrap(), &want, TOL);
}

#[test]
fn zero_plaintext_products_are_skipped() {
    let s = small();
    let ops = &s.ev;
    let scale = s.ctx.params().scale();
    let ca = s.client.encrypt(&input(16, 5), 2, scale).unwrap();
    let zero = ops.encode(&[0.0; 16], 2, scale).unwrap();
    assert!(zero.is_zero());
    assert!(ops.multiply_plain(&ca, &zero).unwrap().is_none());
    // a weight so small that its encoding rounds to all-zero coefficients is zero too
    let tiny = ops.encode_scalar(1e-20, 2, scale).unwrap();
    assert!(tiny.is_zero());
    assert!(ops.multiply_plain(&ca, &tiny).unwrap().is_none());
    let small_weight = ops.encode_scalar(1e-7, 2, scale).unwrap();
    assert!(!small_weight.is_zero());
    assert!(ops.multiply_plain(&ca, &small_weight).unwrap().is_some());
}

#[test]
fn rotations_by_positive_and_negative_steps() {
    let s = small();
    let ops = &s.ev;
    let slots = s.ctx.slots();
    let a = input(slots, 6);
    let ca = s.client.encrypt(&a, 2, s.ctx.params().scale()).unwrap();
    for step in [1i64, -1, 5, -17, 100, 100 - slots as i64, slots as i64 + 1] {
        let got = s.client.decrypt(&ops.rotate(&ca, step).unwrap()).unwrap();
        let want: Vec<f64> = (0..slots)
            .map(|i| a[(i as i64 + step).rem_euclid(slots as i64) as usize])
            .collect();
        assert_close(&got, &want, TOL);
    }
    // a full turn is a copy
    let same = ops.rotate(&ca, slots as i64).unwrap();
    assert_close(&s.client.decrypt(&same).unwrap(), &a, TOL);
    let err = ops.rotate(&ca, 2).err().unwrap();
    assert!(
        matches!(err, SealError::MissingGaloisKey { step: 2, .. }),
        "{err}"
    );
}

#[test]
fn depth_four_chain_of_square_and_rescale() {
    let s = setup(&params(16384, &[60, 40, 40, 40, 40, 60], 40), &[]);
    let ops = &s.ev;
    let a: Vec<f64> = input(1024, 7).iter().map(|x| 0.75 + 0.25 * x).collect();
    let mut ct = s.client.encrypt(&a, 4, s.ctx.params().scale()).unwrap();
    for _ in 0..4 {
        ct = ops.square(&ct).unwrap();
        ops.relinearize(&mut ct).unwrap();
        ops.rescale(&mut ct).unwrap();
    }
    assert_eq!(ct.level(), 0);
    let want: Vec<f64> = a.iter().map(|x| x.powi(16)).collect();
    assert_close(&s.client.decrypt(&ct).unwrap()[..1024], &want, TOL);
    assert!(matches!(
        ops.rescale(&mut ct),
        Err(SealError::EndOfChain { .. })
    ));
}

#[test]
fn operands_of_different_levels_are_combined_after_mod_switch_and_scale_snap() {
    let s = small();
    let ops = &s.ev;
    let scale = s.ctx.params().scale();
    let (a, b) = (input(64, 8), input(64, 9));
    let ca = s.client.encrypt(&a, 2, scale).unwrap();
    let cb = s.client.encrypt(&b, 2, scale).unwrap();
    let mut sq = ops.square(&ca).unwrap();
    ops.relinearize(&mut sq).unwrap();
    ops.rescale(&mut sq).unwrap(); // level 1, scale 2^80 / q2 ≈ 2^40
    let err = ops.add(&sq, &cb).err().unwrap();
    assert!(
        matches!(err, SealError::LevelMismatch { a: 1, b: 2, .. }),
        "{err}"
    );
    let mut low = cb.try_clone().unwrap();
    ops.mod_switch_to(&mut low, 1).unwrap();
    let err = ops.add(&sq, &low).err().unwrap();
    assert!(matches!(err, SealError::ScaleMismatch { .. }), "{err}");
    sq.set_scale(scale).unwrap();
    let sum = ops.add(&sq, &low).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * x + y).collect();
    assert_close(&s.client.decrypt(&sum).unwrap()[..64], &want, TOL);
    assert!(matches!(
        ops.mod_switch_to(&mut low, 2),
        Err(SealError::LevelUp { .. })
    ));
}

#[test]
fn fused_scalar_sum_is_bit_for_bit_the_seal_products_and_sums() {
    let s = small();
    let scale = s.ctx.params().scale();
    // positive, negative, zero, rounding-to-zero, small and large weights
    let weights = [0.75, -1.5, 0.0, 1e-20, -0.003, 2.25, -0.0625];
    let xs: Vec<Vec<f64>> = (0..weights.len())
        .map(|t| input(4096, 20 + t as u64))
        .collect();
    for level in [2, 1] {
        let (ops, fused_ops) = (&s.ev, &s.ev);
        let cts: Vec<Ciphertext> = xs
            .iter()
            .map(|x| {
                let mut ct = s.client.encrypt(x, 2, scale).unwrap();
                ops.mod_switch_to(&mut ct, level).unwrap();
                ct
            })
            .collect();
        // SEAL: one scalar plaintext, one product and one sum per term
        let mut want: Option<Ciphertext> = None;
        for (ct, &w) in cts.iter().zip(&weights) {
            let p = ops.encode_scalar(w, level, scale).unwrap();
            if let Some(prod) = ops.multiply_plain(ct, &p).unwrap() {
                match &mut want {
                    Some(acc) => ops.add_assign(acc, &prod).unwrap(),
                    None => want = Some(prod),
                }
            }
        }
        let want = want.unwrap();
        // fused, over the coefficient arrays
        let raws: Vec<_> = cts.iter().map(|c| c.to_raw().unwrap()).collect();
        let terms: Vec<_> = raws.iter().zip(weights).collect();
        let got = fused_ops.dot_scalars(&terms, scale).unwrap().unwrap();
        assert_eq!(got.level(), level);
        assert_eq!(got.scale(), want.scale());
        assert!(
            got.to_raw().unwrap() == want.to_raw().unwrap(),
            "level {level}: the fused sum differs from SEAL's products and sums"
        );
        // and it decrypts, rescaled, to the weighted sum
        let mut got = got;
        fused_ops.rescale(&mut got).unwrap();
        let sum: Vec<f64> = (0..4096)
            .map(|i| xs.iter().zip(weights).map(|(x, w)| w * x[i]).sum())
            .collect();
        assert_close(&s.client.decrypt(&got).unwrap(), &sum, TOL);
    }
}

#[test]
fn fused_scalar_sum_refuses_mixed_operands_and_bad_weights() {
    let s = small();
    let ops = &s.ev;
    let scale = s.ctx.params().scale();
    let top = s.client.encrypt(&input(8, 1), 2, scale).unwrap();
    let mut low = top.try_clone().unwrap();
    ops.mod_switch_to(&mut low, 1).unwrap();
    let (top, low) = (top.to_raw().unwrap(), low.to_raw().unwrap());
    let err = ops
        .dot_scalars(&[(&top, 1.0), (&low, 1.0)], scale)
        .err()
        .unwrap();
    assert!(matches!(err, SealError::LevelMismatch { .. }), "{err}");
    let err = ops.dot_scalars(&[(&top, f64::NAN)], scale).err().unwrap();
    assert!(
        matches!(err, SealError::NonFinite { index: 0, .. }),
        "{err}"
    );
    let err = ops.dot_scalars(&[(&top, 1e9)], scale).err().unwrap();
    assert!(matches!(err, SealError::WeightTooLarge { .. }), "{err}");
    assert!(ops.dot_scalars(&[], scale).unwrap().is_none());
    assert!(ops.dot_scalars(&[(&top, 0.0)], scale).unwrap().is_none());
}

#[test]
fn keys_and_ciphertexts_round_trip_through_bytes() {
    let s = small();
    let keys = s.client.evaluation_keys(&[3, -3], true).unwrap();
    let bytes = keys.to_bytes().unwrap();
    // uncompressed: 3 keys (relinearization, steps 3 and -3), each 3 decomposition parts of
    // 2 polynomials over 4 primes of 8192 coefficients, plus headers (SEAL writes one for every
    // Galois element slot, empty or not: about 64 kB here)
    let coefficients = 3 * 3 * 2 * 4 * 8192 * 8;
    let size = keys.uncompressed_size().unwrap();
    assert!(
        (coefficients..coefficients + 128 * 1024).contains(&size),
        "{size} bytes uncompressed"
    );
    assert!(bytes.len() as u64 <= size, "zstd made the keys larger");
    let loaded = EvaluationKeys::from_bytes(&s.ctx, &bytes).unwrap();
    assert_eq!(loaded.steps(), vec![3, 4093]);
    assert!(loaded.has_relin());
    let ev = Evaluator::new(s.ctx.clone(), loaded).unwrap();
    let a = input(4096, 10);
    let ct = s.client.encrypt(&a, 2, s.ctx.params().scale()).unwrap();
    let ct_bytes = ct.to_bytes().unwrap();
    let back = Ciphertext::from_bytes(&s.ctx, &ct_bytes).unwrap();
    assert_eq!(back.level(), 2);
    let rotated = ev.rotate(&back, -3).unwrap();
    let want: Vec<f64> = (0..4096).map(|i| a[(i + 4096 - 3) % 4096]).collect();
    assert_close(&s.client.decrypt(&rotated).unwrap(), &want, TOL);

    // damaged bytes are clean errors, never crashes
    let err = Ciphertext::from_bytes(&s.ctx, &ct_bytes[..ct_bytes.len() / 2])
        .err()
        .unwrap();
    assert!(matches!(err, SealError::Malformed { .. }), "{err}");
    let err = EvaluationKeys::from_bytes(&s.ctx, &bytes[..bytes.len() - 10])
        .err()
        .unwrap();
    assert!(matches!(err, SealError::Malformed { .. }), "{err}");
    let err = EvaluationKeys::from_bytes(&s.ctx, b"not keys at all")
        .err()
        .unwrap();
    assert!(err.to_string().contains("bad magic"), "{err}");
    // keys of one context do not load into another
    let other = Context::new(&params(8192, &[60, 40, 60], 40)).unwrap();
    assert!(EvaluationKeys::from_bytes(&other, &bytes).is_err());
    assert!(Ciphertext::from_bytes(&other, &ct_bytes).is_err());
}

#[test]
fn a_saved_secret_key_decrypts_and_seeded_uploads_and_keys_are_half_the_bytes() {
    let s = small();
    let scale = s.ctx.params().scale();
    let a = input(4096, 11);

    // the secret key, saved and loaded, decrypts what the public key encrypted
    let secret = s.client.secret_key_bytes().unwrap();
    let again = Client::from_secret_bytes(s.ctx.clone(), &secret).unwrap();
    let ct = s.client.encrypt(&a, 2, scale).unwrap();
    assert_close(&again.decrypt(&ct).unwrap(), &a, TOL);
    // and another owner's key does not
    let stranger = Client::new(s.ctx.clone()).unwrap();
    let wrong = stranger.decrypt(&ct).unwrap();
    assert!(
        wrong.iter().zip(&a).any(|(w, x)| (w - x).abs() > 1.0),
        "another secret key decrypted the ciphertext"
    );

    // seeded symmetric encryption: the second polynomial travels as its seed
    let full = ct.to_bytes().unwrap().len();
    let seeded = again
        .encrypt_seeded(&a, 2, scale)
        .unwrap()
        .to_bytes()
        .unwrap();
    assert!(
        (seeded.len() as f64) < 0.55 * full as f64,
        "seeded {} bytes against {full}",
        seeded.len()
    );
    // the evaluating side loads it (SEAL grows the seed back), computes, and the owner decrypts
    let back = Ciphertext::from_bytes(&s.ctx, &seeded).unwrap();
    assert_eq!(back.level(), 2);
    let doubled = s.ev.add(&back, &back).unwrap();
    let want: Vec<f64> = a.iter().map(|x| 2.0 * x).collect();
    assert_close(&s.client.decrypt(&doubled).unwrap(), &want, TOL);

    // evaluation keys made to be sent: about half the bytes, and full keys once loaded
    let full: usize = s
        .client
        .evaluation_keys(&[3], true)
        .unwrap()
        .pieces()
        .map(|p| p.unwrap().len())
        .sum();
    let sent: Vec<Vec<u8>> = s
        .client
        .evaluation_keys_to_send(&[3], true)
        .unwrap()
        .pieces()
        .collect::<Result<_, _>>()
        .unwrap();
    let bytes: usize = sent.iter().map(Vec::len).sum();
    assert!(
        (bytes as f64) < 0.55 * full as f64,
        "keys to send {bytes} bytes against {full}"
    );
    let mut pieces = sent.into_iter();
    let keys =
        EvaluationKeys::from_pieces(&s.ctx, || Ok::<_, SealError>(pieces.next().unwrap())).unwrap();
    let ev = Evaluator::new(s.ctx.clone(), keys).unwrap();
    let rotated = ev.rotate(&back, 3).unwrap();
    let want: Vec<f64> = (0..4096).map(|i| a[(i + 3) % 4096]).collect();
    assert_close(&s.client.decrypt(&rotated).unwrap(), &want, TOL);

    // a damaged or foreign secret key is a clean error
    let err = Client::from_secret_bytes(s.ctx.clone(), &secret[..secret.len() / 2])
        .err()
        .unwrap();
    assert!(matches!(err, SealError::Malformed { .. }), "{err}");
    let other = Context::new(&params(8192, &[60, 40, 60], 40)).unwrap();
    assert!(Client::from_secret_bytes(other, &secret).is_err());
}

#[test]
fn keys_of_many_steps_travel_in_pieces_of_a_few_sets() {
    let s = small();
    // 20 steps: Galois keys in sets of 8, 8 and 4, after a head and the relinearization keys
    let steps: Vec<i64> = (1..=20).map(|k| k * 7).collect();
    let keys = s.client.evaluation_keys(&steps, true).unwrap();
    assert_eq!(keys.piece_count(), 5);
    let pieces: Vec<Vec<u8>> = keys.pieces().map(Result::unwrap).collect();
    assert_eq!(pieces.len(), 5);
    // no piece holds more than one set of at most 8 keys, each about the size of the
    // relinearization keys
    let largest = pieces.iter().map(Vec::len).max().unwrap();
    assert!(
        largest < 9 * pieces[1].len(),
        "{largest} bytes in one piece"
    );
    // the blob is the head, then the other pieces, each after its length
    let blob = keys.to_bytes().unwrap();
    assert_eq!(
        blob.len(),
        pieces.iter().map(|p| 8 + p.len()).sum::<usize>() - 8
    );
    assert_eq!(&blob[..pieces[0].len()], &pieces[0][..]);
    // the pieces load one at a time, and every step rotates
    let mut given = pieces.clone().into_iter();
    let loaded = EvaluationKeys::from_pieces(&s.ctx, || -> Result<Vec<u8>, SealError> {
        Ok(given
            .next()
            .expect("asked for no more pieces than there are"))
    })
    .unwrap();
    assert!(given.next().is_none(), "a piece was left unread");
    assert_eq!(
        loaded.steps(),
        (1..=20).map(|k| k * 7).collect::<Vec<i32>>()
    );
    let ev = Evaluator::new(s.ctx.clone(), loaded).unwrap();
    let a = input(4096, 21);
    let ct = s.client.encrypt(&a, 1, s.ctx.params().scale()).unwrap();
    for step in [7, 56, 63, 140] {
        let rotated = ev.rotate(&ct, step).unwrap();
        let want: Vec<f64> = (0..4096).map(|i| a[(i + step as usize) % 4096]).collect();
        assert_close(&s.client.decrypt(&rotated).unwrap(), &want, TOL);
    }
    // a supplier that runs dry, or a piece out of its place, is a clean error
    let mut given = pieces[..3].iter().cloned();
    let err = EvaluationKeys::from_pieces(&s.ctx, || {
        given.next().ok_or(SealError::Malformed {
            what: "test pieces",
            reason: "no more".into(),
        })
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("no more"), "{err}");
    let mut swapped = pieces.clone().into_iter();
    let mut first = true;
    let err = EvaluationKeys::from_pieces(&s.ctx, || -> Result<Vec<u8>, SealError> {
        // the head, then a Galois piece where the relinearization keys belong
        let p = if std::mem::take(&mut first) {
            swapped.next()
        } else {
            swapped.nth(1)
        };
        Ok(p.unwrap())
    })
    .err()
    .unwrap();
    assert!(matches!(err, SealError::Malformed { .. }), "{err}");
}

#[test]
fn a_public_key_from_bytes_encrypts_for_the_key_owner_only() {
    let s = small();
    let bytes = s.client.public_key().to_bytes().unwrap();
    let public = PublicKey::from_bytes(&s.ctx, &bytes).unwrap();
    let enc = Encryptor::new(s.ctx.clone(), &public).unwrap();
    let a = input(4096, 12);
    let ct = enc.encrypt(&a, 1, s.ctx.params().scale()).unwrap();
    assert_eq!(ct.level(), 1);
    assert_close(&s.client.decrypt(&ct).unwrap(), &a, TOL);
    // another key pair of the same context cannot read it
    let stranger = Client::new(s.ctx.clone()).unwrap();
    let garbage = stranger.decrypt(&ct).unwrap();
    assert!(garbage.iter().zip(&a).any(|(g, w)| (g - w).abs() > 1.0));
    // damaged or foreign bytes are clean errors
    let err = PublicKey::from_bytes(&s.ctx, &bytes[..bytes.len() / 2])
        .err()
        .unwrap();
    assert!(matches!(err, SealError::Malformed { .. }), "{err}");
    let other = Context::new(&params(8192, &[60, 40, 60], 40)).unwrap();
    assert!(PublicKey::from_bytes(&other, &bytes).is_err());
}

#[test]
fn bad_inputs_are_typed_errors_naming_the_operation() {
    let s = small();
    let ops = &s.ev;
    let scale = s.ctx.params().scale();
    let err = ops.encode(&[1e60], 2, scale).err().unwrap();
    assert!(
        matches!(
            err,
            SealError::Call {
                op: "CKKSEncoder::encode",
                ..
            }
        ),
        "{err}"
    );
    let err = ops.encode(&[0.0, f64::NAN], 2, scale).err().unwrap();
    assert!(
        matches!(err, SealError::NonFinite { index: 1, .. }),
        "{err}"
    );
    let err = ops.encode(&vec![0.0; 4097], 2, scale).err().unwrap();
    assert!(
        matches!(err, SealError::TooManyValues { slots: 4096, .. }),
        "{err}"
    );
    let err = ops.encode_scalar(1.0, 3, scale).err().unwrap();
    assert!(
        matches!(
            err,
            SealError::NoSuchLevel {
                level: 3,
                top: 2,
                ..
            }
        ),
        "{err}"
    );
    // a product whose scale outgrows the remaining modulus is refused by SEAL, not a crash
    let ct = s.client.encrypt(&[1.0], 0, scale).unwrap();
    let p = ops.encode_scalar(1.0, 0, scale).unwrap();
    let err = ops.multiply_plain(&ct, &p).err().unwrap();
    assert!(matches!(err, SealError::Call { .. }), "{err}");
    // relinearization without keys
    let bare =
        Evaluator::new(s.ctx.clone(), s.client.evaluation_keys(&[], false).unwrap()).unwrap();
    let top = s.client.encrypt(&[1.0], 2, scale).unwrap();
    let mut sq = bare.square(&top).unwrap();
    let err = bare.relinearize(&mut sq).err().unwrap();
    assert!(matches!(err, SealError::MissingRelinKeys { .. }), "{err}");
}
