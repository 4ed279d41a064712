//! The cron trigger, end to end: `tests/components/ticker` on two schedules (Spin's cron
//! trigger plugin format, app in `tests/apps/cron`) run by real `oms up` processes, alone and
//! two sharing one key-value store (a SQLite file, a Redis server), which must fire each
//! scheduled instant once between them.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use support::oms::{Oms, OrderSpec};
use support::*;

fn cron_app() -> PathBuf {
    require_wasm(&["ticker", "probe"]);
    repo().join("tests/apps/cron/spin.toml")
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One schedule's runs as the ticker recorded them: instant (s) → (runs, ms late).
fn runs(host: &Host, name: &str) -> BTreeMap<i64, (u64, i64)> {
    let keys: Vec<String> = serde_json::from_value(get(&host.url("/probe/kv")).json()).unwrap();
    let prefix = format!("{name}:fired:");
    let mut out = BTreeMap::new();
    for key in keys {
        let Some(ts) = key.strip_prefix(&prefix) else {
            continue;
        };
        let count = get(&host.url(&format!("/probe/kv/{key}"))).body;
        let late = get(&host.url(&format!("/probe/kv/{name}:late:{ts}"))).body;
        out.insert(
            ts.parse().unwrap(),
            (count.parse().unwrap(), late.parse().unwrap()),
        );
    }
    out
}

/// Checks one schedule's runs, read at `to` from hosts up since `from`: every instant of the
/// schedule from the first to the last ran exactly once and on time, and at most the first
/// instant after `from` (start-up) is missing.
fn check_runs(runs: &BTreeMap<i64, (u64, i64)>, step: i64, (from, to): (f64, f64), what: &str) {
    let instants: Vec<i64> = runs.keys().copied().collect();
    assert!(!instants.is_empty(), "{what}: never ran");
    for (ts, (count, late)) in runs {
        assert_eq!(
            *count, 1,
            "{what}: instant {ts} ran {count} times ({runs:?})"
        );
        assert!(
            (0..750).contains(late),
            "{what}: instant {ts} ran {late} ms after it ({runs:?})"
        );
        if step == 2 {
            assert_eq!(ts % 2, 1, "{what}: \"1/2 * * * * *\" fires on odd seconds");
        }
    }
    for pair in instants.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            step,
            "{what}: a gap or a repeat in {instants:?}"
        );
    }
    let (first, last) = (instants[0] as f64, instants[instants.len() - 1] as f64);
    assert!(
        first > from - 1.0 && first <= from + 2.0 * step as f64,
        "{what}: first run {first} for hosts up since {from:.3}"
    );
    assert!(
        last <= to && last > to - step as f64 - 1.0,
        "{what}: last run {last}, read at {to:.3}"
    );
}

/// Sleeps about `d`, then on until 0.3 s past a whole second: runs fire on whole seconds and
/// take a few ms, so reading then sees no run half done.
fn sleep_to_quiet_moment(d: Duration) {
    std::thread::sleep(d);
    let frac = unix_now().fract();
    let wait = if frac < 0.3 { 0.3 - frac } else { 1.3 - frac };
    std::thread::sleep(Duration::from_secs_f64(wait));
}

/// A runtime config putting the `default` store in `dir/kv.db`.
fn shared_sqlite(dir: &Path) -> PathBuf {
    let rc = dir.join("rc.toml");
    std::fs::write(
        &rc,
        "[key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n",
    )
    .unwrap();
    rc
}

