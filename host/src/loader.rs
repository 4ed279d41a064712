//! Turning a `.wasm` file into a compiled [`Component`]: a WASI preview1 core module (what
//! `cargo build --target wasm32-wasip1` makes) is first wrapped into a component with the
//! preview1 adapter, as Spin does; the compiled code is cached on disk, keyed by the file's hash
//! and the engine's configuration, so a restart does not recompile unchanged components.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::Error;

/// Loads components through the compile cache.
pub struct Loader {
    engine: Engine,
    cache_dir: PathBuf,
}

impl Loader {
    /// A loader caching under `cache_dir`.
    pub fn new(engine: Engine, cache_dir: PathBuf) -> Loader {
        Loader { engine, cache_dir }
    }

    /// Reads, componentizes if needed, and compiles (or loads from cache) one component.
    ///
    /// # Errors
    /// [`Error::Component`] when the file is missing, is not Wasm, cannot be adapted or fails
    /// to compile.
    pub fn load(&self, id: &str, path: &Path) -> Result<Component, Error> {
        let fail = |message: String| Error::Component {
            component: id.to_string(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| {
            fail(format!(
                "cannot read source {}: {e} (build the components first: scripts/build-wasm.sh)",
                path.display()
            ))
        })?;
        let mut hasher = Sha256::new();
        hasher.update(&bytes);
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut HashWriter(&mut hasher));
        hasher.update(env!("CARGO_PKG_VERSION"));
        let key = hex::encode(hasher.finalize());
        let cached = self.cache_dir.join(format!("{key}.cwasm"));
        if cached.exists() {
            match deserialize(&self.engine, &cached) {
                Ok(c) => {
                    tracing::info!(component = id, "loaded compiled component from cache");
                    return Ok(c);
                }
                Err(e) => {
                    tracing::warn!(component = id, error = %e, "ignoring unusable cache entry")
                }
            }
        }
        let started = Instant::now();
        let component = compile(&self.engine, id, path, &bytes)?;
        tracing::info!(
            component = id,
            ms = started.elapsed().as_millis() as u64,
            "compiled"
        );
        if let Err(e) = store_cache(&component, &self.cache_dir, &cached) {
            tracing::warn!(component = id, error = %e, "could not write the compile cache");
        }
        Ok(component)
    }
}

/// Compiles the Wasm bytes read from `source` into a component, componentizing a wasip1 core module first: what
/// [`Loader::load`] does on a cache miss, without touching the cache.
///
/// # Errors
/// [`Error::Component`] naming `id` when the bytes are neither a core module nor a component,
/// the module cannot be adapted, or compilation fails.
pub fn compile(engine: &Engine, id: &str, source: &Path, bytes: &[u8]) -> Result<Component, Error> {
    let fail = |message: String| Error::Component {
        component: id.to_string(),
        message,
    };
    let adapted;
    let component_bytes = if wasmparser::Parser::is_component(bytes) {
        bytes
    } else if wasmparser::Parser::is_core_wasm(bytes) {
        adapted = componentize(bytes)
            .map_err(|e| fail(format!("cannot adapt the wasip1 module: {e:#}")))?;
        &adapted
    } else {
        return Err(fail(format!(
            "{} is not a Wasm module or component",
            source.display()
        )));
    };
    tracing::info!(
        component = id,
        kb = component_bytes.len() / 1024,
        "compiling component"
    );
    Component::new(engine, component_bytes).map_err(|e| fail(format!("compilation failed: {e:#}")))
}

/// Wraps a preview1 core module into a component with the reactor adapter, as Spin does.
///
/// # Errors
/// When the module is not valid Wasm or does not fit the adapter.
pub fn componentize(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
}

fn store_cache(component: &Component, dir: &Path, file: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let bytes = component
        .serialize()
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, file: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was written by `store_cache` of this host version into the host's own
    // state folder, under a name keyed by the engine's compatibility hash; wasmtime also checks
    // the header's engine and version before using the code.
    unsafe { Component::deserialize_file(engine, file) }
}

/// Feeds `Hash` output into SHA-256.
struct HashWriter<'a>(&'a mut Sha256);

impl std::hash::Hasher for HashWriter<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

use std::hash::Hash;
