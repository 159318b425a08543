//! A key folder: `secret.key` (mode 0600, the only file with the secret), `public.key`,
//! `evaluation.keys` and `plan.json` (the plan the keys were made for, and the key id that
//! every file made with them carries).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::he::packing::PackingId;
use crate::he::plan::{self, Plan};
use crate::he::Network;
use crate::model::Model;
use crate::seal::{CkksParams, Client, Context, EvaluationKeys, PublicKey, SealError};

/// The file names inside a key folder.
pub const SECRET: &str = "secret.key";
pub const PUBLIC: &str = "public.key";
pub const EVALUATION: &str = "evaluation.keys";
pub const PLAN: &str = "plan.json";

const FORMAT: &str = "hejob-keys";
const VERSION: u32 = 1;
/// The largest JSON head a key file may declare.
const MAX_HEAD: u64 = 1 << 20;

/// A key folder that cannot be made or read: the file and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct KeysError {
    pub path: PathBuf,
    pub reason: String,
}

impl KeysError {
    pub(crate) fn at(path: &Path, reason: impl ToString) -> Self {
        Self {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// What a key folder was made for (`plan.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// The MD5 of the public key's bytes: it names the key pair in every file made with it.
    pub key_id: String,
    /// The model file, as named when the keys were made, and the MD5 of its contents.
    pub model: PathBuf,
    pub model_md5: String,
    pub dataset: Dataset,
    pub packing: PackingId,
    /// The fixed scale asked for, if any (else the planner's choice).
    pub scale_bits: Option<u32>,
    /// [`Plan::digest`] of the plan below.
    pub plan_digest: String,
    pub params: CkksParams,
    /// The whole plan, for reading.
    pub plan: serde_json::Value,
}

impl Manifest {
    /// Whether these keys were made for `plan` of the model whose contents have `model_md5`:
    /// a one-line reason where not.
    pub fn check(&self, model_md5: &str, plan: &Plan) -> Result<(), String> {
        if model_md5 != self.model_md5 {
            return Err(format!(
                "the keys were made for another model (md5 {}, this one's {model_md5})",
                self.model_md5
            ));
        }
        if plan.packing != self.packing || plan.digest() != self.plan_digest {
            return Err(format!(
                "the keys were made for another plan ({} at 2^{}; this build plans {} at 2^{})",
                self.packing, self.params.scale_bits, plan.packing, plan.params.scale_bits
            ));
        }
        Ok(())
    }
}

/// The key owner's half of a folder: the manifest and the secret key.
pub struct OwnerKeys {
    pub manifest: Manifest,
    pub client: Client,
}

/// The evaluating side's half of a folder: the manifest, the public key and the evaluation
/// keys. It has no way to reach `secret.key`, which may be absent.
pub struct ServerKeys {
    pub manifest: Manifest,
    pub context: Arc<Context>,
    pub public: PublicKey,
    pub evaluation: EvaluationKeys,
}

/// The head of each key file.
#[derive(Serialize, Deserialize)]
struct Head {
    format: String,
    key_id: String,
}

/// What a key folder is made for: a model (read from `model_path`) evaluated under
/// `packing`, at a fixed scale if `scale_bits` is given.
pub struct KeyRequest<'a> {
    pub model_path: &'a Path,
    pub model: &'a Model,
    pub packing: PackingId,
    pub scale_bits: Option<u32>,
}

/// Plans the request's model, makes a key pair and evaluation keys for exactly the plan, and
/// writes the folder `dir`, which must not exist or be empty. On failure, what was written is
/// removed.
pub fn create(dir: &Path, request: &KeyRequest) -> Result<Manifest, KeysError> {
    let created = match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(KeysError::at(
                    dir,
                    "exists and is not empty: a key folder is never written over",
                ));
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| KeysError::at(dir, e))?;
            true
        }
        Err(e) => return Err(KeysError::at(dir, e)),
    };
    let result = write_folder(dir, request);
    if result.is_err() {
        for name in [SECRET, PUBLIC, EVALUATION, PLAN] {
            let _ = std::fs::remove_file(dir.join(name));
        }
        if created {
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

fn write_folder(dir: &Path, request: &KeyRequest) -> Result<Manifest, KeysError> {
    let &KeyRequest {
        model_path,
        model,
        packing,
        scale_bits,
    } = request;
    let at_model = |e: &dyn ToString| KeysError::at(model_path, e.to_string());
    let net = Network::from_model(model).map_err(|e| at_model(&e))?;
    let plan = plan::plan(packing, &net, scale_bits).map_err(|e| at_model(&e))?;
    let model_md5 = crate::data::checksums::md5_file(model_path).map_err(|e| at_model(&e))?;
    let seal = |e: SealError| KeysError::at(dir, e);
    let context = Context::new(&plan.params).map_err(seal)?;
    let client = Client::new(context).map_err(seal)?;
    let public = client.public_key().to_bytes().map_err(seal)?;
    let key_id = crate::data::checksums::hex(&Md5::digest(&public));
    let head = |format: &str| Head {
        format: format.into(),
        key_id: key_id.clone(),
    };

    let path = dir.join(SECRET);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| KeysError::at(&path, e))?;
    let secret = client.secret_key_bytes().map_err(seal)?;
    write_file(&path, file, &head("hejob-secret-key"), [Ok(secret)])?;

    let path = dir.join(PUBLIC);
    write_file(
        &path,
        new_file(&path)?,
        &head("hejob-public-key"),
        [Ok(public)],
    )?;

    let keys = client
        .evaluation_keys_to_send(&plan.rotation_steps, true)
        .map_err(seal)?;
    let path = dir.join(EVALUATION);
    write_file(
        &path,
        new_file(&path)?,
        &head("hejob-evaluation-keys"),
        keys.pieces(),
    )?;

    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        key_id: key_id.clone(),
        model: model_path.to_path_buf(),
        model_md5,
        dataset: model.dataset,
        packing,
        scale_bits,
        plan_digest: plan.digest(),
        params: plan.params.clone(),
        plan: serde_json::to_value(&plan).map_err(|e| KeysError::at(dir, e))?,
    };
    let path = dir.join(PLAN);
    let mut text = serde_json::to_vec_pretty(&manifest).map_err(|e| KeysError::at(&path, e))?;
    text.push(b'\n');
    let mut file = new_file(&path)?;
    file.write_all(&text)
        .and_then(|_| file.sync_all())
        .map_err(|e| KeysError::at(&path, e))?;
    Ok(manifest)
}

