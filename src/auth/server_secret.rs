//! The generated server secret (used when `TOLLGATE_KEY_HASH_SECRET` is unset) lives in a file
//! of the data directory, never in the database it protects: a copy of the database alone
//! can neither confirm an API key nor open a sealed webhook secret.
//!
//! Postgres holds only a fingerprint (a SHA-256 of the secret under a fixed label), so an
//! instance started with a different or missing file refuses to start instead of hashing keys
//! under a secret of its own. A secret stored in Postgres by an older version is moved to the
//! file once and deleted from the database.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use crate::store::pg::{PgStore, secrets};

/// The file's name inside the data directory: 64 hex characters and a newline.
pub const SECRET_FILE: &str = "server-secret";
/// The row an older version kept the secret itself in.
const LEGACY_ROW: &str = "api_key_hash";
/// The row holding the fingerprint of the secret in the file.
const FINGERPRINT_ROW: &str = "api_key_hash_fingerprint";

fn fingerprint(secret: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"tollgate server secret fingerprint v1\0");
    h.update(secret);
    h.finalize().to_vec()
}

/// Loads the server secret from `data_dir`, creating it (or moving a legacy one out of the
/// database) on first start.
pub async fn load_or_create(data_dir: &Path, pg: &PgStore) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(SECRET_FILE);
    let legacy = secrets::get(pg.pool(), LEGACY_ROW).await?;
    let secret = match (read(&path)?, legacy) {
        (Some(file), Some(legacy)) if file != legacy => anyhow::bail!(
            "{} and the secret an older version stored in Postgres differ; keep the one the API keys \
             were issued under (remove the other) and start again",
            path.display()
        ),
        (Some(file), _) => file,
        (None, Some(legacy)) => {
            write_new(data_dir, &path, &legacy)?;
            tracing::info!(path = %path.display(), "moved the server secret out of Postgres into the data directory");
            legacy
        }
        (None, None) => {
            let claimed = secrets::get(pg.pool(), FINGERPRINT_ROW).await?.is_some();
            match (claimed, read(&path)?) {
                // Another instance on this directory wrote the file since we looked.
                (_, Some(file)) => file,
                (true, None) => anyhow::bail!(
                    "{} is missing but another instance already generated the server secret: copy its \
                     {SECRET_FILE} file into this data directory (or set TOLLGATE_KEY_HASH_SECRET on every instance)",
                    path.display()
                ),
                (false, None) => {
                    let fresh = crate::auth::secret::random_bytes_32().context("reading the OS random source")?;
                    write_new(data_dir, &path, &fresh)?;
                    tracing::info!(path = %path.display(), "generated the server secret");
                    read(&path)?.context("reading back the server secret")?
                }
            }
        }
    };
    let stored = secrets::settle_fingerprint(pg.pool(), FINGERPRINT_ROW, &fingerprint(&secret), LEGACY_ROW).await?;
    if stored != fingerprint(&secret) {
        anyhow::bail!(
            "{} does not match the server secret this database's API keys were issued under; copy the \
             {SECRET_FILE} file of the first instance here (or set TOLLGATE_KEY_HASH_SECRET on every instance)",
            path.display()
        );
    }
    Ok(secret)
}

fn read(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).with_context(|| format!("{} is not hex", path.display()))?;
            anyhow::ensure!(bytes.len() >= 32, "{} holds fewer than 32 bytes", path.display());
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Creates the file (mode 0600, in a 0700 directory) unless it exists, atomically: the secret
/// is written and fsynced under a temporary name, then hard-linked to its name (which fails if
/// the name exists), so a concurrent start never reads a half-written file. Another instance
/// that got there first wins, and its content is what [`read`] returns next.
fn write_new(dir: &Path, path: &PathBuf, secret: &[u8]) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("creating the data directory {}", dir.display()))?;
    let nonce = hex::encode(crate::auth::secret::random_bytes_32().context("reading the OS random source")?);
    let tmp = dir.join(format!(".{SECRET_FILE}.{}", &nonce[..16]));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(format!("{}\n", hex::encode(secret)).as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}
