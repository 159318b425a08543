//! `hejob bench-ops`: the single-thread cost of every CKKS operation and the size of keys and
//! ciphertexts, at realistic parameter sets. These numbers steer every packing decision.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::he::cost::table::Curve;
use crate::he::cost::Op;

use crate::he::packing::PackingId;
use crate::seal::{CkksParams, Client, Context, Evaluator, Result};
use crate::sys::{peak_rss_mb, reset_peak_rss};

/// A benchmark run in a child process that did not give its result.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    He(#[from] crate::he::HeError),
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    ThreadPool(#[from] crate::pool::PoolError),
    #[error("the benchmark process's result: {0}")]
    Json(#[from] serde_json::Error),
    #[error("starting the benchmark process: {0}")]
    Spawn(std::io::Error),
    #[error("the benchmark of {0} failed (its messages are above)")]
    Failed(String),
    #[error("the benchmark process printed no result")]
    NoResult,
}

/// The measured costs at one parameter set.
#[derive(Debug, Serialize)]
pub struct OpBench {
    pub params: CkksParams,
    pub max_bits_128: i32,
    /// Median milliseconds per call, by operation name, at the top level.
    pub ms: Vec<(String, f64)>,
    pub ciphertext_bytes: usize,
    /// A ciphertext encrypted with the secret key, its second polynomial a seed (private mode).
    pub seeded_ciphertext_bytes: usize,
    pub galois_key_bytes_per_step: usize,
    pub relin_key_bytes: usize,
    /// Milliseconds of every operation the cost model charges, by the primes of its operand
    /// (`hejob plan --costs` reads them).
    pub by_primes: Curve,
}

/// The default parameter sets: each N with the depth it can hold at 128-bit security,
/// 40-bit scale primes between a 60-bit first prime and a 60-bit special prime.
pub fn default_params(n: u64) -> Result<CkksParams> {
    let max = CkksParams::max_bits_128(n)?;
    let data = ((max - 120) / 40).max(0) as usize;
    let mut bits = vec![60];
    bits.extend(std::iter::repeat_n(40, data));
    bits.push(60);
    Ok(CkksParams {
        poly_modulus_degree: n,
        coeff_modulus_bits: bits,
        scale_bits: 40,
    })
}

/// Runs every operation for at least `budget` (and at least 3 times) and reports the medians.
pub fn bench_ops(params: &CkksParams, budget: Duration) -> Result<OpBench> {
    let ctx = Context::new(params)?;
    let client = Client::new(ctx.clone())?;
    let keys = client.evaluation_keys(&[1], true)?;
    let relin_only = client.evaluation_keys(&[], true)?.to_bytes()?.len();
    let galois_key_bytes_per_step = keys.to_bytes()?.len() - relin_only;
    let ev = Evaluator::new(ctx.clone(), keys)?;
    let ops = &ev;
    let (top, scale, slots) = (ctx.top_level(), params.scale(), ctx.slots());
    let values: Vec<f64> = (0..slots).map(|i| (i % 100) as f64 / 100.0).collect();
    let a = client.encrypt(&values, top, scale)?;
    let b = client.encrypt(&values, top, scale)?;
    let p = ops.encode(&values, top, scale)?;
    let prod = ops.multiply(&a, &b)?;
    let mut ms = Vec::new();
    let mut time = |name: &str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        ms.push((name.to_string(), median_ms(budget, f)?));
        Ok(())
    };
    time("encode", &mut || ops.encode(&values, top, scale).map(drop))?;
    time("encrypt", &mut || {
        client.encryptor().encrypt_plain(&p).map(drop)
    })?;
    time("encrypt_seeded", &mut || {
        client.encrypt_plain_seeded(&p).map(drop)
    })?;
    time("decrypt+decode", &mut || client.decrypt(&a).map(drop))?;
    time("add", &mut || ops.add(&a, &b).map(drop))?;
    time("add_plain", &mut || ops.add_plain(&a, &p).map(drop))?;
    time("multiply_plain", &mut || {
        ops.multiply_plain(&a, &p).map(drop)
    })?;
    time("square", &mut || ops.square(&a).map(drop))?;
    time("multiply", &mut || ops.multiply(&a, &b).map(drop))?;
    time("relinearize", &mut || {
        let mut c = prod.try_clone()?;
        ops.relinearize(&mut c)
    })?;
    time("rescale", &mut || {
        let mut c = a.try_clone()?;
        ops.rescale(&mut c)
    })?;
    time("mod_switch", &mut || {
        let mut c = a.try_clone()?;
        ops.mod_switch_to(&mut c, top - 1)
    })?;
    time("rotate", &mut || ops.rotate(&a, 1).map(drop))?;
    time("copy", &mut || a.try_clone().map(drop))?;
    Ok(OpBench {
        params: params.clone(),
        max_bits_128: CkksParams::max_bits_128(params.poly_modulus_degree)?,
        ms,
        ciphertext_bytes: a.to_bytes()?.len(),
        seeded_ciphertext_bytes: client.encrypt_plain_seeded(&p)?.to_bytes()?.len(),
        galois_key_bytes_per_step,
        relin_key_bytes: relin_only,
        by_primes: cost_curve(params.poly_modulus_degree, budget / 4)?,
    })
}

