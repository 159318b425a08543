//! The cost model: what a run costs on given threads (the planner's symbolic evaluation with
//! every operation charged its measured cost, parallel sections scheduled on the run's
//! threads), and from that what a job layout achieves: latency, images per second, wall time,
//! memory, and the number of runs in flight that finishes soonest within the memory budget.

pub mod table;
pub mod trace;

pub use table::{CostError, Op, OpCosts, Source};

use serde::{Deserialize, Serialize};

use super::packing::Stage;
use super::plan::{self, Plan};
use super::{HeError, Network};

/// Memory of a rank besides its runs and keys: the program, the test set, SEAL's pools
/// (measured: the peak of a 1-image MNIST job less its keys and run).
pub const BASE_BYTES: u64 = 150_000_000;

/// The share of its memory budget above which a rank is crowded: on this project's 24 GB
/// machine, a job holding 81 % of its memory once set up in four times its predicted time, the
/// kernel finding pages for it, and in the predicted time on another day (docs/BENCHMARKS.md).
/// The model has no term for that; a prediction above this share warns of it.
pub const CROWDED: f64 = 0.75;

/// How many runs a rank keeps in flight: `"auto"` or a number, in a job file and on the
/// command line alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "FlightText", into = "FlightText")]
pub enum Flight {
    /// The number the model predicts to finish soonest within the memory budget.
    #[default]
    Auto,
    /// This many (at most one per thread).
    Fixed(usize),
}

/// A job file's spelling of [`Flight`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum FlightText {
    Number(i64),
    Word(String),
}

impl TryFrom<FlightText> for Flight {
    type Error = String;
    fn try_from(t: FlightText) -> Result<Self, String> {
        match t {
            FlightText::Number(n) if n >= 1 => Ok(Flight::Fixed(n as usize)),
            FlightText::Number(n) => Err(format!("runs in flight {n} is not 1 or more")),
            FlightText::Word(w) => w.parse(),
        }
    }
}

impl From<Flight> for FlightText {
    fn from(f: Flight) -> Self {
        match f {
            Flight::Auto => FlightText::Word("auto".into()),
            Flight::Fixed(n) => FlightText::Number(n as i64),
        }
    }
}

impl std::str::FromStr for Flight {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Flight::Auto),
            _ => match s.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Flight::Fixed(n)),
                _ => Err(format!(
                    "runs in flight {s:?} is not \"auto\" or a number from 1 up"
                )),
            },
        }
    }
}

/// Each of a node's `ranks` ranks' share of the memory the node grants the job
/// ([`crate::sys::node_memory`]), and where the figure comes from; no limit when none is known.
pub fn rank_memory(ranks: usize) -> (u64, String) {
    let ranks = ranks.max(1) as u64;
    match crate::sys::node_memory() {
        Some((bytes, source)) => (bytes / ranks, format!("{source} / {ranks} rank(s)")),
        None => (u64::MAX, "no limit known".to_string()),
    }
}

/// A job's layout: what the model predicts for.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Threads per rank.
    pub threads: usize,
    /// Ranks per node.
    pub ranks: usize,
    pub nodes: usize,
    /// Test images in the job.
    pub images: usize,
    /// Each rank's memory budget in bytes.
    pub memory_bytes: u64,
    pub flight: Flight,
}

/// One choice of runs in flight, as the model sees it.
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    pub runs_in_flight: usize,
    pub threads_per_run: usize,
    /// Seconds of one run's evaluation on its threads (the result file's latency).
    pub latency_s: f64,
    /// Seconds of encrypting one run's inputs on its threads.
    pub encrypt_s: f64,
    /// Seconds of a rank's share of the job after its set-up.
    pub rank_s: f64,
    pub peak_rss_gb: f64,
    /// Whether its memory fits the budget.
    pub fits: bool,
    /// Whether its memory is above [`CROWDED`] of the budget.
    pub crowded: bool,
}

