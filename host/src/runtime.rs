//! The wasmtime side of the host, following wasmtime's lifecycle: one [`Engine`] (pooling
//! allocator, epoch interruption), a [`Linker`] filled once with every capability,
//! `instantiate_pre` once per component, and a fresh [`Store`] per request or message with its
//! own deadline and memory limit.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, InstancePre, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings;
use crate::bindings::cron_trigger::CronTriggerPre;
use crate::bindings::redis_trigger::RedisTriggerPre;
use crate::http_cache::HttpCache;
use crate::key_value::{KvCtx, KvStores};
use crate::loader::Loader;
use crate::manifest::App;
use crate::metrics::Metrics;
use crate::outbound::{AllowedHosts, OutboundPolicy};
use crate::queue::{QueueBackend, RedisCtx};
use crate::variables::{ResolvedVariables, VariablesCtx};
use crate::Error;

/// How often the epoch advances; deadlines are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-request limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest an HTTP request may run in the guest.
    pub http_deadline: Duration,
    /// Longest a queue message may run in the guest.
    pub queue_deadline: Duration,
    /// Largest linear memory a guest may grow to.
    pub memory_bytes: usize,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Most instances alive at once (pool size).
    pub max_instances: u32,
    /// Bytes of each pooled linear memory kept mapped when its instance ends: the pages the
    /// guest touched are zeroed in place (found with the kernel's `PAGEMAP_SCAN` where it has
    /// one) instead of being dropped with `madvise` and faulted in again by the next instance.
    /// 0 gives every page back (wasmtime's default). Costs up to this much resident memory per
    /// warm slot, and only what guests actually touched.
    pub keep_resident_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            http_deadline: Duration::from_secs(1),
            queue_deadline: Duration::from_secs(10),
            memory_bytes: 128 << 20,
            max_body_bytes: 1 << 20,
            max_instances: 256,
            keep_resident_bytes: 8 << 20,
        }
    }
}

/// Everything one request's [`Store`] holds.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundPolicy,
    kv: KvCtx,
    variables: VariablesCtx,
    redis: RedisCtx,
    limits: StoreLimits,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// A component ready to instantiate, with its grants.
pub struct LoadedComponent {
    /// The component id.
    pub id: Arc<str>,
    /// Pre-instantiated for the HTTP trigger (when it exports `wasi:http/incoming-handler`).
    pub http: Option<ProxyPre<HostState>>,
    /// Pre-instantiated for the Redis trigger (when it exports `inbound-redis`).
    pub redis: Option<RedisTriggerPre<HostState>>,
    /// Pre-instantiated for the cron trigger (when it exports `handle-cron-event`).
    pub cron: Option<CronTriggerPre<HostState>>,
    allowed: Arc<AllowedHosts>,
    stores: Arc<[String]>,
    variables: Arc<std::collections::BTreeMap<String, String>>,
    environment: Vec<(String, String)>,
}

/// The loaded application: engine, components and shared capabilities.
pub struct Runtime {
    engine: Engine,
    components: HashMap<String, Arc<LoadedComponent>>,
    kv: Arc<KvStores>,
    queue: Option<Arc<dyn QueueBackend>>,
    trigger_addresses: Arc<BTreeSet<String>>,
    cache: Arc<HttpCache>,
    metrics: Arc<Metrics>,
    /// The limits in force.
    pub limits: Limits,
}

/// How instances get their memories, tables and stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Slots reserved up front for [`Limits::max_instances`] instances and reused warm: the
    /// cheapest instantiation. When every slot is busy, instantiation fails (503).
    #[default]
    Pooling,
    /// Fresh mappings per instance (wasmtime's default): no instance limit, but each
    /// instantiation maps and unmaps its memory. For comparison in benchmarks.
    OnDemand,
}

/// Builds the engine `oms up` uses: pooling allocator sized by `limits`, epoch interruption.
///
/// # Errors
/// When wasmtime rejects the configuration (e.g. not enough virtual memory for the pool).
pub fn engine(limits: &Limits) -> wasmtime::Result<Engine> {
    engine_with(limits, Allocation::Pooling)
}

