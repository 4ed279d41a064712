//! `oms up`: load the app and serve it until interrupted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cron_trigger::KvFireClaims;
use crate::http_trigger::HttpTrigger;
use crate::key_value::{KvStores, KvTuning};
use crate::manifest::App;
use crate::queue::{QueueLocation, QueueSync, QueueTuning, RetryPolicy};
use crate::runtime::{Limits, Runtime, RuntimeParts};
use crate::runtime_config::RuntimeConfig;
use crate::staff_token::{self, StaffToken};
use crate::variables::{env_name, ResolvedVariables};

/// Everything `oms up` is told.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The manifest.
    pub manifest: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Spin runtime config file, if any.
    pub runtime_config: Option<PathBuf>,
    /// State folder (key-value, queue, compile cache, generated staff token); default `.oms`
    /// beside the manifest.
    pub state_dir: Option<PathBuf>,
    /// Per-request limits.
    pub limits: Limits,
    /// Queue retry policy.
    pub retry: RetryPolicy,
    /// Queue messages handled at once.
    pub queue_concurrency: usize,
    /// When a queue write counts as stored.
    pub queue_sync: QueueSync,
    /// Redis server of a shared queue (Redis Streams); `None`: the embedded queue.
    pub queue_url: Option<String>,
    /// Redis queue: how long a claimed message may go unacknowledged before another host
    /// takes it over.
    pub queue_visibility: Duration,
    /// The components to run (`-c`); empty: all.
    pub components: Vec<String>,
    /// Bytes of the HTTP response cache (`--cache-mib`); 0: off (`--no-cache`).
    pub cache_bytes: usize,
    /// Tags the local purge log remembers (`--cache-purge-tags`).
    pub cache_purge_tags: usize,
    /// How the key-value backends are driven.
    pub kv_tuning: KvTuning,
    /// How the embedded queue batches its writes.
    pub queue_tuning: QueueTuning,
}

/// The state folder for a manifest.
pub fn state_dir(manifest: &std::path::Path, explicit: Option<&PathBuf>) -> PathBuf {
    explicit.cloned().unwrap_or_else(|| {
        manifest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .join(".oms")
    })
}