/// What the model predicts for a layout.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    /// Seconds of one run's evaluation (the result file's latency of a run).
    pub latency_s: f64,
    /// Seconds of encrypting one run's inputs (client work, inside each rank's time).
    pub encrypt_s: f64,
    /// Images per second of one rank, encryption included, set-up excluded.
    pub images_per_s: f64,
    pub images_per_s_node: f64,
    /// Images per second of all ranks together, from rank 0's first run to the last rank's
    /// end: what the runner's "all ranks" progress line reports. Below the ranks' sum by the
    /// later start of the other ranks, which still load the last key piece when rank 0 begins.
    pub images_per_s_job: f64,
    /// Seconds from start to the result file, set-up included.
    pub wall_s: f64,
    /// Seconds of set-up: keys generated (serially, on rank 0), sent to the other ranks
    /// (serialized and loaded), and weight plaintexts encoded.
    pub setup_s: f64,
    pub peak_rss_gb: f64,
    /// The peak's share of the memory budget; above [`CROWDED`], the set-up can take several
    /// times its prediction.
    pub memory_share: f64,
    pub runs_in_flight: usize,
    pub threads_per_run: usize,
    pub threads: usize,
    pub ranks_per_node: usize,
    pub nodes: usize,
    pub images: usize,
    pub images_per_run: usize,
    pub memory_budget_gb: f64,
    /// Every number of runs in flight considered.
    pub choices: Vec<Choice>,
    /// The stages of one run of the chosen layout, each with its operations and modelled
    /// seconds: together, its latency.
    pub stages: Vec<Stage>,
    /// Where the operation costs come from.
    pub costs: String,
}

/// Predicts what `layout` achieves for `plan` (of `net`) with the operation costs `costs`.
pub fn predict(
    plan: &Plan,
    net: &Network,
    costs: &OpCosts,
    layout: &Layout,
) -> Result<Prediction, HeError> {
    let threads = layout.threads.max(1);
    let n = plan.params.poly_modulus_degree;
    let top = plan.depth + 1;
    let ranks = (layout.ranks * layout.nodes).max(1);
    let rank_images = layout.images.div_ceil(ranks);
    let runs = rank_images.div_ceil(plan.images_per_run).max(1);
    let keygen = costs.seconds(Op::Keygen, n, top)? * (plan.rotation_steps.len() + 1) as f64;
    let fixed = BASE_BYTES + plan.memory.evaluation_keys_bytes + plan.memory.stored_plaintext_bytes;
    // in steady state every thread of the node's other runs is at work
    let node_threads = threads * layout.ranks.max(1);
    let per_input = costs.seconds(Op::Encode, n, top)? + costs.seconds(Op::Encrypt, n, top)?;
    // the runs in flight worth weighing: for each thread share, as many runs as get it (more
    // runs on the same share only finish sooner), never more than the rank's runs
    let candidates: std::collections::BTreeSet<usize> = match layout.flight {
        Flight::Auto => (1..=threads).map(|t| (threads / t).min(runs)).collect(),
        Flight::Fixed(f) => [f.clamp(1, threads)].into(),
    };
    type Known = (trace::Timing, Vec<Stage>, u64);
    let mut by_share: std::collections::BTreeMap<usize, Known> = Default::default();
    let mut choices = Vec::new();
    for flights in candidates {
        let t = threads / flights;
        let others = node_threads - t;
        let (timing, run_peak) = match by_share.entry(t) {
            std::collections::btree_map::Entry::Occupied(known) => (known.get().0, known.get().2),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let (timing, stages) = plan::run_timing(plan, net, costs, t, others)?;
                let peak = plan::run_peak_bytes(plan, net, t)?;
                slot.insert((timing, stages, peak));
                (timing, peak)
            }
        };
        let at_work = others + plan.input_ciphertexts.min(t);
        let encrypt_s = trace::makespan(&vec![per_input; plan.input_ciphertexts], t)
            * costs.slowdown(n, at_work);
        let peak = fixed + flights as u64 * run_peak;
        choices.push(Choice {
            runs_in_flight: flights,
            threads_per_run: t,
            latency_s: timing.seconds,
            encrypt_s,
            rank_s: runs.div_ceil(flights) as f64 * (timing.seconds + encrypt_s),
            peak_rss_gb: peak as f64 / 1e9,
            fits: peak <= layout.memory_bytes,
            crowded: peak as f64 > CROWDED * layout.memory_bytes as f64,
        });
    }
    // the soonest that fits; one run in flight when none does (or the number asked for)
    let best = choices
        .iter()
        .filter(|c| c.fits)
        .min_by(|a, b| a.rank_s.total_cmp(&b.rank_s))
        .or_else(|| choices.first())
        .expect("at least one choice")
        .clone();
    // the weights are encoded once per rank, on all its threads
    let store_setup = by_share
        .values()
        .next()
        .map_or(0.0, |(t, _, _)| t.setup / threads as f64);
    // every rank but the first loads the keys rank 0 serializes, piece by piece: rank 0
    // serializes a piece while the others load the one before, so the two halves overlap
    let transfer = match ranks {
        1 => 0.0,
        _ => costs.key_transfer(n, plan.memory.evaluation_keys_bytes) / 2.0,
    };
    // the other ranks begin a piece later: they load the last one (a Galois key set) while
    // rank 0 goes on to its runs
    let skew = match ranks {
        1 => 0.0,
        _ => {
            let steps = plan.rotation_steps.len() as u64;
            let set = (crate::seal::keys::STEPS_PER_SET as u64).min(steps);
            let piece = plan.memory.evaluation_keys_bytes * set / (steps + 1);
            costs.key_transfer(n, piece) / 2.0
        }
    };
    let setup_s = keygen + store_setup + transfer;
    let images_per_s = rank_images as f64 / best.rank_s;
    Ok(Prediction {
        latency_s: best.latency_s,
        encrypt_s: best.encrypt_s,
        images_per_s,
        images_per_s_node: images_per_s * layout.ranks as f64,
        images_per_s_job: layout.images as f64 / (best.rank_s + skew),
        wall_s: setup_s + skew + best.rank_s,
        setup_s,
        peak_rss_gb: best.peak_rss_gb,
        memory_share: best.peak_rss_gb * 1e9 / layout.memory_bytes as f64,
        runs_in_flight: best.runs_in_flight,
        threads_per_run: best.threads_per_run,
        threads,
        ranks_per_node: layout.ranks,
        nodes: layout.nodes,
        images: layout.images,
        images_per_run: plan.images_per_run,
        memory_budget_gb: layout.memory_bytes as f64 / 1e9,
        stages: by_share
            .remove(&best.threads_per_run)
            .map(|(_, stages, _)| stages)
            .unwrap_or_default(),
        choices,
        costs: costs.source.to_string(),
    })
}

