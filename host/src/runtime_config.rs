//! Spin's `runtime-config.toml`, the part `oms up` reads: which backend serves each key-value
//! store label.
//!
//! - **Without a file**, every label the manifest grants gets an embedded store: the same SQLite
//!   file in the state folder (`kv.db`), each label its own namespace — so `oms up` runs any
//!   manifest with no set-up. (Spin itself only provides `default` without a file; there,
//!   other labels need `--runtime-config-file`, e.g. `infra/runtime-config.sqlite.toml`.)
//! - **With a file**, as Spin: `default` is embedded unless the file redefines it, and every
//!   other granted label must be defined in the file, or start stops naming the label and the
//!   component ([`RuntimeConfig::check_granted`]).
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

use crate::manifest::App;
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
    /// The embedded defaults: store `default` and each `granted` label in `<state_dir>/kv.db`
    /// (one file, a namespace per label).
    pub fn embedded<'a>(
        state_dir: &Path,
        granted: impl IntoIterator<Item = &'a str>,
    ) -> RuntimeConfig {
        let file = state_dir.join("kv.db");
        let key_value_stores = std::iter::once("default")
            .chain(granted)
            .map(|label| (label.to_string(), KvBackendConfig::Sqlite(file.clone())))
            .collect();
        RuntimeConfig { key_value_stores }
    }

    /// Checks that every store label a component this host runs is granted is defined, as
    /// Spin does at start (with `--component-id`, Spin checks only the selected components).
    ///
    /// # Errors
    /// [`Error::RuntimeConfig`] for the first undefined label (in component order), naming
    /// it, the component, and the `file` to define it in.
    pub fn check_granted(&self, app: &App, file: &Path) -> Result<(), Error> {
        for c in app.components.values().filter(|c| app.serves(&c.id)) {
            for label in &c.key_value_stores {
                if !self.key_value_stores.contains_key(label) {
                    return Err(Error::RuntimeConfig {
                        file: file.to_path_buf(),
                        field: format!("key_value_store.{label}"),
                        message: format!(
                            "unknown key_value_stores label {label:?} for component {:?}: \
                             define it in this file as [key_value_store.{label}] \
                             (defined: {})",
                            c.id,
                            self.store_labels().join(", ")
                        ),
                    });
                }
            }
        }
        Ok(())
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
        let mut config = RuntimeConfig::embedded(state_dir, []);
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

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[[trigger.http]]
route = "/a"
component = "web"
[component.web]
source = "web.wasm"
key_value_stores = ["default", "owed"]
[component.quiet]
source = "quiet.wasm"
"#;

    fn test_app() -> App {
        App::parse(Path::new("spin.toml"), MANIFEST).unwrap()
    }

    #[test]
    fn without_a_file_every_granted_label_is_embedded_in_one_file() {
        let app = test_app();
        let rc = RuntimeConfig::embedded(Path::new("/state"), app.granted_stores());
        assert_eq!(rc.store_labels(), ["default", "owed"]);
        let mut quiet = test_app();
        quiet.select(&["quiet".to_string()]).unwrap();
        let only_default = RuntimeConfig::embedded(Path::new("/state"), quiet.granted_stores());
        assert_eq!(only_default.store_labels(), ["default"]);
        for label in ["default", "owed"] {
            assert_eq!(
                rc.key_value_stores[label],
                KvBackendConfig::Sqlite(PathBuf::from("/state/kv.db"))
            );
        }
        rc.check_granted(&app, Path::new("unused")).unwrap();
    }

    #[test]
    fn a_file_must_define_every_granted_label_but_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rc.toml");
        std::fs::write(&file, "[key_value_store.cache]\ntype = \"spin\"\n").unwrap();
        let rc = RuntimeConfig::load(&file, Path::new("/s")).unwrap();
        let e = rc.check_granted(&test_app(), &file).unwrap_err();
        let Error::RuntimeConfig { field, message, .. } = &e else {
            panic!("expected a runtime config error, got {e:?}");
        };
        assert_eq!(field, "key_value_store.owed");
        assert!(
            message.contains(r#"unknown key_value_stores label "owed" for component "web""#),
            "{message}"
        );
        assert!(e.to_string().contains("rc.toml"), "{e}");

        let mut quiet = test_app();
        quiet.select(&["quiet".to_string()]).unwrap();
        rc.check_granted(&quiet, &file).unwrap();

        std::fs::write(&file, "[key_value_store.owed]\ntype = \"spin\"\n").unwrap();
        let rc = RuntimeConfig::load(&file, Path::new("/s")).unwrap();
        rc.check_granted(&test_app(), &file).unwrap();
        assert_eq!(
            rc.key_value_stores["default"],
            KvBackendConfig::Sqlite(PathBuf::from("/s/kv.db"))
        );
    }
}