/// How many runs a host logged.
/// Runs the host logged as done for instants up to `to` (unix seconds): a later instant may
/// fire while the test reads, and must not count on one side only.
fn runs_logged(host: &Host, to: f64) -> usize {
    host.log()
        .lines()
        .filter(|l| l.contains("cron run done"))
        .filter_map(|l| l.split("instant=").nth(1)?.split_whitespace().next())
        .filter_map(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .filter(|at| at.timestamp() as f64 <= to)
        .count()
}

#[test]
fn schedules_fire_on_time_each_instant_once() {
    let host = Host::start(&cron_app(), &[], &[]);
    let from = unix_now();
    sleep_to_quiet_moment(Duration::from_millis(4_000));
    let to = unix_now();
    check_runs(&runs(&host, "every-second"), 1, (from, to), "every second");
    check_runs(&runs(&host, "odd-seconds"), 2, (from, to), "odd seconds");
    assert!(!host.log().contains("cron run failed"), "{}", host.log());
}

/// Two hosts on one store, each running both schedules: every instant runs once between them.
fn two_hosts_fire_each_instant_once(args: &[&str]) {
    let a = Host::start(&cron_app(), args, &[]);
    let from = unix_now();
    let b = Host::start(&cron_app(), args, &[]);
    sleep_to_quiet_moment(Duration::from_millis(5_000));
    let to = unix_now();
    let every = runs(&a, "every-second");
    let odd = runs(&b, "odd-seconds");
    let (by_a, by_b) = (runs_logged(&a, to), runs_logged(&b, to));
    check_runs(&every, 1, (from, to), "every second, two hosts");
    check_runs(&odd, 2, (from, to), "odd seconds, two hosts");
    // Each stored run was made by exactly one of the hosts.
    let stored =
        |runs: &BTreeMap<i64, (u64, i64)>| runs.keys().filter(|&&ts| ts as f64 <= to).count();
    assert_eq!(
        by_a + by_b,
        stored(&every) + stored(&odd),
        "runs logged by host a: {by_a}, by host b: {by_b}"
    );
    println!("runs by host a: {by_a}, by host b: {by_b}");
    for h in [&a, &b] {
        assert!(!h.log().contains("cron run failed"), "{}", h.log());
    }
}

#[test]
fn two_hosts_sharing_sqlite_fire_each_instant_once() {
    let shared = tempfile::tempdir().unwrap();
    let rc = shared_sqlite(shared.path());
    two_hosts_fire_each_instant_once(&["--runtime-config-file", rc.to_str().unwrap()]);
}

#[test]
fn two_hosts_sharing_redis_fire_each_instant_once() {
    let redis = support::redis::RedisServer::start();
    let rc = redis.runtime_config();
    two_hosts_fire_each_instant_once(&["--runtime-config-file", rc.to_str().unwrap()]);
}

#[test]
fn a_host_runs_only_the_schedules_of_the_components_it_serves() {
    let host = Host::start(&cron_app(), &["-c", "probe", "-c", "odd-seconds"], &[]);
    let from = unix_now();
    sleep_to_quiet_moment(Duration::from_millis(3_000));
    let to = unix_now();
    check_runs(
        &runs(&host, "odd-seconds"),
        2,
        (from, to),
        "odd seconds, selected",
    );
    assert!(runs(&host, "every-second").is_empty(), "{}", host.log());
}

#[test]
fn a_component_without_the_cron_export_fails_start() {
    require_wasm(&["probe"]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    let probe = repo().join("target/wasm32-wasip1/release/probe.wasm");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"t\"\n\
             [[trigger.cron]]\ncomponent = \"web\"\ncron_expression = \"0 * * * * *\"\n\
             [component.web]\nsource = {:?}\n",
            probe.to_str().unwrap()
        ),
    )
    .unwrap();
    let (ok, _, err) = run_oms(
        &[
            "up",
            "--from",
            manifest.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains("web")
            && err.contains("used by a cron trigger but does not export handle-cron-event"),
        "{err}"
    );
}

/// The OMS's own schedule: spin.toml's `expiry-sweeper` (reserve's code on a cron trigger)
/// cancels an unpaid order whose reservation expired, and gives its stock back, at the next
/// whole minute, with no call to the sweep route.
#[test]
fn the_oms_sweeps_expired_reservations_every_minute() {
    let oms = Oms::start_with(&[], &[("SPIN_VARIABLE_RESERVATION_TTL_MINUTES", "0")]);
    oms.seed();
    oms.stock("SKU-1", "wh-east", 1);
    oms.admin_put("/v1/admin/backorder/SKU-1", json!("unlimited"));
    let unpaid = OrderSpec {
        lines: vec![("SKU-1", 3, 1999)],
        payment_status: "authorized",
        ..OrderSpec::default()
    };
    let id = oms.place_ok(&unpaid.body());
    oms.wait_status(&id, "backordered");
    let order = eventually(Duration::from_secs(75), "the scheduled sweep", || {
        let order = oms.order(&id);
        (order["status"] == "cancelled").then_some(order)
    });
    assert!(
        order["reason"].as_str().unwrap().contains("expired"),
        "{order:#}"
    );
    assert_eq!(oms.availability("SKU-1")["available"], 1);
    oms.host
        .wait_log(&format!("reserve: expiry sweep: {{\"expired\":[\"{id}\"]"));
    assert!(
        oms.host.log().contains("cron run done"),
        "{}",
        oms.host.log()
    );
}
