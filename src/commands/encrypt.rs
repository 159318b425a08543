//! `hejob encrypt`: private mode's upload, made on the key owner's machine.

use crate::cli::{EncryptArgs, ProbeKind};
use crate::data;
use crate::model::file;
use crate::private::{inputs, KeysError, OwnerKeys};
use crate::Error;

/// Encrypts the selected test images and says how much goes to the cluster.
pub fn run(a: EncryptArgs) -> Result<(), Error> {
    let owner = OwnerKeys::open(&a.keys)?;
    let model_path = a.model.unwrap_or_else(|| owner.manifest.model.clone());
    super::isolate::probe(ProbeKind::Model, &model_path)?;
    let model = file::load(&model_path)?;
    if model.dataset != a.dataset {
        return Err(KeysError::at(
            &model_path,
            format!("a {} model, not a {} one", model.dataset, a.dataset),
        )
        .into());
    }
    let md5 = data::checksums::md5_file(&model_path)?;
    let images = a
        .dataset
        .load_test(&data::resolve_dir(a.data_dir.as_deref()))?;
    let indices = super::select_images(images.len(), a.offset, a.limit, a.images)?;
    let w = inputs::write(&a.out, &owner, &model_path, &md5, &model, &images, &indices)?;
    let per_image = |s: f64| 1e3 * s / w.images.max(1) as f64;
    println!(
        "{}: {} images in {} runs of {}, {:.1} MB of ciphertexts ({:.2} MB per image), \
         encrypted in {:.1} s ({:.3} s per image)",
        a.out.display(),
        w.images,
        w.runs,
        owner.manifest.packing,
        w.bytes as f64 / 1e6,
        w.bytes as f64 / 1e6 / w.images.max(1) as f64,
        w.seconds,
        w.seconds / w.images.max(1) as f64
    );
    println!(
        "per image: preprocessing {:.1} ms and writing {:.1} ms (wall); encoding {:.1} ms, \
         encryption {:.1} ms, serialization {:.1} ms (thread time, {} threads)",
        per_image(w.preprocess_s),
        per_image(w.write_s),
        per_image(w.encode_s),
        per_image(w.encrypt_s),
        per_image(w.serialize_s),
        rayon::current_num_threads()
    );
    Ok(())
}
