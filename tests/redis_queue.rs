//! The Redis Streams queue through real hosts: `oms up --queue-url` processes sharing one
//! `redis-server`, serving the probe app's queue subscriber (tests/components/subscriber).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::redis::RedisServer;
use support::*;

const TOKEN: &str = "tok-queue";

fn probe_app() -> PathBuf {
    require_wasm(&["probe", "subscriber"]);
    repo().join("tests/apps/probe/spin.toml")
}

/// A runtime config for the probe's two stores: `default` on `redis` (shared by the hosts,
/// so the subscriber's delivery counters are too) or on SQLite in the state folder.
fn runtime_config(dir: &Path, redis: Option<&RedisServer>) -> PathBuf {
    let rc = dir.join("rc.toml");
    let default = match redis {
        Some(r) => format!("type = \"redis\"\nurl = \"{}\"", r.url()),
        None => "type = \"spin\"\npath = \"kv.db\"".to_string(),
    };
    std::fs::write(
        &rc,
        format!(
            "[key_value_store.default]\n{default}\n\
             [key_value_store.other]\ntype = \"spin\"\npath = \"other.db\"\n"
        ),
    )
    .unwrap();
    rc
}

/// An `oms up` of the probe app with its queue on `queue`.
fn start_host(queue: &RedisServer, shared_kv: bool, extra: &[&str]) -> Host {
    let state = tempfile::tempdir().unwrap();
    let rc = runtime_config(state.path(), shared_kv.then_some(queue));
    let url = queue.url();
    let mut args = vec![
        "--runtime-config-file",
        rc.to_str().unwrap(),
        "--queue-url",
        &url,
    ];
    args.extend_from_slice(extra);
    Host::start_in(
        &probe_app(),
        &args,
        &[("SPIN_VARIABLE_API_TOKEN", TOKEN)],
        state,
    )
}

fn kv(host: &Host, key: &str) -> Option<String> {
    let r = get(&host.url(&format!("/probe/kv/{key}")));
    (r.status == 200).then_some(r.body)
}

/// The consumer holding the subscriber's unacknowledged messages on `events`.
fn holders(redis: &RedisServer) -> Vec<String> {
    let mut con = ::redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let pending: Vec<(String, String, u64, u64)> = ::redis::cmd("XPENDING")
        .arg("oms:q:ch:events")
        .arg("subscriber")
        .arg("-")
        .arg("+")
        .arg(10)
        .query(&mut con)
        .unwrap();
    pending
        .into_iter()
        .map(|(_, consumer, _, _)| consumer)
        .collect()
}