/// Bytes that operands streamed from memory cycle through when timed: four times a large
/// last-level cache, so that each is read from memory as in an evaluation.
const COLD_BYTES: usize = 128 << 20;

/// How many operands of `bytes` each fill [`COLD_BYTES`].
fn cold_count(bytes: usize) -> usize {
    COLD_BYTES.div_ceil(bytes.max(1)).max(1)
}

/// The prime counts a cost curve is measured at, up to `most`.
fn curve_points(most: usize) -> Vec<usize> {
    let mut points: Vec<usize> = [1, 2, 3, 4, 6, 8, 11, 16, 22]
        .into_iter()
        .filter(|&k| k < most)
        .collect();
    points.push(most);
    points
}

/// Every operation of the cost model at ring degree `n`, on operands of 1 prime up to as many
/// as a 128-bit chain of small primes holds (25-bit primes up to N = 16384, 30-bit at 32768,
/// so that every chain the planner picks is covered), each for at least `budget`. Costs do not
/// depend on a prime's size below 61 bits. Rescale and mod-switch need two primes: 0 at one.
/// A key-switching key is generated over the whole chain: its cost at fewer primes is scaled
/// by `k(k+1)` (it holds a polynomial pair over `k + 1` primes for each of `k` primes).
pub fn cost_curve(n: u64, budget: Duration) -> Result<Curve> {
    let bits = if n <= 16384 { 25 } else { 30 };
    let total = (CkksParams::max_bits_128(n)? / bits) as usize;
    let most = total - 1;
    let params = CkksParams {
        poly_modulus_degree: n,
        coeff_modulus_bits: vec![bits; total],
        scale_bits: (bits as u32 - 15) / 2 + 3,
    };
    let ctx = Context::new(&params)?;
    let client = Client::new(ctx.clone())?;
    let keygen_ms = median_ms(budget, &mut || client.evaluation_keys(&[], true).map(drop))?;
    let ev = Evaluator::new(ctx.clone(), client.evaluation_keys(&[1], true)?)?;
    let scale = params.scale();
    let values: Vec<f64> = (0..ctx.slots()).map(|i| (i % 100) as f64 / 100.0).collect();
    let primes = curve_points(most);
    let mut ms: BTreeMap<Op, Vec<f64>> = BTreeMap::new();
    for &k in &primes {
        let level = k - 1;
        let a = client.encrypt(&values, level, scale)?;
        let b = client.encrypt(&values, level, scale)?;
        let p = ev.encode(&values, level, scale)?;
        // weights and the inputs of fused sums stream from memory in an evaluation: those
        // operands cycle through more of it than a cache holds
        let ct_bytes = 2 * k * n as usize * 8;
        let plains = (0..cold_count(ct_bytes / 2))
            .map(|_| ev.encode(&values, level, scale))
            .collect::<Result<Vec<_>>>()?;
        let raws = (0..cold_count(ct_bytes))
            .map(|_| a.to_raw())
            .collect::<Result<Vec<_>>>()?;
        let mut next = 0usize;
        let mut cycle = |len: usize| {
            next = next.wrapping_add(1);
            next % len
        };
        let mut put = |op: Op, value: f64| ms.entry(op).or_default().push(value);
        let time = |f: &mut dyn FnMut() -> Result<()>| median_ms(budget, f);
        put(
            Op::Encode,
            time(&mut || ev.encode(&values, level, scale).map(drop))?,
        );
        put(
            Op::EncodeScalar,
            time(&mut || ev.encode_scalar(0.5, level, scale).map(drop))?,
        );
        put(
            Op::Encrypt,
            time(&mut || client.encryptor().encrypt_plain(&p).map(drop))?,
        );
        put(Op::Decrypt, time(&mut || client.decrypt(&a).map(drop))?);
        put(Op::Copy, time(&mut || a.try_clone().map(drop))?);
        // sums go into an accumulator in place, as in an evaluation
        let mut sum = a.try_clone()?;
        put(Op::Add, time(&mut || ev.add_assign(&mut sum, &b))?);
        put(
            Op::AddPlain,
            time(&mut || ev.add_plain_assign(&mut sum, &plains[cycle(plains.len())]))?,
        );
        put(
            Op::MultiplyPlain,
            time(&mut || {
                ev.multiply_plain(&a, &plains[cycle(plains.len())])
                    .map(drop)
            })?,
        );
        let mut acc = ev
            .multiply_plain(&a, &p)?
            .expect("the values are not all zero");
        put(
            Op::MultiplyPlainAdd,
            time(&mut || ev.multiply_plain_add(&mut acc, &a, &plains[cycle(plains.len())]))?,
        );
        put(
            Op::Multiply,
            time(&mut || ev.relinearize(&mut ev.multiply(&a, &b)?))?,
        );
        put(
            Op::Square,
            time(&mut || ev.relinearize(&mut ev.square(&a)?))?,
        );
        // rescale and mod-switch drop a prime: nothing to drop at one
        let drop_one = |rescale: bool| -> Result<f64> {
            if level == 0 {
                return Ok(0.0);
            }
            time(&mut || {
                let mut c = a.try_clone()?;
                match rescale {
                    true => ev.rescale(&mut c),
                    false => ev.mod_switch_to(&mut c, level - 1),
                }
            })
        };
        put(Op::Rescale, drop_one(true)?);
        put(Op::ModSwitch, drop_one(false)?);
        put(Op::Rotate, time(&mut || ev.rotate(&a, 1).map(drop))?);
        put(Op::ToRaw, time(&mut || a.to_raw().map(drop))?);
        // a fused sum of one term and of 33: the difference is 32 terms' work
        const TERMS: usize = 33;
        let mut dot = |n: usize| -> Result<f64> {
            time(&mut || {
                let terms: Vec<_> = (0..n).map(|_| (&raws[cycle(raws.len())], 0.5)).collect();
                ev.dot_scalars(&terms, scale).map(drop)
            })
        };
        let (one, many) = (dot(1)?, dot(TERMS)?);
        let term = ((many - one) / (TERMS - 1) as f64).max(0.0);
        put(Op::DotTerm, term);
        put(Op::DotBase, (one - term).max(0.0));
        let quadratic = (k * (k + 1)) as f64 / (most * (most + 1)) as f64;
        put(Op::Keygen, keygen_ms * quadratic);
    }
    let top = client.encrypt(&values, most - 1, scale)?;
    let slowdown = slowdown(&ev, &top, budget)?;
    let keys = ev.keys();
    let mut mb = 0.0;
    let key_ms = median_ms(budget, &mut || {
        let bytes = keys.to_bytes()?;
        mb = bytes.len() as f64 / 1e6;
        crate::seal::EvaluationKeys::from_bytes(&ctx, &bytes).map(drop)
    })?;
    Ok(Curve {
        primes,
        ms,
        slowdown,
        key_ms_per_mb: key_ms / mb,
    })
}

