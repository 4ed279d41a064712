//! The host, end to end: purpose-built components (tests/components) run by a real `oms up`
//! over real HTTP.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::*;

fn probe_app() -> PathBuf {
    require_wasm(&["probe", "subscriber"]);
    repo().join("tests/apps/probe/spin.toml")
}

const TOKEN: &str = "tok-7f3a9c-secret";

/// The probe app with its required secret set and a runtime config defining a second store.
fn start_probe(extra: &[&str], env: &[(&str, &str)]) -> Host {
    let state = tempfile::tempdir().unwrap();
    let rc = write_runtime_config(&state);
    let mut args = vec!["--runtime-config-file", rc.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut all_env = vec![("SPIN_VARIABLE_API_TOKEN", TOKEN)];
    all_env.extend_from_slice(env);
    Host::start_in(&probe_app(), &args, &all_env, state)
}

/// A Spin runtime config with the probe's two stores, in the state folder.
fn write_runtime_config(state: &tempfile::TempDir) -> PathBuf {
    let rc = state.path().join("rc.toml");
    std::fs::write(
        &rc,
        "[key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n\
         [key_value_store.other]\ntype = \"spin\"\npath = \"other.db\"\n",
    )
    .unwrap();
    rc
}

#[test]
fn key_value_round_trip_with_store_grants() {
    let host = start_probe(&[], &[]);
    assert_eq!(put(&host.url("/probe/kv/greeting"), "bonjour").status, 204);
    let r = get(&host.url("/probe/kv/greeting"));
    assert_eq!((r.status, r.body.as_str()), (200, "bonjour"));
    // Stores are separate namespaces.
    assert_eq!(get(&host.url("/probe/kv/greeting?store=other")).status, 404);
    assert_eq!(
        put(&host.url("/probe/kv/greeting?store=other"), "hallo").status,
        204
    );
    assert_eq!(get(&host.url("/probe/kv/greeting")).body, "bonjour");
    assert_eq!(
        get(&host.url("/probe/kv")).json(),
        serde_json::json!(["greeting"])
    );
    assert_eq!(
        send("DELETE", &host.url("/probe/kv/greeting"), None, &[]).status,
        204
    );
    assert_eq!(get(&host.url("/probe/kv/greeting")).status, 404);
    // The same code without a grant is denied the store.
    let denied = get(&host.url("/limited/kv/greeting"));
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.body.contains("AccessDenied"), "{}", denied.body);
    host.wait_log("not granted");
}

/// 64 requests read the counter, wait until all 64 have read it (a barrier in the store), then
/// swap: exactly one can win on its first attempt, the other 63 must see a conflict and retry,
/// and no increment is lost.
#[test]
fn compare_and_swap_loses_no_update_under_a_race() {
    // The barrier holds every request until the last one has arrived: more than the default
    // 1 s deadline on a loaded machine.
    let host = start_probe(&["--http-deadline-ms", "10000"], &[]);
    let n = 64;
    let url = host.url(&format!("/probe/cas/counter?barrier={n}"));
    let attempts: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(|| post(&url, ""))).collect();
        handles
            .into_iter()
            .map(|h| {
                let r = h.join().unwrap();
                assert_eq!(r.status, 200, "{}", r.body);
                r.body.parse().unwrap()
            })
            .collect()
    });
    assert_eq!(
        get(&host.url("/probe/kv/counter")).body,
        n.to_string(),
        "every increment counted"
    );
    let first_try = attempts.iter().filter(|a| **a == 1).count();
    assert_eq!(
        first_try, 1,
        "all {n} swapped the same value: one wins, every other one sees a conflict ({attempts:?})"
    );
    assert!(
        attempts.iter().sum::<u32>() >= 2 * n - 1,
        "each loser retries at least once: {attempts:?}"
    );

    // Atomic increment, raced too.
    let url = host.url("/probe/incr/hits");
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| assert_eq!(post(&url, "").status, 200));
        }
    });
    assert_eq!(get(&host.url("/probe/kv/hits")).body, n.to_string());
}

#[test]
fn batch_operations() {
    let host = start_probe(&[], &[]);
    let r = post(&host.url("/probe/batch"), "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"got": [["b1", "one"], ["b2", "two"], ["b3", null]], "b1_exists_after_delete": false})
    );
}

#[test]
fn variables_resolve_from_defaults_and_environment_and_secrets_stay_out_of_logs() {
    let host = start_probe(&[], &[("SPIN_VARIABLE_GREETING", "hi")]);
    assert_eq!(get(&host.url("/probe/var/greeting")).body, "hi, world");
    assert_eq!(get(&host.url("/probe/var/token")).body, TOKEN);
    let undeclared = get(&host.url("/probe/var/nothing"));
    assert_eq!(undeclared.status, 404);
    assert!(undeclared.body.contains("Undefined"), "{}", undeclared.body);
    // A component sees only its own variables.
    assert_eq!(get(&host.url("/limited/var/token")).status, 404);
    assert!(!host.log().contains(TOKEN), "a secret reached the log");
}

