//! Where SEAL keeps ciphertext memory: copies must not land in SEAL's global pool, which never
//! gives memory back. A test binary of its own, so that no other test allocates from that pool
//! while this one reads its size.

use hejob::seal::{global_pool_bytes, CkksParams, Client, Context, Evaluator};

#[test]
fn copies_have_pools_of_their_own_and_stay_deep() {
    let params = CkksParams {
        poly_modulus_degree: 8192,
        coeff_modulus_bits: vec![60, 40, 40, 60],
        scale_bits: 40,
    };
    let ctx = Context::new(&params).expect("secure parameters");
    let client = Client::new(ctx.clone()).unwrap();
    let ev = Evaluator::new(ctx.clone(), client.evaluation_keys(&[], true).unwrap()).unwrap();
    let ops = &ev;
    let scale = 2f64.powi(40);
    let values: Vec<f64> = (0..ctx.slots()).map(|i| (i % 7) as f64 - 3.0).collect();
    let original = client.encrypt(&values, 2, scale).unwrap();

    let before = global_pool_bytes().unwrap();
    // 32 copies live at once: 32 × 2 × 3 primes × 8192 × 8 bytes ≈ 12.6 MB if they were pooled
    let mut copies: Vec<_> = (0..32).map(|_| original.try_clone().unwrap()).collect();
    let after = global_pool_bytes().unwrap();
    assert_eq!(
        after,
        before,
        "copies took {} bytes from SEAL's global pool",
        after - before
    );

    // each copy is deep: changing one changes neither the original nor the other copies
    let doubled = copies[0].try_clone().unwrap();
    ops.add_assign(&mut copies[0], &doubled).unwrap();
    let twice: Vec<f64> = values.iter().map(|v| 2.0 * v).collect();
    for (got, want) in [
        (client.decrypt(&copies[0]).unwrap(), &twice),
        (client.decrypt(&copies[1]).unwrap(), &values),
        (client.decrypt(&original).unwrap(), &values),
    ] {
        for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
            assert!((g - w).abs() < 1e-4, "slot {i}: got {g}, want {w}");
        }
    }
    assert_eq!(copies[1].level(), original.level());
    assert_eq!(copies[1].scale(), original.scale());
}
