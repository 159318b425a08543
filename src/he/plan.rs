//! Planning before any key exists: the depth of a (folded) network under a packing, the
//! smallest 128-bit-secure CKKS parameters that hold it, the exact rotation steps (Galois keys
//! for those only), and the count of every operation per stage, all from a symbolic run of the
//! packing's own evaluation code.

use serde::Serialize;

use super::cost::trace::{self, Timing};
use super::cost::OpCosts;
use super::counts::{OpCounts, OpTally};
use super::exec::{Exec, Symbolic};
use super::packing::{Packing, PackingId, Stage, StageLog};
use super::{HeError, Network};
use crate::seal::CkksParams;

/// Ring degrees tried, smallest first.
pub const DEGREES: [u64; 3] = [8192, 16384, 32768];
/// Preferred and smallest acceptable scale bits.
pub const SCALE_BITS: (u32, u32) = (40, 30);
/// Bits of headroom above the scale in the first prime (values up to ±2^19 at the output).
pub const HEADROOM_BITS: u32 = 20;
/// The special (key-switching) prime.
pub const SPECIAL_BITS: i32 = 60;
/// Scale bits a user may fix (`scale_bits`): below 24 a deep chain runs out of NTT primes and
/// the logit error passes 0.1; above 50 no headroom is left under SEAL's 60-bit primes.
pub const FIXED_SCALE_BITS: (u32, u32) = (50, 24);
/// Headroom bits the compact chain of a fixed scale keeps above the scale, at most and at
/// least (logits up to ±2^(headroom − 1)).
pub const FIXED_HEADROOM_BITS: (u32, u32) = (20, 10);

/// Operations of one stage (a layer, or layers evaluated together).
#[derive(Clone, Debug, Serialize)]
pub struct StagePlan {
    pub name: String,
    pub counts: OpTally,
}

/// Everything decided before encryption.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub packing: PackingId,
    pub params: CkksParams,
    /// Levels the network consumes (rescales on the longest path).
    pub depth: usize,
    pub slots: usize,
    /// Images per run (1 for channel-wise, the slot count for batch-axis).
    pub images_per_run: usize,
    /// Input ciphertexts per run.
    pub input_ciphertexts: usize,
    /// Rotation steps needing a Galois key (normalised to 1..slots).
    pub rotation_steps: Vec<i64>,
    pub layers: Vec<StagePlan>,
    /// Operations per run.
    pub totals: OpTally,
    /// The largest absolute difference between decrypted and plain logits this plan allows.
    pub logit_tolerance: f64,
    /// Estimated peak bytes of ciphertexts and plaintexts during one run (from the symbolic
    /// run on this process's rayon threads), and of the evaluation keys.
    pub memory: MemoryEstimate,
}

impl Plan {
    /// A digest of what fixes each run's ciphertexts and counts: the parameters, the rotation
    /// steps, the images per run and the operation totals. Checkpoints record it, so that runs
    /// from another build or precision are never mixed into one result.
    pub fn digest(&self) -> String {
        use md5::{Digest, Md5};
        let key = serde_json::to_vec(&(
            &self.params,
            &self.rotation_steps,
            self.images_per_run,
            &self.totals,
        ))
        .expect("a plan serializes");
        crate::data::checksums::hex(&Md5::digest(key))
    }
}

/// Estimated memory of one run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct MemoryEstimate {
    pub evaluation_peak_bytes: u64,
    pub evaluation_keys_bytes: u64,
    /// Weight plaintexts encoded once per model and kept for every run (`channel-fast`).
    pub stored_plaintexts: usize,
    pub stored_plaintext_bytes: u64,
}

