//! `cargo bench -p oms-host --bench host`: what the host costs, measured with criterion.
//!
//! - `compile/<component>`: componentizing and compiling each lifecycle function and `hello`,
//!   without the cache — what a cold `oms up` pays per component.
//! - `instantiate_call/{pooling,on_demand}`: one `GET /` to `hello` served the way the HTTP
//!   trigger serves it — fresh store, instance from `instantiate_pre`, handler call, response
//!   body read, guest finished — with the pooling allocator as `oms up` sets it up (touched pages
//!   kept resident and zeroed in place), with the pool giving every page back (`madvise`,
//!   wasmtime's default), and with on-demand allocation.
//!   Target: median ≤ 10 µs.
//! - `steps/<step>/{native,component}`: each lifecycle step's core logic (`oms-bench-steps`) on
//!   the same input, as native Rust and as one request to the `steps` component;
//!   `…/{native_x100,component_x100}` run it 100 times per call (`?n=100`), which separates
//!   execution speed from what a call costs. Target: component ≤ 1.5 × native at the median.
//!
//! The guest components must be built first: `bash scripts/build-wasm.sh`.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use oms_bench_steps::Step;
use oms_host::http_trigger::{invoke, Invocation};
use oms_host::key_value::KvStores;
use oms_host::loader;
use oms_host::manifest::App;
use oms_host::runtime::{engine_with, Allocation, Limits, LoadedComponent, Runtime, RuntimeParts};
use oms_host::runtime_config::RuntimeConfig;
use oms_host::variables::ResolvedVariables;

/// The lifecycle functions, and the smallest component for scale.
const COMPILED: [&str; 8] = [
    "validate", "query", "admin", "reserve", "route", "notify", "refund", "hello",
];

/// Runs per call in the `…_x100` benchmarks.
const REPEAT: NonZeroU32 = NonZeroU32::new(100).expect("100 is not zero");

const BUILD_FIRST: &str = "build the guest components first: bash scripts/build-wasm.sh";

fn compile(c: &mut Criterion) {
    let engine = engine_with(&Limits::default(), Allocation::Pooling).expect("an engine");
    let mut group = c.benchmark_group("compile");
    // ~100 ms and more per compilation: ten samples of a few iterations each.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for name in COMPILED {
        let source = built(name);
        let bytes = std::fs::read(&source).expect("a readable .wasm file");
        group.bench_function(name, |b| {
            b.iter_with_large_drop(|| {
                loader::compile(&engine, name, &source, &bytes).expect("it compiles")
            })
        });
    }
    group.finish();
}

fn instantiate_call(c: &mut Criterion) {
    let tokio = current_thread();
    let mut group = c.benchmark_group("instantiate_call");
    let reset_all = Limits {
        keep_resident_bytes: 0,
        ..Limits::default()
    };
    for (name, allocation, limits) in [
        ("pooling", Allocation::Pooling, Limits::default()),
        ("pooling_madvise", Allocation::Pooling, reset_all),
        ("on_demand", Allocation::OnDemand, Limits::default()),
    ] {
        let hello = Served::load("hello.toml", "hello", allocation, limits);
        let (status, body) = tokio.block_on(hello.call(get()));
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
        group.bench_function(name, |b| b.to_async(&tokio).iter(|| hello.call(get())));
    }
    group.finish();
}

fn steps(c: &mut Criterion) {
    let tokio = current_thread();
    let steps = Served::load(
        "steps.toml",
        "steps",
        Allocation::Pooling,
        Limits::default(),
    );
    let mut group = c.benchmark_group("steps");
    for step in Step::ALL {
        let input = oms_bench_steps::input(step);
        let body = Bytes::from(input.clone());
        check_same_output(&tokio, &steps, step, &input);
        let id = |variant| BenchmarkId::new(step.as_str(), variant);
        group.bench_function(id("native"), |b| {
            b.iter(|| oms_bench_steps::run(step, black_box(&input)))
        });
        group.bench_function(id("component"), |b| {
            b.to_async(&tokio)
                .iter(|| steps.call(post(step, None, body.clone())))
        });
        group.bench_function(id("native_x100"), |b| {
            b.iter(|| oms_bench_steps::run_repeated(step, black_box(&input), REPEAT))
        });
        group.bench_function(id("component_x100"), |b| {
            b.to_async(&tokio)
                .iter(|| steps.call(post(step, Some(REPEAT), body.clone())))
        });
    }
    group.finish();
}

