//! `hejob plan`: the parameters, keys, counts and memory of an encrypted evaluation, before any
//! key exists.

use crate::cli::PlanArgs;
use crate::he::{plan, Network};
use crate::model::file;
use crate::Error;

/// Plans and prints (a table, or the plan as JSON).
pub fn run(a: PlanArgs) -> Result<(), Error> {
    let t = &a.target;
    let m = file::load(&t.model)?;
    let net = Network::from_model(&m)?;
    let p = plan::plan(t.packing, &net, t.precision.scale_bits)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print!("{}", plan::table(&p));
    }
    Ok(())
}
