//! `oms`: the OMS's local Spin-compatible host.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use oms_host::key_value::KvTuning;
use oms_host::queue::{MessageId, QueueLocation, QueueSync, QueueTuning, RetryPolicy};
use oms_host::runtime::Limits;
use oms_host::up::{state_dir, up, UpOptions};

#[derive(Parser)]
#[command(
    name = "oms",
    version,
    about = "Run a Spin app (the edge OMS) locally on wasmtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the app described by a Spin manifest (like `spin up`).
    Up(UpArgs),
    /// Inspect the queue: counts, dead letters, re-drive.
    Queue {
        /// The manifest (locates the state folder).
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        manifest: PathBuf,
        /// State folder (default: .oms beside the manifest).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The Redis Streams queue to inspect (`redis://host:port`; default: env
        /// OMS_QUEUE_URL, else the embedded queue in the state folder).
        #[arg(long)]
        queue_url: Option<String>,
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Wrap a wasip1 module into a component with the preview1 adapter, as `oms up` does when
    /// it loads one (e.g. to serve the same component with `wasmtime serve`).
    Componentize {
        /// The wasip1 module (`cargo build --target wasm32-wasip1` output).
        input: PathBuf,
        /// Where to write the component.
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// Messages by channel, component and state.
    Stats,
    /// Dead letters with their last error.
    Dead,
    /// Re-drive dead letters (all, or one by id).
    Retry {
        /// Only this message (the id `oms queue dead` shows after `#`).
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(clap::Args)]
struct UpArgs {
    /// The manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Address to listen on. On a loopback address an app's staff token (variable
    /// `admin_token`) without a value is generated and kept in the state folder; any other
    /// address needs it given (SPIN_VARIABLE_ADMIN_TOKEN).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Run only this component (repeatable), as `spin up -c`: its HTTP routes and queue
    /// subscriptions; other hosts sharing the store and queue run the rest.
    #[arg(short = 'c', long = "component-id")]
    component_id: Vec<String>,
    /// Spin runtime config file (key-value stores).
    #[arg(long)]
    runtime_config_file: Option<PathBuf>,
    /// State folder: key-value, queue, compile cache, generated staff token (default: .oms
    /// beside the manifest).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Longest an HTTP request may run in a component, in ms (504 beyond).
    #[arg(long, default_value_t = 1000)]
    http_deadline_ms: u64,
    /// Longest a queue message may run in a component, in ms.
    #[arg(long, default_value_t = 10_000)]
    queue_deadline_ms: u64,
    /// Largest guest linear memory, in MiB.
    #[arg(long, default_value_t = 128)]
    memory_limit_mib: usize,
    /// MiB of each pooled guest memory kept resident between requests (touched pages zeroed in
    /// place instead of unmapped and faulted in again); 0 gives every page back.
    #[arg(long, default_value_t = 8)]
    keep_resident_mib: usize,
    /// Largest request body, in bytes (413 beyond).
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Deliveries of a queue message before it is dead-lettered.
    #[arg(long, default_value_t = 8)]
    queue_max_attempts: u32,
    /// First retry delay of a failed message, in ms (doubles per attempt).
    #[arg(long, default_value_t = 250)]
    queue_retry_base_ms: u64,
    /// Longest retry delay, in ms.
    #[arg(long, default_value_t = 60_000)]
    queue_retry_max_ms: u64,
    /// Queue messages handled at once.
    #[arg(long, default_value_t = 16)]
    queue_concurrency: usize,
    /// When the embedded queue counts a write as stored: normal survives the process being
    /// killed (as the key-value store), full also a power loss (an fsync per write).
    #[arg(long, value_enum, default_value_t = QueueSync::Normal)]
    queue_sync: QueueSync,
    /// Queue on Redis Streams at this server (`redis://host:port`), shared with other hosts;
    /// default: env OMS_QUEUE_URL, else the embedded queue in the state folder.
    #[arg(long)]
    queue_url: Option<String>,
    /// Redis queue: how long a claimed message may stay unacknowledged before another host
    /// takes it over, in ms; must exceed --queue-deadline-ms.
    #[arg(long, default_value_t = 30_000)]
    queue_visibility_ms: u64,
    /// Size of the HTTP response cache, in MiB (GET answers the components mark cacheable).
    #[arg(long, default_value_t = 64)]
    cache_mib: usize,
    /// Turn the HTTP response cache off (purges from components are still recorded for other
    /// hosts sharing the Redis store).
    #[arg(long)]
    no_cache: bool,
    /// Purged tags this host remembers when it keeps the purge log itself (no Redis store):
    /// an answer read before a purge of a forgotten tag is refused, not served, so fewer only
    /// means more misses. 30-70 bytes each (hash tables included).
    #[arg(long, default_value_t = 200_000)]
    cache_purge_tags: usize,
    /// Read-only SQLite connections per key-value file beside the writer (reads never wait
    /// for writes); 0: every call shares one connection.
    #[arg(long, default_value_t = 2)]
    kv_readers: usize,
    /// Embedded queue: delete acknowledged messages with the next claim instead of one
    /// transaction each (false: one each).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    queue_batch_acks: bool,
}

/// `--queue-url`, else `OMS_QUEUE_URL`.
fn queue_url(flag: Option<String>) -> Option<String> {
    flag.or_else(|| std::env::var("OMS_QUEUE_URL").ok())
        .filter(|u| !u.trim().is_empty())
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OMS_LOG")
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Componentize { input, output } => {
            let module = std::fs::read(&input)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", input.display()))?;
            let component = oms_host::loader::componentize(&module)?;
            std::fs::write(&output, component)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", output.display()))?;
            Ok(())
        }
        Command::Up(a) => {
            let opts = UpOptions {
                manifest: a.manifest,
                listen: a.listen,
                runtime_config: a.runtime_config_file,
                state_dir: a.state_dir,
                limits: Limits {
                    http_deadline: Duration::from_millis(a.http_deadline_ms),
                    queue_deadline: Duration::from_millis(a.queue_deadline_ms),
                    memory_bytes: a.memory_limit_mib << 20,
                    max_body_bytes: a.max_body_bytes,
                    keep_resident_bytes: a.keep_resident_mib << 20,
                    ..Limits::default()
                },
                retry: RetryPolicy {
                    max_attempts: a.queue_max_attempts.max(1),
                    base_delay: Duration::from_millis(a.queue_retry_base_ms),
                    max_delay: Duration::from_millis(a.queue_retry_max_ms),
                },
                queue_concurrency: a.queue_concurrency.max(1),
                queue_sync: a.queue_sync,
                queue_url: queue_url(a.queue_url),
                queue_visibility: Duration::from_millis(a.queue_visibility_ms),
                components: a.component_id,
                cache_bytes: if a.no_cache { 0 } else { a.cache_mib << 20 },
                cache_purge_tags: a.cache_purge_tags,
                kv_tuning: KvTuning {
                    sqlite_readers: a.kv_readers,
                },
                queue_tuning: QueueTuning {
                    batch_acks: a.queue_batch_acks,
                },
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(up(opts))
        }
        Command::Queue {
            manifest,
            state_dir: dir,
            queue_url: url,
            action,
        } => {
            let location = match queue_url(url) {
                Some(url) => QueueLocation::Redis {
                    url,
                    // Not used: the command neither claims nor takes over.
                    visibility: Duration::from_secs(30),
                },
                None => {
                    let path = state_dir(&manifest, dir.as_ref()).join("queue.db");
                    anyhow::ensure!(
                        path.exists(),
                        "no queue at {} (has `oms up` run here?)",
                        path.display()
                    );
                    QueueLocation::Embedded {
                        path,
                        sync: QueueSync::Normal,
                    }
                }
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(queue_command(&location, action))
        }
    }
}

/// `oms queue stats|dead|retry` against the queue at `location`.
async fn queue_command(location: &QueueLocation, action: QueueAction) -> anyhow::Result<()> {
    // Only re-drives and reads: the policy is not used.
    let policy = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };
    let queue = oms_host::queue::open(location, Default::default(), policy)?;
    match action {
        QueueAction::Stats => {
            let stats = queue.stats().await?;
            println!(
                "{:<24} {:<16} {:>9} {:>9} {:>9} {:>9}",
                "CHANNEL", "COMPONENT", "PENDING", "IN-FLIGHT", "SCHEDULED", "DEAD"
            );
            for s in stats {
                println!(
                    "{:<24} {:<16} {:>9} {:>9} {:>9} {:>9}",
                    s.channel, s.component, s.pending, s.in_flight, s.scheduled, s.dead
                );
            }
        }
        QueueAction::Dead => {
            for d in queue.dead_letters().await? {
                println!(
                    "#{} {} -> {} after {} attempts: {}\n    payload: {}",
                    d.id, d.channel, d.component, d.attempts, d.last_error, d.payload
                );
            }
        }
        QueueAction::Retry { id } => {
            let id = id.map(MessageId::new);
            let n = queue.retry_dead(id.as_ref()).await?;
            println!("{n} dead letter(s) queued again; a running `oms up` delivers them");
        }
    }
    Ok(())
}