#[test]
fn a_missing_required_variable_stops_start_with_its_name() {
    let state = tempfile::tempdir().unwrap();
    let rc = write_runtime_config(&state);
    let (ok, _, err) = run_oms(
        &[
            "up",
            "--from",
            probe_app().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            state.path().to_str().unwrap(),
            "--runtime-config-file",
            rc.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("SPIN_VARIABLE_API_TOKEN"), "{err}");
}

#[test]
fn headers_follow_spin_routing() {
    let host = start_probe(&[], &[]);
    let r = send("POST", &host.url("/items/42/echo?x=1"), Some(b"abc"), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let headers: std::collections::HashMap<String, String> =
        serde_json::from_value(r.json()["headers"].clone())
            .map(|v: Vec<(String, String)>| v.into_iter().collect())
            .unwrap();
    assert_eq!(headers["spin-path-match-id"], "42");
    assert_eq!(headers["spin-path-info"], "/echo");
    assert_eq!(headers["spin-matched-route"], "/items/:id/...");
    assert_eq!(headers["spin-component-route"], "/items/:id");
    assert!(
        headers["spin-full-url"].ends_with("/items/42/echo?x=1"),
        "{headers:?}"
    );
    assert!(headers.contains_key("spin-client-addr"));
    assert_eq!(r.json()["body_len"], 3);

    let none = get(&host.url("/nowhere"));
    assert_eq!(none.status, 404);
    assert_eq!(none.content_type, "application/problem+json");
}

#[test]
fn published_messages_reach_the_subscriber_with_retries() {
    let host = start_probe(&["--queue-retry-base-ms", "20"], &[]);
    let r = post(
        &host.url("/probe/publish/events"),
        r#"{"key":"a","value":"first"}"#,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    eventually(Duration::from_secs(10), "delivery of a", || {
        let r = get(&host.url("/probe/kv/received:a"));
        (r.status == 200).then_some(r.body)
    });
    // Refused twice, delivered on the third attempt.
    post(
        &host.url("/probe/publish/events"),
        r#"{"key":"b","value":"second","fail":2}"#,
    );
    let v = eventually(Duration::from_secs(10), "delivery of b", || {
        let r = get(&host.url("/probe/kv/received:b"));
        (r.status == 200).then_some(r.body)
    });
    assert_eq!(v, "second");
    assert_eq!(get(&host.url("/probe/kv/deliveries:b")).body, "3");
    host.wait_log("will retry");
}

#[test]
fn a_message_that_keeps_failing_is_dead_lettered_and_can_be_redriven() {
    let host = start_probe(
        &["--queue-retry-base-ms", "10", "--queue-max-attempts", "3"],
        &[],
    );
    post(
        &host.url("/probe/publish/events"),
        r#"{"key":"c","value":"poison","fail":3}"#,
    );
    host.wait_log("dead-lettered");
    assert_eq!(get(&host.url("/probe/kv/deliveries:c")).body, "3");
    assert_eq!(get(&host.url("/probe/kv/received:c")).status, 404);
    let manifest = probe_app();
    let state = host.state.path().to_str().unwrap().to_string();
    let queue = |action: &str| {
        run_oms(
            &[
                "queue",
                "--from",
                manifest.to_str().unwrap(),
                "--state-dir",
                &state,
                action,
            ],
            &[],
        )
    };
    let (ok, out, err) = queue("dead");
    assert!(ok, "{err}");
    assert!(
        out.contains("events -> subscriber after 3 attempts"),
        "{out}"
    );
    assert!(
        out.contains("refusing delivery 3 of c") || out.contains("handler returned"),
        "{out}"
    );
    // An operator re-drives it: the fourth delivery succeeds.
    let (ok, out, _) = queue("retry");
    assert!(ok && out.starts_with("1 dead letter"), "{out}");
    let v = eventually(Duration::from_secs(10), "re-driven delivery", || {
        let r = get(&host.url("/probe/kv/received:c"));
        (r.status == 200).then_some(r.body)
    });
    assert_eq!(v, "poison");
}

#[test]
fn an_accepted_message_survives_a_crash() {
    // The first delivery fails and the retry is far away; the host is killed before it.
    let host = start_probe(&["--queue-retry-base-ms", "1500"], &[]);
    post(
        &host.url("/probe/publish/events"),
        r#"{"key":"d","value":"durable","fail":1}"#,
    );
    eventually(Duration::from_secs(10), "first delivery", || {
        (get(&host.url("/probe/kv/deliveries:d")).body == "1").then_some(())
    });
    let state = host.kill();
    let rc = state.path().join("rc.toml");
    let host = Host::start_in(
        &probe_app(),
        &["--runtime-config-file", rc.to_str().unwrap()],
        &[("SPIN_VARIABLE_API_TOKEN", TOKEN)],
        state,
    );
    let v = eventually(Duration::from_secs(15), "delivery after restart", || {
        let r = get(&host.url("/probe/kv/received:d"));
        (r.status == 200).then_some(r.body)
    });
    assert_eq!(v, "durable");
    host.wait_log("loaded compiled component from cache");
}

#[test]
fn a_runaway_guest_is_cut_off_and_the_host_keeps_serving() {
    let mut host = start_probe(&[], &[]);
    let started = Instant::now();
    let r = get(&host.url("/probe/loop"));
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.content_type, "application/problem+json");
    assert!(took < Duration::from_secs(5), "cut off after {took:?}");
    assert!(host.alive());
    assert_eq!(get(&host.url("/probe/var/greeting")).status, 200);
}

