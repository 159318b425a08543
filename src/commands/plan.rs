//! `hejob plan`: the parameters, keys, counts and memory of an encrypted evaluation, and what a
//! job layout would achieve (the cost model), before any key exists.

use crate::cli::PlanArgs;
use crate::error::UsageError;
use crate::he::cost::{self, Layout, OpCosts};
use crate::he::{plan, Network};
use crate::job::config::MAX_THREADS;
use crate::model::file;
use crate::private::inputs;
use crate::Error;

/// Plans and prints (a table, or the plan as JSON), with the private-mode upload measured and
/// the cost model's prediction for the layout asked for.
pub fn run(a: PlanArgs) -> Result<(), Error> {
    let layout = layout(&a)?;
    let t = &a.target;
    let m = file::load(&t.model)?;
    let net = Network::from_model(&m)?;
    let p = plan::plan(t.packing, &net, t.precision.scale_bits)?;
    let up = inputs::upload(&p)?;
    let costs = match &a.costs {
        Some(path) => OpCosts::read(path).map_err(crate::he::HeError::from)?,
        None => OpCosts::built_in(),
    };
    let prediction = cost::predict(&p, &net, &costs, &layout)?;
    if a.json {
        let mut json = serde_json::to_value(&p)?;
        json["upload"] = serde_json::to_value(up)?;
        json["prediction"] = serde_json::to_value(&prediction)?;
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", plan::table(&p));
        println!(
            "private-mode upload: {:.2} MB per image ({} seeded input ciphertext(s) of {:.2} MB per \
             run of {})",
            up.per_image_bytes / 1e6,
            p.input_ciphertexts,
            up.ciphertext_bytes as f64 / 1e6,
            p.images_per_run
        );
        print!("{}", cost::describe(&prediction));
    }
    Ok(())
}

/// The layout of the command line, checked.
fn layout(a: &PlanArgs) -> Result<Layout, UsageError> {
    let bad = |name: &'static str, value: String, want: &'static str| UsageError::Layout {
        name,
        value,
        want,
    };
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if !(1..=MAX_THREADS).contains(&threads) {
        return Err(bad("threads", threads.to_string(), "between 1 and 4096"));
    }
    for (name, v) in [("ranks", a.ranks), ("nodes", a.nodes), ("images", a.images)] {
        if v == 0 {
            return Err(bad(name, "0".into(), "at least 1"));
        }
    }
    let memory_bytes = match a.memory_gb {
        Some(g) if g.is_finite() && g > 0.0 => (g * 1e9) as u64,
        Some(g) => return Err(bad("memory-gb", g.to_string(), "a positive number")),
        None => cost::rank_memory(a.ranks).0,
    };
    Ok(Layout {
        threads,
        ranks: a.ranks,
        nodes: a.nodes,
        images: a.images,
        memory_bytes,
        flight: a.runs_in_flight,
    })
}