/// Plans `net` under `packing`. With `scale_bits` `None` the scale is searched from 40 down to
/// 30 bits in the smallest ring that holds the depth (chain: [scale + 20 (at most 60), scale ×
/// depth, 60]); where that leaves the scale below 40 bits, a compact chain (below) of a higher
/// scale in the same ring is taken instead (depth 10 at N = 16384: 2^34, not 2^32). With
/// `Some(s)` the scale is `s` and the chain is the compact
/// [s + h, s × depth, s + h], in the smallest ring where a headroom h of at least 10 bits fits,
/// with the largest h up to 20 that fits there: the choice that lets shallow networks use
/// N = 8192 at a scale picked from measured logit errors (README, "Precision").
pub fn plan(packing: PackingId, net: &Network, scale_bits: Option<u32>) -> Result<Plan, HeError> {
    if let Some(s) = scale_bits {
        check_scale_bits(s)?;
    }
    // The depth does not depend on the ring: run once with an ample chain.
    const PROBE: usize = 64;
    let probe = match symbolic(packing, net, (1 << 12) * packing.lanes(), PROBE) {
        Err(HeError::TooDeep) => return Err(too_deep(format!("more than {PROBE}"), scale_bits)?),
        other => other?,
    };
    let depth = PROBE - probe.out_level;
    if depth > deepest(scale_bits)?.0 {
        return Err(too_deep(depth.to_string(), scale_bits)?);
    }
    let mut reasons = Vec::new();
    for n in DEGREES {
        let slots = (n / 2) as usize;
        if let Err(why) = packing.fits(net, slots) {
            log::debug!("N={n}: {why}");
            reasons.push(format!("N={n}: {why}"));
            continue;
        }
        let max = CkksParams::max_bits_128(n)?;
        let fits = |bits: &Vec<i32>| bits.iter().sum::<i32>() <= max;
        let compact = |s: u32| {
            (FIXED_HEADROOM_BITS.1..=FIXED_HEADROOM_BITS.0)
                .rev()
                .map(move |h| (s, compact_chain(depth, s, h)))
        };
        let found = match scale_bits {
            // the standard chain picks the ring; a compact chain may then raise the scale
            None => (SCALE_BITS.1..=SCALE_BITS.0)
                .rev()
                .map(|s| (s, chain(depth, s)))
                .find(|(_, bits)| fits(bits))
                .map(|standard| {
                    (standard.0 + 1..=SCALE_BITS.0)
                        .rev()
                        .flat_map(compact)
                        .find(|(_, bits)| fits(bits))
                        .unwrap_or(standard)
                }),
            Some(s) => compact(s).find(|(_, bits)| fits(bits)),
        };
        let Some((scale_bits, coeff_modulus_bits)) = found else {
            reasons.push(match scale_bits {
                None => format!(
                    "N={n}: depth {depth} needs more than its {max} bits even at 2^{} scale",
                    SCALE_BITS.1
                ),
                Some(s) => format!(
                    "N={n}: depth {depth} at 2^{s} scale needs {} bits, more than its {max}",
                    compact_chain(depth, s, FIXED_HEADROOM_BITS.1)
                        .iter()
                        .sum::<i32>()
                ),
            });
            continue;
        };
        let run = symbolic(packing, net, slots, depth)?;
        // each key (relinearization, and one per step): a 2-polynomial ciphertext over all the
        // primes for each data prime (all but the special one)
        let primes = coeff_modulus_bits.len() as u64;
        let evaluation_keys_bytes =
            (run.steps.len() as u64 + 1) * (primes - 1) * 2 * primes * n * 8;
        return Ok(Plan {
            packing,
            params: CkksParams {
                poly_modulus_degree: n,
                coeff_modulus_bits,
                scale_bits,
            },
            depth,
            slots,
            images_per_run: packing.images_per_run(slots),
            input_ciphertexts: packing.input_count(net, slots),
            rotation_steps: run.steps.clone(),
            totals: run.stages.iter().map(|s| s.counts).sum(),
            layers: run
                .stages
                .into_iter()
                .map(|s| StagePlan {
                    name: s.name,
                    counts: s.counts,
                })
                .collect(),
            logit_tolerance: tolerance(scale_bits, packing.noise_gain(net, slots)),
            memory: MemoryEstimate {
                evaluation_peak_bytes: run.peak_bytes,
                stored_plaintexts: run.stored.0,
                stored_plaintext_bytes: run.stored.1,
                evaluation_keys_bytes,
            },
        });
    }
    Err(HeError::NoParameters(reasons.join("; ")))
}

/// The greatest depth that 128-bit parameters hold in the largest ring, at the lowest scale
/// the search takes (or at the fixed `scale_bits`), and that ring.
pub fn deepest(scale_bits: Option<u32>) -> Result<(usize, u64), HeError> {
    let ring = DEGREES[DEGREES.len() - 1];
    let max = CkksParams::max_bits_128(ring)?;
    let bits = |d: usize| -> i32 {
        match scale_bits {
            None => chain(d, SCALE_BITS.1),
            Some(s) => compact_chain(d, s, FIXED_HEADROOM_BITS.1),
        }
        .iter()
        .sum()
    };
    let deepest = (1..).take_while(|&d| bits(d) <= max).last().unwrap_or(0);
    Ok((deepest, ring))
}

/// The refusal of a network `depth` levels deep.
fn too_deep(depth: String, scale_bits: Option<u32>) -> Result<HeError, HeError> {
    let (deepest, ring) = deepest(scale_bits)?;
    let scale = match scale_bits {
        None => format!("a 2^{} scale, the lowest searched", SCALE_BITS.1),
        Some(s) => format!("the 2^{s} scale asked for"),
    };
    Ok(HeError::TooDeepFor128 {
        depth,
        deepest,
        ring,
        scale,
    })
}

/// Refuses a fixed scale outside [`FIXED_SCALE_BITS`].
pub fn check_scale_bits(s: u32) -> Result<(), HeError> {
    let (hi, lo) = FIXED_SCALE_BITS;
    if (lo..=hi).contains(&s) {
        Ok(())
    } else {
        Err(HeError::ScaleBits(s, lo, hi))
    }
}

/// Coefficient-modulus bit sizes for `depth` levels at `scale_bits` (the default search).
pub fn chain(depth: usize, scale_bits: u32) -> Vec<i32> {
    ladder(
        (scale_bits + HEADROOM_BITS).min(60) as i32,
        depth,
        scale_bits,
        SPECIAL_BITS,
    )
}