#[test]
fn a_message_in_flight_on_a_killed_host_is_delivered_by_another_after_the_visibility_timeout() {
    let redis = RedisServer::start();
    let flags = [
        "--queue-visibility-ms",
        "3000",
        "--queue-deadline-ms",
        "2500",
    ];
    let hosts = vec![
        start_host(&redis, true, &flags),
        start_host(&redis, true, &flags),
    ];
    for h in &hosts {
        h.wait_log("consumer ");
    }
    let r = post(
        &hosts[0].url("/probe/publish/events"),
        r#"{"key":"k","value":"handed over","sleep_ms":2000}"#,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    // The handler has started (and sleeps): find the host holding the message, kill it.
    eventually(Duration::from_secs(10), "first delivery", || {
        (kv(&hosts[0], "deliveries:k").as_deref() == Some("1")).then_some(())
    });
    let started = Instant::now();
    let holder = holders(&redis);
    assert_eq!(holder.len(), 1, "one consumer holds it: {holder:?}");
    let (mut doomed, mut survivors): (Vec<Host>, Vec<Host>) = hosts
        .into_iter()
        .partition(|h| h.log().contains(&format!("consumer {}", holder[0])));
    assert_eq!(doomed.len(), 1, "the holder is one of the two hosts");
    drop(doomed.pop().unwrap().kill()); // SIGKILL, mid-handler
    let survivor = survivors.pop().unwrap();

    let value = eventually(Duration::from_secs(20), "delivery by the survivor", || {
        kv(&survivor, "received:k")
    });
    let took = started.elapsed();
    assert_eq!(value, "handed over");
    assert_eq!(
        kv(&survivor, "deliveries:k").as_deref(),
        Some("2"),
        "delivered once more, by the survivor"
    );
    // Taken over only once the visibility timeout had passed (then the 2 s handler ran).
    assert!(
        took >= Duration::from_millis(2800),
        "taken over after {took:?}, before the 3 s visibility timeout"
    );
    survivor.wait_log("message handled");
    assert!(holders(&redis).is_empty(), "acknowledged");
}

#[test]
fn a_redis_outage_fails_publishes_cleanly_and_delivery_resumes_when_it_returns() {
    let server = RedisServer::start();
    let mut host = start_host(&server, false, &["--queue-retry-base-ms", "50"]);
    let publish = |host: &Host, key: &str| {
        post(
            &host.url("/probe/publish/events"),
            &format!(r#"{{"key":"{key}","value":"{key}!"}}"#),
        )
    };
    assert_eq!(publish(&host, "before").status, 202);
    eventually(
        Duration::from_secs(10),
        "delivery before the outage",
        || kv(&host, "received:before"),
    );

    let port = server.stop();
    let started = Instant::now();
    let r = publish(&host, "during");
    assert!(
        r.status >= 500,
        "a publish Redis cannot store fails: {} {}",
        r.status,
        r.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "and fails promptly"
    );
    host.wait_log("publish failed: not stored");
    host.wait_log("queue read failed");
    assert!(host.alive(), "the host survives the outage");
    assert_eq!(
        get(&host.url("/probe/var/greeting")).status,
        200,
        "and keeps serving"
    );

    let _server = RedisServer::try_start(port).expect("redis-server again on the same port");
    eventually(Duration::from_secs(20), "a publish accepted again", || {
        (publish(&host, "after").status == 202).then_some(())
    });
    let v = eventually(Duration::from_secs(20), "delivery after the outage", || {
        kv(&host, "received:after")
    });
    assert_eq!(v, "after!");
    host.wait_log("queue reachable again");
    assert_eq!(kv(&host, "received:during"), None, "never accepted");
}

#[test]
fn operators_see_and_redrive_dead_letters_on_redis_with_oms_queue() {
    let server = RedisServer::start();
    let host = start_host(
        &server,
        false,
        &["--queue-retry-base-ms", "20", "--queue-max-attempts", "2"],
    );
    let url = server.url();
    let queue = |args: &[&str]| {
        let mut all = vec!["queue", "--queue-url", &url];
        all.extend_from_slice(args);
        run_oms(&all, &[])
    };
    post(
        &host.url("/probe/publish/events"),
        r#"{"key":"p","value":"poison","fail":2}"#,
    );
    host.wait_log("dead-lettered");
    let (ok, out, err) = queue(&["dead"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("events -> subscriber after 2 attempts"),
        "{out}"
    );
    assert!(out.contains("handler returned"), "the last error: {out}");
    assert!(out.contains(r#"payload: {"key":"p""#), "{out}");
    let (ok, out, err) = queue(&["stats"]);
    assert!(ok, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("events"))
        .unwrap_or_else(|| panic!("no events row: {out}"));
    let counts: Vec<&str> = row.split_whitespace().skip(2).collect();
    assert_eq!(
        counts,
        ["0", "0", "0", "1"],
        "pending in-flight scheduled dead: {out}"
    );
    let id = out_id(&queue(&["dead"]).1);
    let (ok, out, _) = queue(&["retry", "--id", &id]);
    assert!(ok && out.starts_with("1 dead letter"), "{out}");
    let v = eventually(Duration::from_secs(10), "re-driven delivery", || {
        kv(&host, "received:p")
    });
    assert_eq!(v, "poison");
    assert_eq!(kv(&host, "deliveries:p").as_deref(), Some("3"));
    assert!(queue(&["dead"]).1.trim().is_empty());
}

/// The id after `#` on the first line of `oms queue dead`.
fn out_id(dead: &str) -> String {
    dead.lines()
        .next()
        .and_then(|l| l.strip_prefix('#'))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no dead letter listed: {dead}"))
        .to_string()
}
