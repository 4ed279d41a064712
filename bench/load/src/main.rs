//! `oms-load`: the load generator behind `bench/load.sh` and `bench/hello.sh`.
//!
//! - `oms-load suite --base URL --admin-token T`: seeds a running OMS, subscribes a loopback
//!   webhook receiver, then measures order intake and end-to-end routing at each concurrency,
//!   the hot-SKU race with its oversell check, reads of orders (as their customer and as
//!   staff) and availability on the host (its response cache on) and, with `--uncached-base`,
//!   on a second host without a cache sharing the store, and a write-then-read check that
//!   counts stale reads.
//! - `oms-load hello --base URL [--base URL2 ...]`: `GET /` on each server in turn, same
//!   clients and duration, and the throughput ratio of the first to each other.

mod client;
mod scenarios;
mod sink;
mod stats;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

use crate::client::{wait_ready, Target};
use crate::scenarios::{Ctx, ReadPath, SKUS};
use crate::sink::Sink;
use crate::stats::{Line, HEADER};

#[derive(Parser)]
#[command(name = "oms-load", about = "Load generator for the edge OMS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Orders, end to end, hot SKU and reads against a running OMS.
    Suite {
        /// The OMS base URL.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        base: String,
        /// The staff token (SPIN_VARIABLE_ADMIN_TOKEN of the server); default: the one a
        /// local `oms up` generated, in .oms/staff-token.
        #[arg(long)]
        admin_token: Option<String>,
        /// Seconds per measured run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrencies for the order runs.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<usize>,
        /// Units of the hot SKU.
        #[arg(long, default_value_t = 1000)]
        hot_stock: u32,
        /// Orders placed for the hot SKU (one unit each).
        #[arg(long, default_value_t = 2000)]
        hot_orders: u64,
        /// A second host on the same store serving the reads without a response cache
        /// (`oms up -c query --no-cache`): reads are measured on both, side by side.
        #[arg(long)]
        uncached_base: Option<String>,
        /// Rounds of the write-then-read check (a stock change and an order cancellation each).
        #[arg(long, default_value_t = 100)]
        stale_rounds: u64,
        /// The `oms up` process id: its CPU time (user + system, from /proc) per order is
        /// reported beside each order run, a figure other processes on the machine disturb
        /// far less than throughput.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Scenarios to run (default: all).
        #[arg(
            long,
            value_delimiter = ',',
            value_enum,
            default_value = "orders,hot,reads,stale"
        )]
        only: Vec<Scenario>,
    },
    /// `GET /` on each server in turn; ratios against the first.
    Hello {
        /// Servers to compare (the first is the reference for the ratios).
        #[arg(long, required = true)]
        base: Vec<String>,
        /// Seconds per run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrencies.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<usize>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Two worker threads: the machines this is measured on have two cores, shared with the
    // server under test.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.command {
            Command::Suite {
                base,
                admin_token,
                seconds,
                clients,
                hot_stock,
                hot_orders,
                uncached_base,
                stale_rounds,
                server_pid,
                only,
            } => {
                let opts = SuiteOptions {
                    duration: Duration::from_secs(seconds),
                    clients,
                    hot_stock,
                    hot_orders,
                    uncached_base,
                    stale_rounds,
                    server_pid,
                    only,
                };
                let admin_token = match admin_token {
                    Some(token) => token,
                    None => std::fs::read_to_string(".oms/staff-token")
                        .map(|t| t.trim().to_string())
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "no --admin-token, and no .oms/staff-token to read ({e}): pass \
                                 the server's SPIN_VARIABLE_ADMIN_TOKEN"
                            )
                        })?,
                };
                suite(&base, admin_token, opts).await
            }
            Command::Hello {
                base,
                seconds,
                clients,
            } => hello(&base, Duration::from_secs(seconds), &clients).await,
        }
    })
}

/// The parts of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// Intake and end to end at each concurrency.
    Orders,
    /// The hot-SKU race.
    Hot,
    /// Reads: cached (the host) vs uncached (`--uncached-base`).
    Reads,
    /// The write-then-read check.
    Stale,
}

struct SuiteOptions {
    duration: Duration,
    clients: Vec<usize>,
    hot_stock: u32,
    hot_orders: u64,
    uncached_base: Option<String>,
    stale_rounds: u64,
    server_pid: Option<u32>,
    only: Vec<Scenario>,
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks / 100.0)
}

