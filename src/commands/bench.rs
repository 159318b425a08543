//! `hejob bench-ops` and `hejob bench-packings`: the benchmarks that print numbers.

use std::time::Duration;

use crate::bench;
use crate::cli::{BenchOpsArgs, BenchPackingsArgs};
use crate::Error;

/// Times every CKKS operation at each ring degree; prints a table or JSON.
pub fn ops(a: BenchOpsArgs) -> Result<(), Error> {
    let budget = Duration::from_secs_f64(a.seconds);
    let mut results = Vec::new();
    for n in a.degrees {
        let params = bench::default_params(n)?;
        log::info!("benchmarking N={n}, primes {:?}", params.coeff_modulus_bits);
        results.push(bench::bench_ops(&params, budget)?);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", bench::markdown(&results));
    }
    Ok(())
}

/// Benchmarks every (architecture, activation, packing, threads) configuration, each in a
/// fresh process when there are several; prints a table or JSON.
pub fn packings(a: BenchPackingsArgs) -> Result<(), Error> {
    let mut configs = Vec::new();
    for &arch in &a.arch {
        for activation in &a.activations {
            for &packing in &a.packings {
                for &threads in &a.threads {
                    configs.push(bench::PackingConfig {
                        arch,
                        activation: activation.clone(),
                        packing,
                        threads,
                        runs: a.runs,
                        batch_images: a.batch_images,
                        scale_bits: a.precision.scale_bits,
                    });
                }
            }
        }
    }
    let mut results = Vec::new();
    for c in &configs {
        // several configurations: each in a fresh process, so its peak memory is its own
        let r = if configs.len() == 1 {
            bench::bench_packing(c)?
        } else {
            bench::bench_packing_in_child(c)?
        };
        eprint!("{}", bench::packing_markdown(std::slice::from_ref(&r)));
        results.push(r);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", bench::packing_markdown(&results));
    }
    Ok(())
}