/// How much longer a mix of operations (a rotation, a plaintext product and an addition, on
/// `a`) takes on each thread while 1, 2, 4, … up to all of this machine's threads run it at
/// once, relative to one thread alone (the median of three alternations): `(threads, factor)`.
fn slowdown(
    ev: &Evaluator,
    a: &crate::seal::Ciphertext,
    budget: Duration,
) -> Result<Vec<(usize, f64)>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let p = ev.encode_scalar(0.5, a.level(), 2f64.powi(4))?;
    // as an evaluation does them: a rotation into a fresh ciphertext, its product by a
    // plaintext added into an accumulator
    let mix = |acc: &mut crate::seal::Ciphertext| -> Result<()> {
        let r = ev.rotate(a, 1)?;
        ev.multiply_plain_add(acc, &r, &p)
    };
    let per_call = |threads: usize| -> Result<f64> {
        let times: Vec<Result<f64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| -> Result<f64> {
                        let mut acc = ev.multiply_plain(a, &p)?.expect("0.5 is not zero");
                        let start = Instant::now();
                        let mut calls = 0u32;
                        while calls < 3 || start.elapsed() < budget {
                            mix(&mut acc)?;
                            calls += 1;
                        }
                        Ok(start.elapsed().as_secs_f64() / calls as f64)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a benchmark thread does not panic"))
                .collect()
        });
        let times = times.into_iter().collect::<Result<Vec<f64>>>()?;
        Ok(times.iter().sum::<f64>() / times.len() as f64)
    };
    let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |t| Some(t * 2))
        .take_while(|&t| t < cores)
        .collect();
    counts.push(cores);
    // alone and together in turn, three times: the median ratio, so that a moment of noise on
    // either side does not become the factor
    counts
        .into_iter()
        .map(|t| {
            if t == 1 {
                return Ok((1, 1.0));
            }
            let mut ratios = (0..3)
                .map(|_| Ok(per_call(t)? / per_call(1)?))
                .collect::<Result<Vec<f64>>>()?;
            ratios.sort_by(f64::total_cmp);
            Ok((t, ratios[1]))
        })
        .collect()
}

