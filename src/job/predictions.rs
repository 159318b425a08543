//! The HE-predictions file: what `hejob decrypt` writes when the test set is not at hand to
//! compare with (`docs/RESULT_FORMAT.md`): each image's index, decrypted logits and prediction,
//! and whose job and keys they came from. `hejob report` reads result files only.

use std::path::Path;

use super::sealed::Sealed;
use super::JobError;
use crate::he::packing::PackingId;
use crate::model::file::write_str;
use crate::model::plain::argmax;

/// The value of the root `format` attribute and the layout version.
pub const FORMAT: &str = "hejob-predictions";
pub const VERSION: u64 = 1;

/// A decrypted private-mode result without the plaintext comparison.
pub struct Predictions<'a> {
    /// The encrypted result it was decrypted from (job, fingerprint, model path, key id).
    pub sealed: &'a Sealed,
    pub packing: PackingId,
    /// Each image's test-set index and decrypted logits, in test-set order.
    pub images: &'a [(usize, Vec<f64>)],
}

impl Predictions<'_> {
    /// Writes the file to `path` through `path.tmp`.
    pub fn write(&self, path: &Path) -> Result<(), JobError> {
        super::results::write_file(path, |f| self.write_to(f).map_err(|e| e.to_string()))
    }

    fn write_to(&self, f: &hdf5::File) -> hdf5::Result<()> {
        self.sealed.job.write_attrs(f)?;
        for (name, value) in [
            ("format", FORMAT),
            ("packing", self.packing.name()),
            ("key_id", &self.sealed.key_id),
        ] {
            write_str(f, name, value)?;
        }
        f.new_attr::<u64>()
            .create("format_version")?
            .write_scalar(&VERSION)?;
        let index: Vec<i64> = self.images.iter().map(|(i, _)| *i as i64).collect();
        let pred: Vec<i64> = self.images.iter().map(|(_, l)| argmax(l) as i64).collect();
        f.new_dataset_builder()
            .with_data(&index[..])
            .create("index")?;
        f.new_dataset_builder()
            .with_data(&pred[..])
            .create("he_pred")?;
        let classes = self.images.first().map_or(0, |(_, l)| l.len());
        let flat: Vec<f64> = self.images.iter().flat_map(|(_, l)| l.clone()).collect();
        let logits = ndarray::Array2::from_shape_vec((self.images.len(), classes), flat)
            .map_err(|e| hdf5::Error::from(e.to_string()))?;
        f.new_dataset_builder()
            .with_data(&logits)
            .create("he_logits")?;
        Ok(())
    }
}
