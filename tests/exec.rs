//! The counted operations of the encrypted evaluation (`he::exec`): one code path counts for
//! every backend, so the same operations on real SEAL ciphertexts and on symbolic ones give the
//! same tally, and that tally is the hand-counted one.

use hejob::he::counts::OpTally;
use hejob::he::exec::{level_scales, Backend, Exec, Real, Store, Symbolic};
use hejob::he::HeError;
use hejob::seal::{CkksParams, Client, Context, Evaluator};
use rayon::prelude::*;

/// The outputs of [`sequence`]: `(p_i + p_{i+1})²` with `p = x/2 + x·y`, and `−x·3/4`.
struct Out<C> {
    square: C,
    dot: C,
}

/// Every counted operation, some of them in the ways that count specially (a zero product, a
/// zero weight in a fused sum, a rotation by the slot count, a mod-switch to its own level).
fn sequence<B: Backend>(exec: &Exec<B>, x: &B::Ct, y: &B::Ct) -> Result<Out<B::Ct>, HeError> {
    let l = exec.level(x);
    let s = exec.scale(l);
    let half = exec.encode_scalar(0.5, l, s)?;
    let zero = exec.encode_scalar(0.0, l, s)?;
    assert!(exec.multiply_plain(x, &zero)?.is_none());
    let mut p = exec.multiply_plain(x, &half)?.expect("0.5 is not zero");
    exec.add_assign(&mut p, &exec.multiply(x, y)?)?;
    exec.rescale(&mut p)?;
    let r = exec.rotate(&p, 1)?;
    exec.add_assign(&mut p, &r)?;
    let same = exec.rotate(&p, exec.slots() as i64)?;
    let mut square = exec.square(&same)?;
    exec.rescale(&mut square)?;
    let (rx, ry) = (exec.to_raw(exec.copy(x)?)?, exec.to_raw(exec.copy(y)?)?);
    let mut dot = exec
        .dot_scalars(&[(&rx, 0.25), (&ry, 0.0), (&rx, -1.0)])?
        .expect("two weights are not zero");
    exec.rescale(&mut dot)?;
    exec.mod_switch_to(&mut dot, 0)?;
    exec.mod_switch_to(&mut dot, 0)?;
    Ok(Out { square, dot })
}

/// What [`sequence`] does, counted by hand.
fn expected() -> OpTally {
    OpTally {
        encode: 2,
        skipped_zero: 2,
        hmulplain: 3,
        hmul: 1,
        hsquare: 1,
        relinearize: 2,
        hadd: 3,
        rescale: 3,
        rotation: 2,
        rotation_zero: 1,
        mod_switch: 1,
    }
}

fn values(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| ((i as u64 * 2654435761 + seed * 97) % 2000) as f64 / 1000.0 - 1.0)
        .collect()
}

struct Engine {
    ctx: std::sync::Arc<Context>,
    client: Client,
    ev: Evaluator,
}

fn real(steps: &[i64]) -> Engine {
    let ctx = Context::new(&CkksParams {
        poly_modulus_degree: 8192,
        coeff_modulus_bits: vec![60, 40, 40, 60],
        scale_bits: 40,
    })
    .unwrap();
    let client = Client::new(ctx.clone()).unwrap();
    let ev = Evaluator::new(ctx.clone(), client.evaluation_keys(steps, true).unwrap()).unwrap();
    Engine { ctx, client, ev }
}