/// The component must compute exactly what native Rust does, or the comparison means nothing.
fn check_same_output(tokio: &tokio::runtime::Runtime, steps: &Served, step: Step, input: &[u8]) {
    let native = oms_bench_steps::run(step, input).expect("the step accepts its fixed input");
    let (status, output) =
        tokio.block_on(steps.call(post(step, None, Bytes::from(input.to_vec()))));
    let text = String::from_utf8_lossy(&output);
    assert_eq!(status, StatusCode::OK, "{step} as a component: {text}");
    assert_eq!(
        output, native,
        "{step}: the component and native Rust disagree"
    );
}

/// One component of an app loaded by the host, with the state folder it keeps open.
struct Served {
    runtime: Runtime,
    component: Arc<LoadedComponent>,
    _state: tempfile::TempDir,
}

impl Served {
    /// Loads the test app `tests/apps/<manifest>` as `oms up` does (fresh state folder, so
    /// nothing comes from the compile cache) and picks `component`.
    fn load(manifest: &str, component: &str, allocation: Allocation, limits: Limits) -> Served {
        let state = tempfile::tempdir().expect("a temporary folder");
        let app =
            App::load(&repo().join("tests/apps").join(manifest)).unwrap_or_else(|e| panic!("{e}"));
        let config = RuntimeConfig::embedded(state.path(), app.granted_stores());
        if let Some(c) = app.components.get(component) {
            assert!(
                c.source.exists(),
                "{} is missing: {BUILD_FIRST}",
                c.source.display()
            );
        }
        let runtime = Runtime::load(
            &app,
            RuntimeParts {
                engine: engine_with(&limits, allocation).expect("an engine"),
                cache_dir: state.path().join("cache"),
                kv: Arc::new(KvStores::open(&config).expect("key-value storage")),
                queue: None,
                variables: ResolvedVariables::resolve(&app, |_| None).expect("no variables"),
                limits,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let component = runtime
            .component(component)
            .unwrap_or_else(|| panic!("{manifest} has no HTTP component {component}"));
        Served {
            runtime,
            component,
            _state: state,
        }
    }

    /// Serves one request through the trigger's path and waits for the guest to finish; the
    /// status and the whole body.
    async fn call(&self, request: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
        let Invocation { response, task } =
            invoke(&self.runtime, &self.component, request).expect("the request reaches the guest");
        let Ok(response) = response.await else {
            panic!("no response: {:?}", task.await);
        };
        let response = response.expect("a response, not an error code");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the whole body")
            .to_bytes();
        task.await
            .expect("the guest task ends")
            .expect("the guest returns normally");
        (status, body)
    }
}

fn get() -> Request<Full<Bytes>> {
    Request::get("http://localhost/")
        .body(Full::default())
        .expect("a valid request")
}

/// `POST /<step>[?n=K]` with `input` as the body.
fn post(step: Step, times: Option<NonZeroU32>, input: Bytes) -> Request<Full<Bytes>> {
    let query = times.map(|n| format!("?n={n}")).unwrap_or_default();
    Request::post(format!("http://localhost/{step}{query}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(input))
        .expect("a valid request")
}

/// The path of a built guest component.
fn built(name: &str) -> PathBuf {
    let path = repo()
        .join("target/wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: {BUILD_FIRST}",
        path.display()
    );
    path
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One thread, as each request runs on a single task: the timings are per request, not
/// throughput.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

criterion_group!(benches, compile, instantiate_call, steps);
criterion_main!(benches);
