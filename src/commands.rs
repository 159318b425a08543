//! What each command does once parsed: glue from the CLI to the modules, and printing.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::{Cli, Command, DatasetsCommand, ModelCommand};
use crate::data::{self, checksums, fetch, Dataset};
use crate::job::{self, config::Overrides};
use crate::model::{arch, file, plain, poly, recalibrate, LayerKind};
use crate::{bench, he, Error};

/// Runs one parsed command line: a job (`--config`) or a subcommand.
pub fn run(cli: Cli) -> Result<(), Error> {
    let command = match (cli.command, cli.config) {
        (Some(c), _) => c,
        (None, Some(config)) => {
            let overrides = Overrides {
                limit: cli.limit,
                offset: cli.offset,
                output: cli.output,
                threads: cli.threads,
            };
            job::runner::run(&config, &overrides)?;
            return Ok(());
        }
        (None, None) => {
            return Err(Error::Usage(
                "give --config FILE or a command (see --help)".into(),
            ))
        }
    };
    match command {
        Command::Fit {
            function,
            range,
            degree,
            json,
        } => {
            if !(range.is_finite() && range > 0.0) || degree > 12 {
                return Err(Error::Usage(format!(
                    "fit needs a positive finite --range and --degree of at most 12 (got {range}, {degree})"
                )));
            }
            let c = poly::fit(function, range, degree);
            if json {
                println!("{}", json!({ "coefficients": c }));
            } else {
                let terms: Vec<String> = c
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(k, v)| match k {
                        0 => format!("{v:+.6}"),
                        1 => format!("{v:+.6}x"),
                        _ => format!("{v:+.6}x^{k}"),
                    })
                    .collect();
                println!("{}", terms.join(" "));
            }
        }
        Command::Model(ModelCommand::New { net, seed, out }) => {
            let model = arch::random_model(net.arch, &net.activation, net.conv2_channels, seed)?;
            file::save(&model, &out)?;
            log::info!("wrote {} ({} layers)", out.display(), model.layers.len());
        }
        Command::Model(ModelCommand::Info { model }) => {
            let m = file::load(&model)?;
            let shapes = m.validate()?;
            println!(
                "{} — {} input {}, {} classes",
                model.display(),
                m.dataset,
                m.input,
                m.classes.len()
            );
            let mut params = 0;
            for (layer, shape) in m.layers.iter().zip(&shapes) {
                let n = match &layer.kind {
                    LayerKind::Conv(c) => c.weight.len() + c.bias.len(),
                    LayerKind::Dense(d) => d.weight.len() + d.bias.len(),
                    LayerKind::BatchNorm(b) => b.gamma.len() * 2,
                    _ => 0,
                };
                params += n;
                println!(
                    "  {:<12} {:<15} -> {shape}  ({n} parameters)",
                    layer.name,
                    layer.kind_name()
                );
            }
            println!("  total trainable parameters: {params}");
            for (k, v) in &m.provenance {
                println!("  {k}: {v}");
            }
        }
        Command::Eval {
            model,
            limit,
            data_dir,
            logit_error,
            json,
        } => {
            let m = file::load(&model)?;
            let dir = data::resolve_dir(data_dir.as_deref());
            let images = m.dataset.load_test(&dir)?;
            if let Some(l) = limit.filter(|&l| l > images.len()) {
                return Err(Error::Usage(format!(
                    "--limit {l} is beyond the {} images of the {} test set",
                    images.len(),
                    m.dataset
                )));
            }
            if let Some(e) = logit_error.filter(|e| !(e.is_finite() && *e >= 0.0)) {
                return Err(Error::Usage(format!(
                    "--logit-error {e} must be a finite number ≥ 0"
                )));
            }
            let start = Instant::now();
            let n = limit.unwrap_or(images.len());
            let logits = plain::logits(&m, &images, 0..n);
            let accuracy = plain::share_correct(&logits, &images.labels);
            let seconds = start.elapsed().as_secs_f64();
            let margins: Vec<f64> = logits.iter().map(|l| plain::margin(l)).collect();
            let at_risk: Vec<usize> = logit_error.map_or_else(Vec::new, |e| {
                (0..n).filter(|&i| margins[i] <= 2.0 * e).collect()
            });
            let smallest = margins.iter().copied().fold(f64::INFINITY, f64::min);
            if json {
                let mut out = json!({ "model": model, "dataset": m.dataset, "images": n, "accuracy": accuracy, "seconds": seconds, "smallest_margin": smallest });
                if let Some(e) = logit_error {
                    out["logit_error"] = json!(e);
                    out["at_risk"] = at_risk
                        .iter()
                        .map(|&i| json!({ "index": i, "margin": margins[i], "label": images.labels[i], "plain_pred": plain::argmax(&logits[i]) }))
                        .collect();
                }
                println!("{out}");
            } else {
                println!(
                    "{}: plain accuracy {:.2}% on {n} {} test images ({seconds:.2} s); smallest top-2 logit margin {smallest:.3e}",
                    model.display(),
                    accuracy * 100.0,
                    m.dataset
                );
                if let Some(e) = logit_error {
                    println!(
                        "{} image(s) have their two largest logits within 2×{e:e}: an encrypted run whose logit errors stay below {e:e} classifies at least {:.2}% of the images as the plain network does{}",
                        at_risk.len(),
                        100.0 * (n - at_risk.len()) as f64 / n.max(1) as f64,
                        if at_risk.is_empty() {
                            String::new()
                        } else {
                            let shown: Vec<String> =
                                at_risk.iter().take(20).map(usize::to_string).collect();
                            let more = if at_risk.len() > 20 { ", …" } else { "" };
                            format!(" (at risk: {}{more})", shown.join(", "))
                        }
                    );
                }
            }
        }
        Command::Plan {
            model,
            packing,
            precision,
            json,
        } => {
            let m = file::load(&model)?;
            let net = he::Network::from_model(&m)?;
            let plan = he::plan::plan(he::packing::by_name(&packing)?, &net, precision.scale_bits)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", he::plan::table(&plan));
            }
        }
        Command::Report { files, out } => {
            for path in crate::report::report(&files, &out)? {
                println!("wrote {}", path.display());
            }
        }
        Command::Datasets(DatasetsCommand::Check { dir, json }) => {
            let mut all = Vec::new();
            for d in Dataset::ALL {
                all.extend(checksums::check(&dir, d)?);
            }
            let bad = all
                .iter()
                .filter(|c| c.status != checksums::Status::Ok)
                .count();
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for c in &all {
                    println!(
                        "{:<8} {:?}  {}",
                        c.dataset.name(),
                        c.status,
                        c.path.display()
                    );
                }
            }
            if bad > 0 {
                return Err(Error::Usage(format!(
                    "{bad} dataset file(s) under {} are missing or fail their checksum",
                    dir.display()
                )));
            }
        }
        Command::Datasets(DatasetsCommand::Fetch {
            dir,
            mnist_url,
            cifar10_url,
            dataset,
        }) => {
            let sources = fetch::Sources {
                mnist: mnist_url,
                cifar10: cifar10_url,
            };
            for d in dataset.map_or(Dataset::ALL.to_vec(), |d| vec![d]) {
                fetch::fetch(&dir, d, &sources)?;
            }
        }
        Command::BenchPackings {
            arch,
            activations,
            packings,
            threads,
            runs,
            batch_images,
            precision,
            json,
        } => {
            let mut configs = Vec::new();
            for &arch in &arch {
                for activation in &activations {
                    for packing in &packings {
                        for &threads in &threads {
                            configs.push(bench::PackingConfig {
                                arch,
                                activation: activation.clone(),
                                packing: packing.clone(),
                                threads,
                                runs,
                                batch_images,
                                scale_bits: precision.scale_bits,
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
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                print!("{}", bench::packing_markdown(&results));
            }
        }
        Command::Infer {
            model,
            packing,
            limit,
            offset,
            images: chosen,
            data_dir,
            precision,
            json,
        } => {
            let m = file::load(&model)?;
            let images = m
                .dataset
                .load_test(&data::resolve_dir(data_dir.as_deref()))?;
            let indices: Vec<usize> = if chosen.is_empty() {
                (offset..offset + limit).collect()
            } else {
                chosen
            };
            if let Some(&i) = indices.iter().find(|&&i| i >= images.len()) {
                return Err(Error::Usage(format!(
                    "image {i} is beyond the {} test images",
                    images.len()
                )));
            }
            let session =
                he::infer::Session::new(m, he::packing::by_name(&packing)?, precision.scale_bits)?;
            let (records, evals) = session.classify(&images, &indices)?;
            if json {
                println!(
                    "{}",
                    json!({ "plan": session.plan(), "images": records, "runs": evals })
                );
            } else {
                for r in &records {
                    println!(
                        "image {:>5}  label {}  plain {}  he {}  max |error| {:.2e}  latency {:.2} s",
                        r.index, r.label, r.plain_pred, r.he_pred, r.max_abs_error, r.latency_s
                    );
                }
                let agree = records.iter().filter(|r| r.he_pred == r.plain_pred).count();
                println!(
                    "{agree}/{} HE predictions equal the plain ones",
                    records.len()
                );
            }
        }
        Command::Recalibrate {
            model,
            out,
            limit,
            data_dir,
        } => {
            let mut m = file::load(&model)?;
            let dir = data::resolve_dir(data_dir.as_deref());
            let train = m.dataset.load_train(&dir)?;
            let test = m.dataset.load_test(&dir)?;
            let (_, before) = plain::accuracy(&m, &test, None);
            let n = recalibrate::batch_norm_statistics(&mut m, &train, limit);
            let after = plain::record_accuracy(&mut m, &test);
            file::save(&m, &out)?;
            println!(
                "{}: batch-norm statistics from {n} training images; plain test accuracy {:.2}% → {:.2}%; wrote {}",
                model.display(),
                100.0 * before,
                100.0 * after,
                out.display()
            );
        }
        #[cfg(feature = "train")]
        Command::Train {
            net,
            init,
            out,
            epochs,
            training,
        } => {
            crate::train::command::train(&net, init, &out, epochs, &training)?;
        }
        #[cfg(feature = "train")]
        Command::Prune {
            model,
            layer,
            ratio,
            out,
            epochs,
            training,
        } => {
            crate::train::command::prune(&model, &layer, ratio, &out, epochs, &training)?;
        }
        #[cfg(feature = "train")]
        Command::Retrain {
            model,
            out,
            epochs,
            training,
        } => {
            crate::train::command::retrain(&model, &out, epochs, &training)?;
        }
        Command::BenchOps {
            degrees,
            seconds,
            json,
        } => {
            let budget = Duration::from_secs_f64(seconds);
            let mut results = Vec::new();
            for n in degrees {
                let params = bench::default_params(n)?;
                log::info!("benchmarking N={n}, primes {:?}", params.coeff_modulus_bits);
                results.push(bench::bench_ops(&params, budget)?);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                print!("{}", bench::markdown(&results));
            }
        }
    }
    Ok(())
}