#[test]
fn real_and_symbolic_executions_count_the_same_operations_as_counted_by_hand() {
    let r = real(&[1]);
    let slots = r.ctx.slots();
    let (x, y) = (values(slots, 1), values(slots, 2));
    let top = r.ctx.top_level();
    let scale = level_scales(&r.ctx).unwrap()[top];
    let (cx, cy) = (
        r.client.encrypt(&x, top, scale).unwrap(),
        r.client.encrypt(&y, top, scale).unwrap(),
    );
    let store = Store::default();
    let real_counts = Default::default();
    let exec = Exec::new(Real::new(&r.ev, &store).unwrap(), &real_counts, 1).unwrap();
    let out = sequence(&exec, &cx, &cy).unwrap();
    let real_tally = exec.tally();

    let sym_counts = Default::default();
    let sym = Exec::new(Symbolic::new(slots), &sym_counts, 1).unwrap();
    let (sx, sy) = (sym.backend().input(top), sym.backend().input(top));
    let sym_out = sequence(&sym, &sx, &sy).unwrap();
    assert_eq!(real_tally, expected());
    assert_eq!(sym.tally(), expected());
    assert_eq!(sym.backend().steps(), vec![1]);
    assert_eq!(
        (sym.level(&sym_out.square), sym.level(&sym_out.dot)),
        (exec.level(&out.square), exec.level(&out.dot))
    );

    // and the real one computed what it counted
    let p: Vec<f64> = (0..slots).map(|i| 0.5 * x[i] + x[i] * y[i]).collect();
    let got = r.client.decrypt(&out.square).unwrap();
    let got_dot = r.client.decrypt(&out.dot).unwrap();
    for i in 0..slots {
        let want = (p[i] + p[(i + 1) % slots]).powi(2);
        assert!(
            (got[i] - want).abs() < 1e-4,
            "slot {i}: {} vs {want}",
            got[i]
        );
        assert!(
            (got_dot[i] + 0.75 * x[i]).abs() < 1e-6,
            "slot {i}: {}",
            got_dot[i]
        );
    }
}

#[test]
fn lanes_move_rotations_and_a_full_turn_of_the_lanes_slots_is_a_copy() {
    let counts = Default::default();
    let exec = Exec::new(Symbolic::new(4096), &counts, 4).unwrap();
    assert_eq!(exec.slots(), 1024);
    let x = exec.backend().input(3);
    exec.rotate(&x, 1).unwrap();
    exec.rotate(&x, -1).unwrap();
    exec.rotate(&x, 1024).unwrap();
    assert_eq!(exec.backend().steps(), vec![4, 4092]);
    let t = exec.tally();
    assert_eq!((t.rotation, t.rotation_zero), (3, 1));
    assert!(Exec::new(Symbolic::new(4096), &counts, 3).is_err());
}

#[test]
fn too_deep_and_level_mismatches_are_errors_not_counts() {
    let counts = Default::default();
    let exec = Exec::new(Symbolic::new(16), &counts, 1).unwrap();
    let mut bottom = exec.backend().input(0);
    assert!(matches!(exec.rescale(&mut bottom), Err(HeError::TooDeep)));
    let mut top = exec.backend().input(2);
    assert!(exec.add_assign(&mut top, &bottom).is_err());
    assert!(exec.mod_switch_to(&mut bottom, 1).is_err());
    assert_eq!(exec.tally(), OpTally::default());
}

#[test]
fn counters_are_exact_under_many_threads() {
    let r = real(&[1, -1]);
    let top = r.ctx.top_level();
    let scale = level_scales(&r.ctx).unwrap()[top];
    let ct = r.client.encrypt(&values(4096, 11), top, scale).unwrap();
    let store = Store::default();
    let counts = Default::default();
    let exec = Exec::new(Real::new(&r.ev, &store).unwrap(), &counts, 1).unwrap();
    let w = exec.encode_scalar(0.25, top, exec.scale(top)).unwrap();
    (0..64).into_par_iter().for_each(|i| {
        let rot = exec.rotate(&ct, if i % 2 == 0 { 1 } else { -1 }).unwrap();
        let mut m = exec.multiply_plain(&rot, &w).unwrap().unwrap();
        let m2 = exec.copy(&m).unwrap();
        exec.add_assign(&mut m, &m2).unwrap();
    });
    let t = exec.tally();
    assert_eq!((t.rotation, t.hmulplain, t.hadd, t.encode), (64, 64, 64, 1));
}