/// Loads the app and serves it until Ctrl-C.
///
/// # Errors
/// A bad manifest or runtime config, an unresolvable variable (also the staff token
/// `admin_token` without a value on a non-loopback address, see [`StaffToken`]), a component
/// that cannot load, storage that cannot open, or an address that cannot be bound.
pub async fn up(opts: UpOptions) -> anyhow::Result<()> {
    let state = state_dir(&opts.manifest, opts.state_dir.as_ref());
    let mut app = App::load(&opts.manifest)?;
    app.select(&opts.components)?;
    let rc = match &opts.runtime_config {
        Some(file) => {
            let rc = RuntimeConfig::load(file, &state)?;
            rc.check_granted(&app, file)?;
            rc
        }
        None => RuntimeConfig::embedded(&state, app.granted_stores()),
    };
    let env = |k: &str| std::env::var(k).ok();
    let staff_token = StaffToken::bootstrap(&app, opts.listen, &state, env)?;
    let staff_env = env_name(staff_token::VARIABLE);
    let variables = ResolvedVariables::resolve(&app, |k| match &staff_token {
        Some(token) if k == staff_env => Some(token.value().to_string()),
        _ => env(k),
    })?;
    // The rendered addresses, for the listing below; as written when a secret goes into one.
    let shown_addresses: Vec<String> = app
        .redis_triggers
        .iter()
        .zip(variables.redis_addresses())
        .map(|(t, rendered)| {
            let secret = t
                .address
                .references()
                .any(|r| app.variables.get(r).is_some_and(|d| d.secret));
            if secret {
                t.address.to_string()
            } else {
                rendered.clone()
            }
        })
        .collect();
    let scrape_auth = crate::metrics::ScrapeAuth::from_admin_tokens(
        variables
            .app_values()
            .get(staff_token::VARIABLE)
            .map(String::as_str),
    );
    let engine = crate::runtime::engine(&opts.limits)
        .map_err(|e| anyhow::anyhow!("cannot configure wasmtime: {e:#}"))?;
    let kv = Arc::new(KvStores::open_tuned(&rc, &opts.kv_tuning)?);
    let cron_claims = Arc::new(KvFireClaims::new(kv.internal()));
    let queue = if app.redis_triggers.is_empty() {
        None
    } else {
        let mut subscribers: HashMap<String, Vec<String>> = HashMap::new();
        for t in &app.redis_triggers {
            subscribers
                .entry(t.channel.clone())
                .or_default()
                .push(t.component.clone());
        }
        let location = match &opts.queue_url {
            Some(url) => {
                anyhow::ensure!(
                    opts.queue_visibility > opts.limits.queue_deadline,
                    "--queue-visibility-ms ({} ms) must exceed --queue-deadline-ms ({} ms): \
                     a message still being handled would be taken over by another host",
                    opts.queue_visibility.as_millis(),
                    opts.limits.queue_deadline.as_millis()
                );
                QueueLocation::Redis {
                    url: url.clone(),
                    visibility: opts.queue_visibility,
                }
            }
            None => {
                let unserved: std::collections::BTreeSet<&str> = app
                    .redis_triggers
                    .iter()
                    .filter(|t| !app.serves(&t.component))
                    .map(|t| t.component.as_str())
                    .collect();
                if !unserved.is_empty() {
                    tracing::warn!(
                        components = ?unserved,
                        "-c leaves subscribers unserved on the embedded queue, which belongs to \
                         this process alone: their messages wait here until an `oms up` on \
                         this state folder runs them; to share the queue between hosts, use \
                         --queue-url"
                    );
                }
                QueueLocation::Embedded {
                    path: state.join("queue.db"),
                    sync: opts.queue_sync,
                }
            }
        };
        let queue = crate::queue::open_tuned(
            &location,
            subscribers,
            opts.retry.clone(),
            opts.queue_tuning.clone(),
        )?;
        tracing::info!(queue = %queue.describe(), "queue (redis trigger channels)");
        match queue.start().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                messages = n,
                "re-delivering messages left in flight by a previous run"
            ),
            Err(e) => tracing::error!(error = %e, "cannot prepare the queue; will keep trying"),
        }
        Some(queue)
    };
    let mut runtime = Runtime::load(
        &app,
        RuntimeParts {
            engine,
            cache_dir: state.join("cache"),
            kv,
            queue: queue.clone(),
            variables,
            limits: opts.limits.clone(),
        },
    )?;
    runtime.set_cache(crate::http_cache::open(
        &rc,
        opts.cache_bytes,
        opts.cache_purge_tags,
        &opts.limits,
    )?);
    let runtime = Arc::new(runtime);

    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    if let Some(token) = &staff_token {
        // Shown to whoever started the host, once; never through the log.
        eprintln!("{}", token.announce(addr));
    }
    println!("Serving http://{addr}");
    if !app.http_triggers.is_empty() {
        println!("Available Routes:");
        for t in &app.http_triggers {
            println!("  {}: http://{addr}{}", t.component, t.route);
        }
    }
    for (t, address) in app
        .redis_triggers
        .iter()
        .zip(&shown_addresses)
        .filter(|(t, _)| app.serves(&t.component))
    {
        println!(
            "  {}: channel {} ({}, {})",
            t.component,
            t.channel,
            address,
            queue.as_ref().map(|q| q.describe()).unwrap_or_default()
        );
    }
    let schedules = crate::cron_trigger::schedules(&app, &runtime);
    for s in &schedules {
        println!("  {}: cron \"{}\" (UTC)", s.component, s.expression);
    }

    if !schedules.is_empty() {
        tokio::spawn(crate::cron_trigger::run(
            runtime.clone(),
            schedules,
            cron_claims,
        ));
    }
    if let Some(queue) = queue {
        // This host consumes for the subscribers it has loaded (all, or those `-c` selects).
        let consumers = app
            .redis_triggers
            .iter()
            .filter(|t| {
                runtime
                    .component(&t.component)
                    .is_some_and(|c| c.redis.is_some())
            })
            .map(|t| t.component.clone())
            .collect();
        tokio::spawn(crate::redis_trigger::run(
            runtime.clone(),
            queue,
            consumers,
            opts.queue_concurrency,
        ));
    }
    let trigger = Arc::new(HttpTrigger::new(&app, runtime).with_scrape_auth(scrape_auth));
    tokio::select! {
        r = trigger.serve(listener) => r.context("HTTP server failed")?,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted: stopping (messages in flight are re-delivered at next start)");
        }
    }
    // Give in-flight responses a moment; queue rows still in flight are recovered next start.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}
