//! `oms-load`: the load generator behind `bench/load.sh` and `bench/hello.sh`.
//!
//! - `oms-load suite --base URL --admin-token T`: seeds a running OMS, subscribes a loopback
//!   webhook receiver, then measures order intake and end-to-end routing at each concurrency,
//!   the hot-SKU race with its oversell check, and cached vs uncached reads.
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
use crate::scenarios::{Ctx, SKUS};
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
            } => {
                let opts = SuiteOptions {
                    duration: Duration::from_secs(seconds),
                    clients,
                    hot_stock,
                    hot_orders,
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

struct SuiteOptions {
    duration: Duration,
    clients: Vec<usize>,
    hot_stock: u32,
    hot_orders: u64,
}

async fn suite(base: &str, admin_token: String, opts: SuiteOptions) -> anyhow::Result<()> {
    let target = Target::parse(base).await?;
    wait_ready(&target, "/v1/openapi.json", Duration::from_secs(60)).await?;
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
    let mut ids = Vec::new();
    for &c in &opts.clients {
        eprintln!(
            "orders: {c} clients for {:?}, then waiting for every order to be routed",
            opts.duration
        );
        let (lines, made) = scenarios::orders(&ctx, c, opts.duration).await;
        print_lines(&lines);
        ids = made;
    }

    let hot_clients = 64;
    eprintln!(
        "hot SKU: {hot_clients} clients, {} orders for {} units",
        opts.hot_orders, opts.hot_stock
    );
    let (lines, verdict) =
        scenarios::hot_sku(&ctx, hot_clients, opts.hot_stock, opts.hot_orders).await?;
    print_lines(&lines);

    let orders: Arc<[String]> = ids
        .iter()
        .take(256)
        .map(|id| format!("/v1/orders/{id}"))
        .collect();
    let skus: Arc<[String]> = (0..SKUS)
        .map(|i| format!("/v1/availability/LOAD-{run}-{i}"))
        .collect();
    let read_clients = opts.clients.iter().copied().max().unwrap_or(16).min(16);
    for (name, paths) in [
        ("GET /v1/orders/{id}", orders),
        ("GET /v1/availability/{sku}", skus),
    ] {
        let mut pair = Vec::new();
        for conditional in [false, true] {
            eprintln!("reads: {name}, {read_clients} clients, conditional={conditional}");
            pair.push(
                scenarios::reads(
                    &ctx,
                    name,
                    read_clients,
                    opts.duration,
                    paths.clone(),
                    conditional,
                )
                .await,
            );
        }
        print_lines(&pair);
        println!(
            "ratio {name}: cached / uncached = {:.2}×",
            pair[1].per_second / pair[0].per_second
        );
    }
    println!("{verdict}");
    Ok(())
}

async fn hello(bases: &[String], duration: Duration, clients: &[usize]) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    for b in bases {
        let t = Target::parse(b).await?;
        wait_ready(&t, "/", Duration::from_secs(60)).await?;
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