fn new_file(path: &Path) -> Result<File, KeysError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| KeysError::at(path, e))
}

/// A key file: its head's length (u64, little-endian), the head, then each piece after its
/// length; written one piece at a time (evaluation keys can take gigabytes).
fn write_file(
    path: &Path,
    file: File,
    head: &Head,
    pieces: impl IntoIterator<Item = crate::seal::Result<Vec<u8>>>,
) -> Result<(), KeysError> {
    let fail = |e: &dyn ToString| KeysError::at(path, e.to_string());
    let mut out = BufWriter::new(file);
    let head = serde_json::to_vec(head).map_err(|e| fail(&e))?;
    let mut put = |bytes: &[u8]| -> Result<(), KeysError> {
        out.write_all(&(bytes.len() as u64).to_le_bytes())
            .and_then(|_| out.write_all(bytes))
            .map_err(|e| fail(&e))
    };
    put(&head)?;
    for piece in pieces {
        put(&piece.map_err(|e| fail(&e))?)?;
    }
    out.into_inner()
        .map_err(|e| fail(&e.error().to_string()))?
        .sync_all()
        .map_err(|e| fail(&e))
}

/// Reads a key file's pieces in order after checking its head names `format` and `key_id`.
struct KeyFile {
    path: PathBuf,
    input: BufReader<File>,
    left: u64,
}

impl KeyFile {
    fn open(path: &Path, format: &str, key_id: &str) -> Result<Self, KeysError> {
        let file = File::open(path).map_err(|e| KeysError::at(path, e))?;
        let left = file.metadata().map_err(|e| KeysError::at(path, e))?.len();
        let mut f = Self {
            path: path.to_path_buf(),
            input: BufReader::new(file),
            left,
        };
        let head = f.piece(MAX_HEAD)?;
        let head: Head = serde_json::from_slice(&head)
            .map_err(|_| KeysError::at(path, format!("not an hejob key file ({format})")))?;
        if head.format != format {
            return Err(KeysError::at(
                path,
                format!("holds {}, not {format}", head.format),
            ));
        }
        if head.key_id != key_id {
            return Err(KeysError::at(
                path,
                format!(
                    "belongs to key pair {}, not to this folder's {key_id}",
                    head.key_id
                ),
            ));
        }
        Ok(f)
    }

