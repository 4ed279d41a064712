//! Spin's `runtime-config.toml`, the part `oms up` reads: which backend serves each key-value
//! store label. Without a file, the label `default` is an embedded SQLite file in the state
//! folder.
//!
//! ```toml
//! [key_value_store.default]
//! type = "spin"                 # embedded SQLite
//! path = "data/kv.db"           # relative to this file's folder
//!
//! [key_value_store.shared]
//! type = "redis"                # a Redis server, shared by every host pointed at it
//! url = "redis://127.0.0.1:6379"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// Where each key-value store label lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// label → backend.
    pub key_value_stores: BTreeMap<String, KvBackendConfig>,
}

/// A key-value backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvBackendConfig {
    /// Embedded SQLite at this path.
    Sqlite(PathBuf),
    /// A Redis server at this URL.
    Redis(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    key_value_store: BTreeMap<String, RawStore>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    r#type: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

impl RuntimeConfig {
    /// The embedded defaults: store `default` in `<state_dir>/kv.db`.
    pub fn embedded(state_dir: &Path) -> RuntimeConfig {
        RuntimeConfig {
            key_value_stores: BTreeMap::from([(
                "default".to_string(),
                KvBackendConfig::Sqlite(state_dir.join("kv.db")),
            )]),
        }
    }

    /// Reads a runtime config file over the embedded defaults (a file may redefine `default`).
    ///
    /// # Errors
    /// [`Error::RuntimeConfig`] naming the file and field for unreadable or unsupported entries.
    pub fn load(file: &Path, state_dir: &Path) -> Result<RuntimeConfig, Error> {
        let err = |field: &str, message: String| Error::RuntimeConfig {
            file: file.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let text =
            std::fs::read_to_string(file).map_err(|e| err("", format!("cannot read: {e}")))?;
        let raw: Raw = toml::from_str(&text).map_err(|e| err("", e.message().to_string()))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let mut config = RuntimeConfig::embedded(state_dir);
        for (label, store) in raw.key_value_store {
            let field = format!("key_value_store.{label}");
            let backend = match store.r#type.as_str() {
                "spin" => {
                    if store.url.is_some() {
                        return Err(err(&format!("{field}.url"), "type \"spin\" takes a path, not a url".into()));
                    }
                    let path = store
                        .path
                        .map(|p| dir.join(p))
                        .unwrap_or_else(|| state_dir.join(format!("kv-{label}.db")));
                    KvBackendConfig::Sqlite(path)
                }
                "redis" => {
                    if store.path.is_some() {
                        return Err(err(&format!("{field}.path"), "type \"redis\" takes a url, not a path".into()));
                    }
                    let Some(url) = store.url else {
                        return Err(err(&format!("{field}.url"), "type \"redis\" needs url = \"redis://host:port\"".into()));
                    };
                    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://")) {
                        return Err(err(&format!("{field}.url"), format!("not a redis:// URL: {}", crate::redis_client::redacted(&url))));
                    }
                    KvBackendConfig::Redis(url)
                }
                other => {
                    return Err(err(
                        &format!("{field}.type"),
                        format!("unsupported key-value store type {other:?}: oms up supports \"spin\" (embedded SQLite) and \"redis\""),
                    ))
                }
            };
            config.key_value_stores.insert(label, backend);
        }
        Ok(config)
    }

    /// The store labels defined.
    pub fn store_labels(&self) -> Vec<String> {
        self.key_value_stores.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_spin_sqlite_stores_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rc.toml");
        std::fs::write(
            &file,
            "[key_value_store.default]\ntype = \"spin\"\npath = \"data/kv.db\"\n\
             [key_value_store.cache]\ntype = \"spin\"\n",
        )
        .unwrap();
        let rc = RuntimeConfig::load(&file, Path::new("/state")).unwrap();
        assert_eq!(
            rc.key_value_stores["default"],
            KvBackendConfig::Sqlite(dir.path().join("data/kv.db"))
        );
        assert_eq!(
            rc.key_value_stores["cache"],
            KvBackendConfig::Sqlite(PathBuf::from("/state/kv-cache.db"))
        );
    }

    #[test]
    fn reads_redis_stores_and_names_a_missing_url() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rc.toml");
        std::fs::write(
            &file,
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6390\"\n",
        )
        .unwrap();
        let rc = RuntimeConfig::load(&file, Path::new("/s")).unwrap();
        assert_eq!(
            rc.key_value_stores["default"],
            KvBackendConfig::Redis("redis://127.0.0.1:6390".into())
        );
        std::fs::write(&file, "[key_value_store.default]\ntype = \"redis\"\n").unwrap();
        let e = RuntimeConfig::load(&file, Path::new("/s")).unwrap_err();
        assert!(e.to_string().contains("key_value_store.default.url"), "{e}");
    }

    #[test]
    fn names_an_unsupported_type() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rc.toml");
        std::fs::write(
            &file,
            "[key_value_store.default]\ntype = \"azure_cosmos\"\n",
        )
        .unwrap();
        let e = RuntimeConfig::load(&file, Path::new("/s")).unwrap_err();
        assert!(
            e.to_string().contains("key_value_store.default.type"),
            "{e}"
        );
    }
}