/// Seconds as the largest sensible unit ("41 ms", "8.7 s", "3.2 h", "2.1 d").
pub fn duration(s: f64) -> String {
    match s {
        s if s < 1.0 => format!("{:.0} ms", s * 1e3),
        s if s < 120.0 => format!("{s:.1} s"),
        s if s < 7200.0 => format!("{:.1} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} d", s / 86_400.0),
    }
}

/// What a prediction whose peak crowds its budget warns of; `None` below [`CROWDED`].
pub fn crowding(p: &Prediction) -> Option<String> {
    (p.memory_share > CROWDED).then(|| {
        format!(
            "the peak is {:.0} % of the memory budget; above {:.0} % the set-up has taken \
             up to four times its predicted {} (the kernel finding pages), so leave room or \
             expect a longer start",
            p.memory_share * 100.0,
            CROWDED * 100.0,
            duration(p.setup_s)
        )
    })
}

/// The prediction in words and a table of the runs-in-flight choices.
pub fn describe(p: &Prediction) -> String {
    let mut out = format!(
        "predicted for {} image(s) on {} node(s) × {} rank(s) × {} threads ({}):\n",
        p.images, p.nodes, p.ranks_per_node, p.threads, p.costs
    );
    out += &format!(
        "  {} run(s) in flight × {} thread(s): {} per run of {} image(s) (+ {} encrypting), \
         {:.4} images/s per rank, {:.4} per node\n",
        p.runs_in_flight,
        p.threads_per_run,
        duration(p.latency_s),
        p.images_per_run,
        duration(p.encrypt_s),
        p.images_per_s,
        p.images_per_s_node
    );
    out += &format!(
        "  wall time {} (set-up {}), peak memory {:.2} GB per rank of a {:.1} GB budget\n",
        duration(p.wall_s),
        duration(p.setup_s),
        p.peak_rss_gb,
        p.memory_budget_gb
    );
    let stages: Vec<String> = p
        .stages
        .iter()
        .map(|s| format!("{} {}", s.name, duration(s.seconds)))
        .collect();
    out += &format!("  one run by stage: {}\n", stages.join(", "));
    if let Some(warning) = crowding(p) {
        out += &format!("  warning: {warning}\n");
    }
    out += "\n| runs in flight | threads per run | latency per run | rank's share | peak GB | fits |\n";
    out += "|---:|---:|---:|---:|---:|---|\n";
    for c in &p.choices {
        out += &format!(
            "| {} | {} | {} | {} | {:.2} | {} |\n",
            c.runs_in_flight,
            c.threads_per_run,
            duration(c.latency_s),
            duration(c.rank_s),
            c.peak_rss_gb,
            match (c.fits, c.crowded) {
                (false, _) => "no",
                (true, true) => "crowded",
                (true, false) => "yes",
            }
        );
    }
    out
}