    /// The next piece, of at most `limit` bytes.
    fn piece(&mut self, limit: u64) -> Result<Vec<u8>, KeysError> {
        let short = || KeysError::at(&self.path, "cut short");
        let mut len = [0u8; 8];
        if self.left < 8 {
            return Err(short());
        }
        self.input
            .read_exact(&mut len)
            .map_err(|e| KeysError::at(&self.path, e))?;
        let len = u64::from_le_bytes(len);
        if len > limit || len > self.left - 8 {
            return Err(short());
        }
        self.left -= 8 + len;
        let mut bytes = vec![0u8; len as usize];
        self.input
            .read_exact(&mut bytes)
            .map_err(|e| KeysError::at(&self.path, e))?;
        Ok(bytes)
    }

    /// The last piece: nothing may follow it.
    fn last(mut self) -> Result<Vec<u8>, KeysError> {
        let bytes = self.piece(u64::MAX)?;
        self.end()?;
        Ok(bytes)
    }

    fn end(&self) -> Result<(), KeysError> {
        if self.left != 0 {
            return Err(KeysError::at(
                &self.path,
                format!("{} trailing bytes", self.left),
            ));
        }
        Ok(())
    }
}

impl Manifest {
    /// The manifest (`plan.json`) of the key folder `dir`, alone.
    pub fn read(dir: &Path) -> Result<Self, KeysError> {
        manifest(dir).map(|(m, _)| m)
    }
}

/// The manifest of folder `dir` and the context of its parameters.
fn manifest(dir: &Path) -> Result<(Manifest, Arc<Context>), KeysError> {
    let path = dir.join(PLAN);
    let text = std::fs::read(&path).map_err(|e| KeysError::at(&path, e))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| KeysError::at(&path, format!("not a key folder's plan ({e})")))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(KeysError::at(
            &path,
            format!(
                "{} version {}; this hejob reads {FORMAT} version {VERSION}",
                manifest.format, manifest.version
            ),
        ));
    }
    let context = Context::new(&manifest.params).map_err(|e| KeysError::at(&path, e))?;
    Ok((manifest, context))
}

impl ServerKeys {
    /// Opens `public.key`, `evaluation.keys` and `plan.json` of `dir`; never `secret.key`.
    pub fn open(dir: &Path) -> Result<Self, KeysError> {
        let (manifest, context) = manifest(dir)?;
        let id = &manifest.key_id;
        let path = dir.join(PUBLIC);
        let bytes = KeyFile::open(&path, "hejob-public-key", id)?.last()?;
        let public =
            PublicKey::from_bytes(&context, &bytes).map_err(|e| KeysError::at(&path, e))?;
        let path = dir.join(EVALUATION);
        let mut file = KeyFile::open(&path, "hejob-evaluation-keys", id)?;
        let evaluation = EvaluationKeys::from_pieces(&context, || {
            file.piece(u64::MAX).map_err(|e| SealError::Malformed {
                what: "evaluation keys",
                reason: e.reason,
            })
        })
        .map_err(|e| KeysError::at(&path, e))?;
        file.end()?;
        Ok(Self {
            manifest,
            context,
            public,
            evaluation,
        })
    }
}

impl OwnerKeys {
    /// Opens `secret.key` and `plan.json` of `dir`. A secret key that others than its owner
    /// may read is refused.
    pub fn open(dir: &Path) -> Result<Self, KeysError> {
        let (manifest, context) = manifest(dir)?;
        let path = dir.join(SECRET);
        let mode = std::fs::metadata(&path)
            .map_err(|e| KeysError::at(&path, e))?
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeysError::at(
                &path,
                format!(
                    "others may read the secret key (mode {:o}); chmod 600 it",
                    mode & 0o777
                ),
            ));
        }
        let bytes = KeyFile::open(&path, "hejob-secret-key", &manifest.key_id)?.last()?;
        let client =
            Client::from_secret_bytes(context, &bytes).map_err(|e| KeysError::at(&path, e))?;
        Ok(Self { manifest, client })
    }
}