/// Builds an engine with the given instance allocation and epoch interruption, and starts the
/// thread that advances its epoch every [`EPOCH_TICK`] for as long as the engine lives.
///
/// # Errors
/// When wasmtime rejects the configuration (e.g. not enough virtual memory for the pool), or
/// the ticker thread cannot start.
pub fn engine_with(limits: &Limits, allocation: Allocation) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    if std::env::var_os("OMS_PERFMAP").is_some_and(|v| v == "1") {
        // Names guest functions for `perf` (/tmp/perf-<pid>.map), for profiling only.
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if allocation == Allocation::Pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(limits)));
    }
    let engine = Engine::new(&config)?;
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map_err(|e| wasmtime::Error::msg(format!("cannot start the epoch ticker: {e}")))?;
    Ok(engine)
}

/// The instance pool sized by `limits`.
fn pool(limits: &Limits) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.max_instances)
        .total_core_instances(limits.max_instances * 8)
        .total_memories(limits.max_instances * 2)
        .total_tables(limits.max_instances * 8)
        .total_stacks(limits.max_instances)
        .max_memory_size(limits.memory_bytes)
        .max_unused_warm_slots(64)
        .linear_memory_keep_resident(limits.keep_resident_bytes)
        .table_keep_resident(limits.keep_resident_bytes.min(1 << 20))
        // Zero only the resident pages (Linux 6.7+), not the first `keep_resident` bytes whole.
        .pagemap_scan(Enabled::Auto);
    pool
}

fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    use bindings::fermyon::spin2_0_0::{key_value, redis, variables};
    use bindings::wasi::keyvalue::{atomics, batch, store};
    key_value::add_to_linker::<_, HasSelf<KvCtx>>(&mut linker, |s| &mut s.kv)?;
    store::add_to_linker::<_, HasSelf<KvCtx>>(&mut linker, |s| &mut s.kv)?;
    atomics::add_to_linker::<_, HasSelf<KvCtx>>(&mut linker, |s| &mut s.kv)?;
    batch::add_to_linker::<_, HasSelf<KvCtx>>(&mut linker, |s| &mut s.kv)?;
    variables::add_to_linker::<_, HasSelf<VariablesCtx>>(&mut linker, |s| &mut s.variables)?;
    redis::add_to_linker::<_, HasSelf<RedisCtx>>(&mut linker, |s| &mut s.redis)?;
    Ok(linker)
}

/// What the runtime needs besides the manifest.
pub struct RuntimeParts {
    /// The engine (see [`engine`]).
    pub engine: Engine,
    /// Where compiled components are cached.
    pub cache_dir: PathBuf,
    /// Key-value backends.
    pub kv: Arc<KvStores>,
    /// The queue the app's Redis trigger address is routed to, when it has Redis triggers.
    pub queue: Option<Arc<dyn QueueBackend>>,
    /// Resolved variables.
    pub variables: ResolvedVariables,
    /// Limits.
    pub limits: Limits,
}