fn median_ms(budget: Duration, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < 3 || start.elapsed() < budget {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

/// Renders the results as one markdown table (operations as rows, N as columns).
pub fn markdown(results: &[OpBench]) -> String {
    let mut out = String::from("| operation (ms, 1 thread, top level) |");
    for r in results {
        out += &format!(
            " N={} ({} primes, {} bits) |",
            r.params.poly_modulus_degree,
            r.params.coeff_modulus_bits.len(),
            r.params.total_bits()
        );
    }
    out += "\n|---|";
    out += &"---:|".repeat(results.len());
    out.push('\n');
    let rows = results.first().map_or(0, |r| r.ms.len());
    for i in 0..rows {
        out += &format!("| {} |", results[0].ms[i].0);
        for r in results {
            out += &format!(" {:.3} |", r.ms[i].1);
        }
        out.push('\n');
    }
    let mut size_row = |name: &str, f: &dyn Fn(&OpBench) -> usize| {
        out += &format!("| {name} (MB, serialized) |");
        for r in results {
            out += &format!(" {:.2} |", f(r) as f64 / 1e6);
        }
        out.push('\n');
    };
    size_row("fresh ciphertext", &|r| r.ciphertext_bytes);
    size_row("seeded ciphertext", &|r| r.seeded_ciphertext_bytes);
    size_row("Galois key, one step", &|r| r.galois_key_bytes_per_step);
    size_row("relinearization key", &|r| r.relin_key_bytes);
    out
}

/// One packing benchmark: a model of the paper's architecture with random weights, one run.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct PackingBench {
    pub arch: String,
    pub activation: String,
    pub packing: PackingId,
    pub threads: usize,
    pub params: CkksParams,
    pub depth: usize,
    pub images_per_run: usize,
    pub keygen_s: f64,
    /// Server-side seconds of the measured run (the median of runs 2..`runs`).
    pub latency_s: f64,
    pub per_image_s: f64,
    pub stages: Vec<crate::he::packing::Stage>,
    pub totals: crate::he::counts::OpTally,
    pub peak_rss_mb: Option<f64>,
    pub evaluation_keys_mb: f64,
    /// Weight plaintexts encoded once per model (`channel-fast`), MB.
    #[serde(default)]
    pub stored_weights_mb: f64,
    /// Client-side seconds of the measured run: preprocessing, encoding and encrypting its
    /// inputs, decrypting and decoding its outputs.
    #[serde(default)]
    pub client_s: f64,
    /// Private mode's upload per image (MB): seeded input ciphertexts, measured for the plan.
    #[serde(default)]
    pub upload_per_image_mb: f64,
    /// Images per second of the measured run, client side included.
    #[serde(default)]
    pub images_per_s: f64,
    pub max_abs_error: f64,
}

/// One packing benchmark configuration.
#[derive(Clone, Debug)]
pub struct PackingConfig {
    pub arch: crate::model::arch::Arch,
    pub activation: String,
    pub packing: PackingId,
    pub threads: usize,
    /// Consecutive runs in one process; the median of runs 2.. is reported (the paper reports
    /// runs 2–4).
    pub runs: usize,
    /// Images per batch-axis run (default: a full batch).
    pub batch_images: Option<usize>,
    /// A fixed CKKS scale (default: the planner's search).
    pub scale_bits: Option<u32>,
}

/// Benchmarks `c.packing` on a random `c.arch` model with `c.activation` on `c.threads` threads.
pub fn bench_packing(c: &PackingConfig) -> std::result::Result<PackingBench, BenchError> {
    use crate::he::infer::{RunReport, Session};
    let (arch, activation, packing) = (c.arch, c.activation.as_str(), c.packing);
    let pool = crate::pool::threads(c.threads)?;
    pool.install(|| {
        let model = crate::model::arch::random_model(arch, activation, None, 0)?;
        let keygen = Instant::now();
        let session = Session::new(model, packing, c.scale_bits)?;
        let keygen_s = keygen.elapsed().as_secs_f64();
        let keys_mb = session.worker.evaluation_keys().uncompressed_size()? as f64 / 1e6;
        // peak memory of the runs, with the keys resident (key generation's own peak left out)
        reset_peak_rss();
        let n = c
            .batch_images
            .unwrap_or(session.plan().images_per_run)
            .min(session.plan().images_per_run);
        let images = synthetic_images(session.owner.model.input, n);
        let indices: Vec<usize> = (0..n).collect();
        let mut runs = Vec::new();
        for r in 0..c.runs.max(1) {
            log::info!(
                "{} {activation} {packing} on {} thread(s): run {}",
                arch.name(),
                c.threads,
                r + 1
            );
            let start = Instant::now();
            let run = session.classify_run(&images, &indices)?;
            runs.push((run, start.elapsed().as_secs_f64()));
        }
        // the median of the runs after the first (which also warms caches), as the paper
        // reports runs 2–4; of an even number, the slower middle one
        let mut timed: Vec<_> = runs.into_iter().skip(usize::from(c.runs > 1)).collect();
        timed.sort_by(|a, b| {
            let seconds = |r: &(_, RunReport)| r.1.evaluation.seconds;
            seconds(&a.0).total_cmp(&seconds(&b.0))
        });
        let (
            (
                records,
                RunReport {
                    evaluation: eval,
                    client,
                },
            ),
            wall_s,
        ) = timed.swap_remove(timed.len() / 2);
        Ok(PackingBench {
            arch: arch.name().to_string(),
            activation: activation.to_string(),
            packing,
            threads: c.threads,
            params: session.plan().params.clone(),
            depth: session.plan().depth,
            images_per_run: n,
            keygen_s,
            latency_s: eval.seconds,
            per_image_s: eval.seconds / n as f64,
            stages: eval.stages,
            totals: eval.totals,
            peak_rss_mb: peak_rss_mb(),
            evaluation_keys_mb: keys_mb,
            stored_weights_mb: session.worker.stored_plaintexts().1 as f64 / 1e6,
            client_s: client.encrypt_s + client.decrypt_s,
            upload_per_image_mb: crate::private::inputs::upload(session.plan())?.per_image_bytes
                / 1e6,
            images_per_s: n as f64 / wall_s,
            max_abs_error: records.iter().map(|r| r.max_abs_error).fold(0.0, f64::max),
        })
    })
}

/// Runs [`bench_packing`] for one configuration in a child `hejob bench-packings` process, so
/// that the peak memory it reports is its own.
pub fn bench_packing_in_child(c: &PackingConfig) -> std::result::Result<PackingBench, BenchError> {
    let (arch, activation, packing, threads) = (c.arch, &c.activation, &c.packing, c.threads);
    let exe = std::env::current_exe().map_err(BenchError::Spawn)?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "bench-packings",
        "--json",
        "--arch",
        arch.name(),
        "--activations",
        activation,
    ])
    .args([
        "--packings",
        &packing.to_string(),
        "--threads",
        &threads.to_string(),
        "--runs",
        &c.runs.to_string(),
    ])
    .stderr(std::process::Stdio::inherit());
    if let Some(n) = c.batch_images {
        cmd.args(["--batch-images", &n.to_string()]);
    }
    if let Some(s) = c.scale_bits {
        cmd.args(["--scale-bits", &s.to_string()]);
    }
    let out = cmd.output().map_err(BenchError::Spawn)?;
    if !out.status.success() {
        return Err(BenchError::Failed(format!(
            "{} {activation} {packing} on {threads} thread(s)",
            arch.name()
        )));
    }
    let mut parsed: Vec<PackingBench> = serde_json::from_slice(&out.stdout)?;
    parsed.pop().ok_or(BenchError::NoResult)
}

