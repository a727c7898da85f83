//! The only modules that speak to a driver. `pg` holds the catalogue (tenants, keys, audit);
//! `redis` holds the ledger and the tenant-status mirror. Callers see [`StoreError`], never a
//! driver error: an outage is `Unavailable` (the API answers 503 + `Retry-After`), anything
//! else is `Internal`.

pub mod pg;
pub mod redis;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{store} unavailable: {cause}")]
    Unavailable { store: &'static str, cause: String },
    #[error("store error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable { store: "postgres", cause: err.to_string() },
            _ => StoreError::Internal(err.to_string()),
        }
    }
}

impl From<::redis::RedisError> for StoreError {
    fn from(err: ::redis::RedisError) -> Self {
        if err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_cluster_error()
        {
            StoreError::Unavailable { store: "redis", cause: err.to_string() }
        } else {
            StoreError::Internal(err.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.rs` file under `dir`, recursively.
    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Whether `line` names a driver crate: `redis::…` or `sqlx::…` not preceded by a path
    /// (`store::redis::` is ours), or `use redis` / `use sqlx`.
    fn names_a_driver(line: &str) -> bool {
        let code = line.trim_start();
        if code.starts_with("//") {
            return false;
        }
        ["redis::", "sqlx::"].iter().any(|driver| {
            code.match_indices(driver).any(|(i, _)| {
                code[..i].chars().next_back().is_none_or(|c| !(c == ':' || c == '_' || c.is_ascii_alphanumeric()))
            })
        }) || code.starts_with("use redis")
            || code.starts_with("use sqlx")
    }

    #[test]
    fn only_store_names_a_driver() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &mut files);
        let offenders: Vec<String> = files
            .iter()
            .filter(|f| !f.starts_with(root.join("store")))
            .flat_map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                let shown = f.strip_prefix(&root).unwrap().display().to_string();
                text.lines()
                    .enumerate()
                    .filter(|(_, l)| names_a_driver(l))
                    .map(|(n, l)| format!("src/{shown}:{}: {}", n + 1, l.trim()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(offenders.is_empty(), "driver use outside src/store:\n{}", offenders.join("\n"));
        assert!(names_a_driver("let mut cmd = redis::cmd(\"GET\");"));
        assert!(!names_a_driver("use crate::store::redis::RedisStore;"));
    }
}