impl Runtime {
    /// Loads, compiles and pre-instantiates every component the triggers use.
    ///
    /// # Errors
    /// [`Error::Component`] naming the component for a missing file, a compile error, an
    /// import the host does not provide, or a missing export its trigger needs.
    pub fn load(app: &App, parts: RuntimeParts) -> Result<Runtime, Error> {
        let linker = linker(&parts.engine).map_err(|e| Error::Component {
            component: "<host>".into(),
            message: format!("{e:#}"),
        })?;
        let loader = Loader::new(parts.engine.clone(), parts.cache_dir);
        let http_ids: BTreeSet<&str> = app
            .http_triggers
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        let redis_ids: BTreeSet<&str> = app
            .redis_triggers
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        let cron_ids: BTreeSet<&str> = app
            .cron_triggers
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        let mut components = HashMap::new();
        for (id, c) in &app.components {
            let (wants_http, wants_redis) = (
                http_ids.contains(id.as_str()),
                redis_ids.contains(id.as_str()),
            );
            if !app.serves(id) {
                tracing::debug!(component = %id, "not selected (--component-id): not loaded");
                continue;
            }
            let wants_cron = cron_ids.contains(id.as_str());
            if !wants_http && !wants_redis && !wants_cron {
                tracing::info!(component = %id, "not used by any trigger: not loaded");
                continue;
            }
            let fail = |message: String| Error::Component {
                component: id.clone(),
                message,
            };
            let component = loader.load(id, &c.source)?;
            let pre: InstancePre<HostState> = linker.instantiate_pre(&component).map_err(|e| {
                fail(format!(
                    "cannot link: {e:#} (the host does not provide this import)"
                ))
            })?;
            let http = if wants_http {
                Some(ProxyPre::new(pre.clone()).map_err(|e| {
                    fail(format!("used by an HTTP trigger but does not export wasi:http/incoming-handler: {e:#}"))
                })?)
            } else {
                None
            };
            let redis = if wants_redis {
                Some(RedisTriggerPre::new(pre.clone()).map_err(|e| {
                    fail(format!("used by a Redis trigger but does not export fermyon:spin/inbound-redis: {e:#}"))
                })?)
            } else {
                None
            };
            let cron = if wants_cron {
                Some(CronTriggerPre::new(pre.clone()).map_err(|e| {
                    fail(format!(
                        "used by a cron trigger but does not export handle-cron-event: {e:#}"
                    ))
                })?)
            } else {
                None
            };
            components.insert(
                id.clone(),
                Arc::new(LoadedComponent {
                    id: Arc::from(id.as_str()),
                    http,
                    redis,
                    cron,
                    allowed: parts.variables.allowed_hosts(id),
                    stores: Arc::from(c.key_value_stores.clone()),
                    variables: parts.variables.for_component(id),
                    environment: c.environment.clone().into_iter().collect(),
                }),
            );
        }
        let trigger_addresses =
            Arc::new(parts.variables.redis_addresses().iter().cloned().collect());
        Ok(Runtime {
            engine: parts.engine,
            components,
            kv: parts.kv,
            queue: parts.queue,
            trigger_addresses,
            cache: Arc::new(HttpCache::disabled()),
            metrics: Arc::new(
                Metrics::new().with_subscriptions(
                    app.redis_triggers
                        .iter()
                        .map(|t| (t.channel.clone(), t.component.clone())),
                ),
            ),
            limits: parts.limits,
        })
    }

    /// Serves HTTP through `cache` and lets components purge it (see [`crate::http_cache`]);
    /// without it, nothing is cached and purges are only recorded locally.
    pub fn set_cache(&mut self, cache: Arc<HttpCache>) {
        self.cache = cache;
    }

    /// The response cache.
    pub fn cache(&self) -> &Arc<HttpCache> {
        &self.cache
    }

    /// A loaded component by id.
    pub fn component(&self, id: &str) -> Option<Arc<LoadedComponent>> {
        self.components.get(id).cloned()
    }

    /// The host's metrics, which every trigger and capability records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The queue behind the app's Redis triggers, if it has any.
    pub fn queue(&self) -> Option<&Arc<dyn QueueBackend>> {
        self.queue.as_ref()
    }

    /// A fresh store for one invocation of `c`, expiring after `deadline`.
    pub fn new_store(&self, c: &LoadedComponent, deadline: Duration) -> Store<HostState> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        for (k, v) in &c.environment {
            wasi.env(k, v);
        }
        let state = HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundPolicy {
                component: c.id.clone(),
                allowed: c.allowed.clone(),
                cache: self.cache.clone(),
                metrics: self.metrics.clone(),
            },
            kv: KvCtx::new(self.kv.clone(), c.stores.clone(), c.id.clone()),
            variables: VariablesCtx {
                values: c.variables.clone(),
            },
            redis: RedisCtx::new(
                self.queue.clone(),
                self.trigger_addresses.clone(),
                c.allowed.clone(),
                c.id.clone(),
            )
            .with_metrics(self.metrics.clone()),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .instances(64)
                .build(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let ticks = (deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }
}

/// Awaits a queue or cron invocation under its deadline, enforced twice: the epoch trap stops
/// guest code, and the clock stops a guest waiting in a host call (outbound HTTP, a slow
/// store), which the epoch cannot interrupt — so a message is never still running when
/// another host may take it over (queue visibility > deadline).
///
/// # Errors
/// A message saying the deadline passed, or what trapped.
pub async fn within_deadline<T>(
    deadline: Duration,
    run: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(deadline, run).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) if is_deadline(&e) => {
            Err(format!("deadline of {} ms exceeded", deadline.as_millis()))
        }
        Ok(Err(e)) => Err(format!("trap: {e:#}")),
        Err(_) => Err(format!(
            "deadline of {} ms exceeded (waiting in a host call)",
            deadline.as_millis()
        )),
    }
}

/// Whether an invocation error was the deadline firing.
pub fn is_deadline(e: &wasmtime::Error) -> bool {
    matches!(
        e.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    )
}
