//! `hejob plan`: the parameters, keys, counts and memory of an encrypted evaluation, before any
//! key exists.

use crate::cli::PlanArgs;
use crate::he::{plan, Network};
use crate::model::file;
use crate::private::inputs;
use crate::Error;

/// Plans and prints (a table, or the plan as JSON), with the private-mode upload measured.
pub fn run(a: PlanArgs) -> Result<(), Error> {
    let t = &a.target;
    let m = file::load(&t.model)?;
    let net = Network::from_model(&m)?;
    let p = plan::plan(t.packing, &net, t.precision.scale_bits)?;
    let up = inputs::upload(&p)?;
    if a.json {
        let mut json = serde_json::to_value(&p)?;
        json["upload"] = serde_json::to_value(up)?;
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
    }
    Ok(())
}
