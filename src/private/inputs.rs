//! The encrypted inputs file (HDF5) that the key owner uploads: each run's ciphertexts as the
//! packing lays them out, encrypted with the secret key and seeded (about half the bytes of a
//! public-key ciphertext), with the images' test-set indices (never their pixels or labels),
//! the plan's digest, the model's MD5 and the key id.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hdf5::types::VarLenArray;

use super::folder::{KeysError, Manifest, OwnerKeys};
use crate::data::{Dataset, Images};
use crate::he::exec::level_scales;
use crate::he::packing::{self, PackingId};
use crate::he::plan::Plan;
use crate::he::{plan, HeError, Network};
use crate::model::file::{read_str, read_u64, write_str};
use crate::model::Model;
use crate::seal::{Ciphertext, Client, Context};

const FORMAT: &str = "hejob-inputs";
const VERSION: u64 = 1;

/// What an inputs file was made for, and which images it holds in which runs.
#[derive(Clone, Debug, PartialEq)]
pub struct InputsHead {
    pub key_id: String,
    pub model_md5: String,
    pub dataset: Dataset,
    pub packing: PackingId,
    pub plan_digest: String,
    /// Test-set indices, run after run.
    pub index: Vec<usize>,
    /// The number of images in each run.
    pub run_images: Vec<usize>,
    pub ciphertexts_per_run: usize,
}

/// What the key owner uploads under a plan, measured: one seeded input ciphertext encrypted
/// under a throwaway key, then per run and per image.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Upload {
    pub ciphertext_bytes: u64,
    pub per_run_bytes: u64,
    pub per_image_bytes: f64,
}

/// Measures [`Upload`] for `plan` (a throwaway key pair of its parameters; no image).
pub fn upload(plan: &Plan) -> Result<Upload, HeError> {
    let ctx = Context::new(&plan.params)?;
    let client = Client::new(ctx.clone())?;
    let top = ctx.top_level();
    let scale = level_scales(&ctx)?[top];
    let zeros = vec![0.0; ctx.slots()];
    let bytes = client.encrypt_seeded(&zeros, top, scale)?.to_bytes()?.len() as u64;
    let per_run = bytes * plan.input_ciphertexts as u64;
    Ok(Upload {
        ciphertext_bytes: bytes,
        per_run_bytes: per_run,
        per_image_bytes: per_run as f64 / plan.images_per_run as f64,
    })
}

/// What [`write`] wrote, and where its time went.
#[derive(Clone, Copy, Debug)]
pub struct Written {
    pub images: usize,
    pub runs: usize,
    /// Bytes of ciphertexts (the file adds a little).
    pub bytes: u64,
    /// Wall-clock seconds of the whole write.
    pub seconds: f64,
    /// Thread-seconds (summed over the threads that ran them in parallel) of encoding,
    /// encrypting and serializing the ciphertexts.
    pub encode_s: f64,
    pub encrypt_s: f64,
    pub serialize_s: f64,
    /// Wall-clock seconds of preprocessing the images and writing the HDF5 file.
    pub preprocess_s: f64,
    pub write_s: f64,
}

/// Thread-time of one phase, added to from parallel threads.
#[derive(Default)]
struct Phase(std::sync::atomic::AtomicU64);

impl Phase {
    /// Runs `f`, adding its duration.
    fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.0.fetch_add(
            start.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        out
    }

    fn seconds(&self) -> f64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9
    }
}