#[test]
fn a_guest_waiting_on_a_silent_server_is_cut_off_at_its_deadline() {
    // A server that accepts and never answers: the guest waits in a host call (outbound
    // HTTP), where the epoch deadline cannot interrupt it; the clock must.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let keep = std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(20));
        drop(held);
    });
    let mut host = start_probe(&["--http-deadline-ms", "1000"], &[]);
    let started = Instant::now();
    let r = get(&host.url(&format!(
        "/probe/outbound?url=http://127.0.0.1:{port}/never"
    )));
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.body);
    // The server stays silent for 20 s: an answer well before that came from the deadline.
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    assert_eq!(r.content_type, "application/problem+json");
    assert!(host.alive());
    assert_eq!(get(&host.url("/probe/var/greeting")).status, 200);
    drop(keep);
}

#[test]
fn memory_beyond_the_limit_fails_the_request_not_the_host() {
    let mut host = start_probe(&["--memory-limit-mib", "64"], &[]);
    assert_eq!(get(&host.url("/probe/alloc/16")).status, 200);
    let r = get(&host.url("/probe/alloc/200"));
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(host.alive());
    assert_eq!(get(&host.url("/probe/alloc/16")).status, 200);
}

#[test]
fn an_oversized_body_gets_413_before_the_guest_runs() {
    let host = start_probe(&["--max-body-bytes", "1024"], &[]);
    let big = vec![b'x'; 4096];
    let r = send("POST", &host.url("/probe/echo"), Some(&big), &[]);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.content_type, "application/problem+json");
    assert!(r.json()["detail"].as_str().unwrap().contains("1024"));
    let ok = send("POST", &host.url("/probe/echo"), Some(&big[..1000]), &[]);
    assert_eq!(ok.status, 200);
}

#[test]
fn outbound_http_is_limited_to_allowed_hosts() {
    let host = start_probe(&[], &[]);
    let target = host.url("/probe/var/greeting");
    let allowed = get(&host.url(&format!("/probe/outbound?url={target}")));
    assert_eq!((allowed.status, allowed.body.as_str()), (200, "status 200"));
    let denied = get(&host.url(&format!("/limited/outbound?url={target}")));
    assert_eq!(denied.status, 502, "{}", denied.body);
    assert!(denied.body.contains("HttpRequestDenied"), "{}", denied.body);
    host.wait_log("not in allowed_outbound_hosts");
    // A component without a redis grant cannot publish either.
    let r = post(&host.url("/limited/publish/events"), "{}");
    assert_eq!(r.status, 500, "{}", r.body);
}

/// Every bad manifest under tests/fixtures/manifests fails start with the message in its
/// `.expected` file (file and field named), and nothing is served.
#[test]
fn bad_manifests_are_reported_with_file_and_field() {
    let dir = repo().join("tests/fixtures/manifests");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        let state = tempfile::tempdir().unwrap();
        let (ok, _, err) = run_oms(
            &[
                "up",
                "--from",
                path.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
                state.path().to_str().unwrap(),
            ],
            &[],
        );
        assert!(!ok, "{} should not start", path.display());
        let err = err.replace(dir.to_str().unwrap(), "<dir>");
        assert!(
            err.contains(expected.trim()),
            "{}:\nexpected: {}\ngot: {err}",
            path.display(),
            expected.trim()
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} golden manifests found");
}

/// The OMS manifest itself loads every lifecycle component and serves its routes.
#[test]
fn the_oms_manifest_serves_its_routes() {
    require_wasm(&[
        "validate", "reserve", "route", "notify", "refund", "query", "admin",
    ]);
    let host = Host::start(
        &repo().join("spin.toml"),
        &[],
        &[("SPIN_VARIABLE_ADMIN_TOKEN", "t")],
    );
    // Each answer comes from a component (a problem document of its own), not the host's
    // "No route".
    for (method, path) in [
        ("POST", "/v1/orders"),
        ("POST", "/v1/orders/abc/refunds"),
        ("GET", "/v1/availability/SKU-1"),
        ("PUT", "/v1/admin/catalog/X"),
    ] {
        let r = send(method, &host.url(path), Some(b"{}"), &[]);
        assert!(!r.body.contains("No route"), "{method} {path}: {}", r.body);
    }
    assert_eq!(get(&host.url("/v1/nowhere")).json()["title"], "No route");
}