async fn suite(base: &str, admin_token: String, opts: SuiteOptions) -> anyhow::Result<()> {
    let target = Target::parse(base).await?;
    wait_ready(&target, "/v1/openapi.json", Duration::from_secs(300)).await?;
    let (sink, sink_addr) = Sink::start().await?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() % 1_000_000;
    let ctx = Ctx {
        target,
        admin_token,
        sink,
        run: run.to_string(),
    };
    eprintln!("seeding {SKUS} SKUs at 2 warehouses, webhook receiver on {sink_addr}");
    ctx.seed(&format!("http://{sink_addr}/hook")).await?;

    println!("{HEADER}");
    let mut placed = Vec::new();
    let wants = |s: Scenario| opts.only.contains(&s);
    if wants(Scenario::Orders) || wants(Scenario::Reads) {
        for &c in &opts.clients {
            eprintln!(
                "orders: {c} clients for {:?}, then waiting for every order to be routed",
                opts.duration
            );
            let cpu_before = cpu_seconds(opts.server_pid);
            let (lines, made) = scenarios::orders(&ctx, c, opts.duration).await;
            print_lines(&lines);
            if let (Some(a), Some(b)) = (cpu_before, cpu_seconds(opts.server_pid)) {
                println!(
                    "host CPU per order, end to end at {c} clients: {:.2} ms ({} orders)",
                    (b - a) * 1000.0 / made.len().max(1) as f64,
                    made.len()
                );
            }
            placed = made;
        }
    }

    let mut verdict = None;
    if wants(Scenario::Hot) {
        let hot_clients = 64;
        eprintln!(
            "hot SKU: {hot_clients} clients, {} orders for {} units",
            opts.hot_orders, opts.hot_stock
        );
        let cpu_before = cpu_seconds(opts.server_pid);
        let (lines, v) =
            scenarios::hot_sku(&ctx, hot_clients, opts.hot_stock, opts.hot_orders).await?;
        print_lines(&lines);
        if let (Some(a), Some(b)) = (cpu_before, cpu_seconds(opts.server_pid)) {
            println!(
                "host CPU per order, hot SKU: {:.2} ms ({} orders)",
                (b - a) * 1000.0 / opts.hot_orders.max(1) as f64,
                opts.hot_orders
            );
        }
        verdict = Some(v);
    }

    if wants(Scenario::Reads) {
        reads(&ctx, &opts, &placed, run).await?;
    }
    if wants(Scenario::Stale) {
        eprintln!("write-then-read: {} rounds, 4 clients", opts.stale_rounds);
        println!(
            "{}",
            scenarios::write_then_read(&ctx, 4, opts.stale_rounds).await?
        );
    }
    if let Some(v) = verdict {
        println!("{v}");
    }
    Ok(())
}

/// Reads of orders as their customer and as staff, and of availability: on the host (cache on)
/// and, when given, on the uncached host, back to back per kind; the ratio of the two.
async fn reads(
    ctx: &Ctx,
    opts: &SuiteOptions,
    placed: &[scenarios::Placed],
    run: u64,
) -> anyhow::Result<()> {
    let uncached = match &opts.uncached_base {
        Some(base) => {
            let t = Target::parse(base).await?;
            wait_ready(&t, "/v1/openapi.json", Duration::from_secs(300)).await?;
            Some(t)
        }
        None => None,
    };
    let orders = &placed[..placed.len().min(256)];
    let as_customer: Arc<[ReadPath]> = orders
        .iter()
        .map(|p| {
            (
                format!("/v1/orders/{}", p.id),
                Some(format!("Bearer {}", p.token)),
            )
        })
        .collect();
    let staff = ctx.admin();
    let as_staff: Arc<[ReadPath]> = orders
        .iter()
        .map(|p| (format!("/v1/orders/{}", p.id), Some(staff.clone())))
        .collect();
    let skus: Arc<[ReadPath]> = (0..SKUS)
        .map(|i| (format!("/v1/availability/LOAD-{run}-{i}"), None))
        .collect();
    let clients = opts.clients.iter().copied().max().unwrap_or(16).min(16);
    for (name, paths) in [
        ("GET /v1/orders/{id} as its customer", as_customer),
        ("GET /v1/orders/{id} as staff", as_staff),
        ("GET /v1/availability/{sku}", skus),
    ] {
        anyhow::ensure!(
            !paths.is_empty(),
            "{name}: no orders to read (run `orders` too)"
        );
        eprintln!("reads: {name}, {clients} clients");
        let cached = scenarios::reads(
            &ctx.target,
            &format!("{name} (host cache)"),
            clients,
            opts.duration,
            paths.clone(),
        )
        .await;
        print_lines(std::slice::from_ref(&cached));
        if let Some(t) = &uncached {
            let plain = scenarios::reads(
                t,
                &format!("{name} (no cache)"),
                clients,
                opts.duration,
                paths,
            )
            .await;
            print_lines(std::slice::from_ref(&plain));
            println!(
                "ratio {name}: cached / uncached = {:.2}×",
                cached.per_second / plain.per_second
            );
        }
    }
    Ok(())
}

async fn hello(bases: &[String], duration: Duration, clients: &[usize]) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    for b in bases {
        let t = Target::parse(b).await?;
        wait_ready(&t, "/", Duration::from_secs(300)).await?;
        targets.push(t);
    }
    println!("{HEADER}");
    for &c in clients {
        let mut lines = Vec::new();
        for t in &targets {
            lines.push(scenarios::hello(t, c, duration).await);
        }
        print_lines(&lines);
        for (t, l) in targets.iter().zip(&lines).skip(1) {
            println!(
                "ratio at {c} clients: throughput {first} / {other} = {:.2}×, p50 latency {other} / {first} = {:.2}× (above 1: {first} is faster)",
                lines[0].per_second / l.per_second,
                l.p50.as_secs_f64() / lines[0].p50.as_secs_f64(),
                first = targets[0].addr,
                other = t.addr,
            );
        }
    }
    Ok(())
}

fn print_lines(lines: &[Line]) {
    for l in lines {
        println!("{l}");
    }
}