/// Deterministic pseudo-random pixel bytes (benchmarks measure cost, not accuracy).
fn synthetic_images(shape: crate::model::Shape, n: usize) -> crate::data::Images {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let pixels = (0..n * shape.len())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect();
    crate::data::Images {
        shape,
        pixels,
        labels: vec![0; n],
    }
}

/// The packing benchmarks as markdown: a summary table and a per-stage table. `vs channel` is
/// the `channel` packing's per-image time over this row's, for the same network, activation
/// and threads when both were measured.
pub fn packing_markdown(results: &[PackingBench]) -> String {
    let mut out = String::from(
        "| network | activation | packing | threads | N, scale | depth | images/run | latency (s) | per image (s) | vs channel | client (s) | upload/image (MB) | images/s | HMulPlain | HSquare | rotations | rescales | keygen (s) | eval keys (MB) | stored weights (MB) | peak RSS (MB) | max logit error |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        let faithful = results.iter().find(|f| {
            f.packing == PackingId::Channel
                && (&f.arch, &f.activation, f.threads) == (&r.arch, &r.activation, r.threads)
        });
        let ratio = faithful.map_or(String::new(), |f| {
            format!("{:.1}×", f.per_image_s / r.per_image_s)
        });
        out += &format!(
            "| {} | {} | {} | {} | {}, 2^{} | {} | {} | {:.2} | {:.4} | {ratio} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {:.1} | {:.0} | {:.0} | {} | {:.1e} |\n",
            r.arch,
            r.activation,
            r.packing,
            r.threads,
            r.params.poly_modulus_degree,
            r.params.scale_bits,
            r.depth,
            r.images_per_run,
            r.latency_s,
            r.per_image_s,
            r.client_s,
            r.upload_per_image_mb,
            r.images_per_s,
            r.totals.hmulplain,
            r.totals.hsquare,
            r.totals.rotation,
            r.totals.rescale,
            r.keygen_s,
            r.evaluation_keys_mb,
            r.stored_weights_mb,
            r.peak_rss_mb.map_or("n/a".into(), |m| format!("{m:.0}")),
            r.max_abs_error
        );
    }
    out += "\nPer-stage time (s) of each run above:\n\n| network | activation | packing | threads | stages |\n|---|---|---|---:|---|\n";
    for r in results {
        let stages: Vec<String> = r
            .stages
            .iter()
            .map(|s| format!("{} {:.2}", s.name, s.seconds))
            .collect();
        out += &format!(
            "| {} | {} | {} | {} | {} |\n",
            r.arch,
            r.activation,
            r.packing,
            r.threads,
            stages.join(", ")
        );
    }
    out
}