/// The compact chain of a fixed scale: first and special prime both `scale + headroom` bits.
pub fn compact_chain(depth: usize, scale_bits: u32, headroom: u32) -> Vec<i32> {
    let edge = (scale_bits + headroom).min(60) as i32;
    ladder(edge, depth, scale_bits, edge)
}

/// [first, scale × depth, special].
fn ladder(first: i32, depth: usize, scale_bits: u32, special: i32) -> Vec<i32> {
    let mut bits = vec![first];
    bits.extend(std::iter::repeat_n(scale_bits as i32, depth));
    bits.push(special);
    bits
}

/// The stated bound on |decrypted − plain| logits: 2^(20 − scale bits) per slot whose noise
/// reaches an output (`gain`: 1 for batch-axis, the slot count where a rotate-and-sum adds all
/// slots). Measured errors on the test networks sit 25–1000× below it (README).
pub fn tolerance(scale_bits: u32, gain: f64) -> f64 {
    2f64.powi(20 - scale_bits as i32) * (1.0 + gain)
}

/// The modelled time of one run of `plan` (of `net`) on `threads` threads while `others`
/// threads of the node work on other runs, with every operation charged its cost in `costs`,
/// and each stage's share of it.
pub fn run_timing(
    plan: &Plan,
    net: &Network,
    costs: &OpCosts,
    threads: usize,
    others: usize,
) -> Result<(Timing, Vec<Stage>), HeError> {
    let n = plan.params.poly_modulus_degree;
    let (run, timing) = trace::measure(costs, n, threads, others, || {
        symbolic(plan.packing, net, plan.slots, plan.depth)
    })?;
    Ok((timing, run?.stages))
}

/// The peak bytes of ciphertexts and plaintexts of one run of `plan` on `threads` threads (a
/// symbolic run on a pool of that size).
pub fn run_peak_bytes(plan: &Plan, net: &Network, threads: usize) -> Result<u64, HeError> {
    let pool = crate::pool::threads(threads)?;
    let run = pool.install(|| symbolic(plan.packing, net, plan.slots, plan.depth))?;
    Ok(run.peak_bytes)
}

struct SymbolicRun {
    peak_bytes: u64,
    /// Stored plaintexts: count and bytes.
    stored: (usize, u64),
    out_level: usize,
    steps: Vec<i64>,
    stages: Vec<Stage>,
}

fn symbolic(
    packing: PackingId,
    net: &Network,
    slots: usize,
    top: usize,
) -> Result<SymbolicRun, HeError> {
    let counts = OpCounts::default();
    let exec = Exec::new(Symbolic::new(slots), &counts, packing.lanes())?;
    let input = (0..packing.input_count(net, slots))
        .map(|_| exec.backend().input(top))
        .collect();
    let mut log = StageLog::new(&exec);
    let out = packing.evaluate(&exec, net, input, &mut log);
    let stages = log.into_stages();
    let out = out?;
    let sym = exec.backend();
    Ok(SymbolicRun {
        peak_bytes: sym.memory().peak_bytes(),
        stored: (sym.store().len(), sym.store().bytes()),
        out_level: out.first().map_or(top, |c| exec.level(c)),
        steps: sym.steps(),
        stages,
    })
}

/// The plan as a human-readable table.
pub fn table(plan: &Plan) -> String {
    let p = &plan.params;
    let mut out = format!(
        "packing {} — N={} ({} slots), coefficient modulus {:?} ({} bits), scale 2^{}, depth {}, \
         128-bit security\n{} image(s) per run, {} input ciphertexts, {} Galois keys, logit tolerance {:.1e}, logits within ±{}\n\
         estimated memory: {:.2} GB of ciphertexts at peak, {:.2} GB of evaluation keys, \
         {:.2} GB of weight plaintexts encoded once ({})\n\n",
        plan.packing,
        p.poly_modulus_degree,
        plan.slots,
        p.coeff_modulus_bits,
        p.total_bits(),
        p.scale_bits,
        plan.depth,
        plan.images_per_run,
        plan.input_ciphertexts,
        plan.rotation_steps.len(),
        plan.logit_tolerance,
        p.logit_range(),
        plan.memory.evaluation_peak_bytes as f64 / 1e9,
        plan.memory.evaluation_keys_bytes as f64 / 1e9,
        plan.memory.stored_plaintext_bytes as f64 / 1e9,
        plan.memory.stored_plaintexts
    );
    let cols = [
        "hmulplain",
        "hsquare",
        "hmul",
        "hadd",
        "rotation",
        "relinearize",
        "rescale",
        "skipped_zero",
    ];
    out += &format!(
        "| stage | {} |\n|---|{}\n",
        cols.join(" | "),
        "---:|".repeat(cols.len())
    );
    let row = |name: &str, t: &OpTally| {
        let v = [
            t.hmulplain,
            t.hsquare,
            t.hmul,
            t.hadd,
            t.rotation,
            t.relinearize,
            t.rescale,
            t.skipped_zero,
        ];
        format!("| {name} | {} |\n", v.map(|x| x.to_string()).join(" | "))
    };
    for s in &plan.layers {
        out += &row(&s.name, &s.counts);
    }
    out += &row("**total**", &plan.totals);
    out
}