/// Encrypts `images[indices]` in runs of the keys' plan with the owner's secret key and writes
/// them to `out` (through `out.tmp` and a rename). `out` must not exist; `model` (read from
/// `model_path`, whose contents have `model_md5`) must be the model the keys were made for.
pub fn write(
    out: &Path,
    owner: &OwnerKeys,
    model_path: &Path,
    model_md5: &str,
    model: &Model,
    images: &Images,
    indices: &[usize],
) -> Result<Written, KeysError> {
    if out.exists() {
        return Err(KeysError::at(
            out,
            "exists: hejob encrypt never writes over a file",
        ));
    }
    let m = &owner.manifest;
    let at_model = |e: &dyn ToString| KeysError::at(model_path, e.to_string());
    let net = Network::from_model(model).map_err(|e| at_model(&e))?;
    let plan = plan::plan(m.packing, &net, m.scale_bits).map_err(|e| at_model(&e))?;
    m.check(model_md5, &plan).map_err(|why| at_model(&why))?;
    let tmp = PathBuf::from(format!("{}.tmp", out.display()));
    let result = write_file(&tmp, owner, &net, &plan, model_md5, model, images, indices);
    match result {
        Ok(written) => {
            std::fs::rename(&tmp, out).map_err(|e| KeysError::at(out, e))?;
            Ok(written)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_file(
    path: &Path,
    owner: &OwnerKeys,
    net: &Network,
    plan: &Plan,
    model_md5: &str,
    model: &Model,
    images: &Images,
    indices: &[usize],
) -> Result<Written, KeysError> {
    let fail = |e: &dyn ToString| KeysError::at(path, e.to_string());
    let start = Instant::now();
    let runs: Vec<&[usize]> = indices.chunks(plan.images_per_run).collect();
    let per_run = plan.input_ciphertexts;
    let f = hdf5::File::create(path).map_err(|e| fail(&e))?;
    let m = &owner.manifest;
    let strings = [
        ("format", FORMAT),
        ("key_id", &m.key_id),
        ("model_md5", model_md5),
        ("dataset", model.dataset.name()),
        ("packing", m.packing.name()),
        ("plan_digest", &m.plan_digest),
    ];
    for (name, value) in strings {
        write_str(&f, name, value).map_err(|e| fail(&e))?;
    }
    for (name, value) in [
        ("format_version", VERSION),
        ("ciphertexts_per_run", per_run as u64),
    ] {
        f.new_attr::<u64>()
            .create(name)
            .and_then(|a| a.write_scalar(&value))
            .map_err(|e| fail(&e))?;
    }
    let index: Vec<u64> = indices.iter().map(|&i| i as u64).collect();
    let run_images: Vec<u64> = runs.iter().map(|r| r.len() as u64).collect();
    for (name, data) in [("index", &index), ("run_images", &run_images)] {
        f.new_dataset_builder()
            .with_data(&data[..])
            .create(name)
            .map_err(|e| fail(&e))?;
    }
    let ds = f
        .new_dataset::<VarLenArray<u8>>()
        .shape(runs.len() * per_run)
        .create("ciphertexts")
        .map_err(|e| fail(&e))?;
    let client = &owner.client;
    let encoder = client.encryptor().encoder();
    let (encode, encrypt, serialize) = (Phase::default(), Phase::default(), Phase::default());
    let (preprocess, write) = (Phase::default(), Phase::default());
    let mut bytes = 0u64;
    for (r, run) in runs.iter().enumerate() {
        let inputs: Vec<Vec<f64>> = preprocess.time(|| {
            run.iter()
                .map(|&i| model.preprocess.apply(model.input, images.image(i)))
                .collect()
        });
        let cts = packing::encrypt_run_with(
            client.context(),
            m.packing,
            net,
            &inputs,
            |v, level, scale| {
                let plain = encode.time(|| encoder.encode(v, level, scale))?;
                let ct = encrypt.time(|| client.encrypt_plain_seeded(&plain))?;
                serialize.time(|| ct.to_bytes())
            },
        )
        .map_err(|e| fail(&e))?;
        if cts.len() != per_run {
            return Err(fail(&format!(
                "run {r} laid out {} ciphertexts, the plan {per_run}",
                cts.len()
            )));
        }
        // each ciphertext's bytes freed as soon as they are copied into the row HDF5 writes
        let rows: Vec<VarLenArray<u8>> = cts
            .into_iter()
            .map(|c| {
                bytes += c.len() as u64;
                VarLenArray::from_slice(&c)
            })
            .collect();
        write
            .time(|| ds.write_slice(&rows, r * per_run..(r + 1) * per_run))
            .map_err(|e| fail(&e))?;
        log::debug!("encrypted run {}/{}", r + 1, runs.len());
    }
    write.time(|| f.close()).map_err(|e| fail(&e))?;
    Ok(Written {
        images: indices.len(),
        runs: runs.len(),
        bytes,
        seconds: start.elapsed().as_secs_f64(),
        encode_s: encode.seconds(),
        encrypt_s: encrypt.seconds(),
        serialize_s: serialize.seconds(),
        preprocess_s: preprocess.seconds(),
        write_s: write.seconds(),
    })
}

/// An inputs file opened on the evaluating side.
pub struct Inputs {
    path: PathBuf,
    pub head: InputsHead,
    ciphertexts: hdf5::Dataset,
}

impl Inputs {
    /// Opens and checks the layout of an inputs file.
    pub fn open(path: &Path) -> Result<Self, KeysError> {
        let fail = |e: &dyn ToString| KeysError::at(path, e.to_string());
        let f = hdf5::File::open(path).map_err(|_| fail(&"not a readable HDF5 file"))?;
        let format = read_str(&f, "format").map_err(|e| fail(&e))?;
        if format != FORMAT {
            return Err(fail(&format!("holds {format}, not encrypted inputs")));
        }
        let number = |name: &str| read_u64(&f, name).map_err(|e| fail(&e));
        let version = number("format_version")?;
        if version != VERSION {
            return Err(fail(&format!(
                "inputs layout version {version}; this hejob reads version {VERSION}"
            )));
        }
        let string = |name: &str| read_str(&f, name).map_err(|e| fail(&e));
        let list = |name: &str| -> Result<Vec<usize>, KeysError> {
            Ok(f.dataset(name)
                .and_then(|d| d.read_raw::<u64>())
                .map_err(|_| fail(&format!("unreadable dataset '{name}'")))?
                .into_iter()
                .map(|v| v as usize)
                .collect())
        };
        let head = InputsHead {
            key_id: string("key_id")?,
            model_md5: string("model_md5")?,
            dataset: string("dataset")?.parse().map_err(|e| fail(&e))?,
            packing: string("packing")?.parse().map_err(|e| fail(&e))?,
            plan_digest: string("plan_digest")?,
            index: list("index")?,
            run_images: list("run_images")?,
            ciphertexts_per_run: number("ciphertexts_per_run")? as usize,
        };
        if head.run_images.contains(&0) {
            return Err(fail(&"it has a run without images"));
        }
        if head.run_images.iter().sum::<usize>() != head.index.len() {
            return Err(fail(&"its runs do not add up to its images"));
        }
        let ciphertexts = f
            .dataset("ciphertexts")
            .map_err(|_| fail(&"missing dataset 'ciphertexts'"))?;
        if ciphertexts.size() != head.run_images.len() * head.ciphertexts_per_run {
            return Err(fail(&"its ciphertexts do not fill its runs"));
        }
        Ok(Self {
            path: path.to_path_buf(),
            head,
            ciphertexts,
        })
    }

    /// The test-set indices of each run, in order.
    pub fn runs(&self) -> impl Iterator<Item = &[usize]> {
        let h = &self.head;
        h.run_images.iter().scan(0, |first, &n| {
            let run = &h.index[*first..*first + n];
            *first += n;
            Some(run)
        })
    }

    /// Whether these inputs were made with the keys of `manifest`.
    pub fn check(&self, manifest: &Manifest) -> Result<(), KeysError> {
        let h = &self.head;
        if h.key_id != manifest.key_id {
            return Err(KeysError::at(
                &self.path,
                format!(
                    "made with other keys (key id {}, the key folder's {})",
                    h.key_id, manifest.key_id
                ),
            ));
        }
        if h.plan_digest != manifest.plan_digest || h.model_md5 != manifest.model_md5 {
            return Err(KeysError::at(
                &self.path,
                "made for another model or plan than the key folder's",
            ));
        }
        Ok(())
    }

    /// The test-set indices of run `r` and its ciphertexts, each validated by SEAL against
    /// `context`.
    pub fn run(
        &self,
        context: &Context,
        r: usize,
    ) -> Result<(Vec<usize>, Vec<Ciphertext>), KeysError> {
        let fail = |e: &dyn ToString| KeysError::at(&self.path, e.to_string());
        let h = &self.head;
        let first: usize = h.run_images[..r].iter().sum();
        let images = h.index[first..first + h.run_images[r]].to_vec();
        let k = h.ciphertexts_per_run;
        let rows: Vec<VarLenArray<u8>> = self
            .ciphertexts
            .read_slice_1d(r * k..(r + 1) * k)
            .map_err(|e| fail(&e))?
            .to_vec();
        let cts = rows
            .iter()
            .map(|row| Ciphertext::from_bytes(context, row.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(&format!("run {r}: {e}")))?;
        Ok((images, cts))
    }
}
