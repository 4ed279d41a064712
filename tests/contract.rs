//! The API contract under fuzzing: schemathesis (PyPI, pinned in
//! `scripts/schemathesis.requirements.txt`, installed by `scripts/install-schemathesis.sh`) runs
//! every check it has, stateful testing over the document's links included, against a real
//! `oms up` serving its own `/v1/openapi.json`, with a credential for each role (staff token,
//! fulfilment keys, customers' order tokens) — and must find nothing.
//!
//! Settings: `tests/schemathesis/schemathesis.toml` (seed, examples, phases, checks);
//! credentials and marketplace signatures: `tests/schemathesis/hooks.py`. On failure the test
//! prints schemathesis' report; the JUnit report is kept in `target/contract/`.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::oms::{
    Oms, OrderSpec, ADMIN_TOKEN, SHOPIFY_CHANNEL, SHOPIFY_SECRET, STANDARD_CHANNEL, STANDARD_SECRET,
};
use support::*;

/// The whole schemathesis run is stopped after this long (it normally takes ~3 minutes on
/// 2 cores); a stopped run fails the test.
const RUN_LIMIT: Duration = Duration::from_secs(8 * 60);
/// The bar: at least this many generated test cases.
const MIN_CASES: u64 = 1000;
const LOCATIONS: [&str; 3] = ["wh-east", "wh-west", "store-sf"];

#[test]
fn schemathesis_finds_no_contract_failure() {
    let schemathesis = install_schemathesis();
    let oms = Oms::start();
    oms.seed();
    for sku in ["SKU-1", "SKU-2", "SKU-3"] {
        for location in LOCATIONS {
            oms.stock(sku, location, 100_000);
        }
    }
    let fulfilment = fulfilment_keys(&oms);
    let known = Known::make(&oms);
    known.write_dictionaries();

    let out_dir = repo().join("target/contract");
    std::fs::create_dir_all(&out_dir).unwrap();
    let junit = out_dir.join("schemathesis-junit.xml");
    let mut cmd = Command::new(&schemathesis);
    cmd.current_dir(repo())
        .arg("--config-file")
        .arg("tests/schemathesis/schemathesis.toml")
        .arg("--no-color")
        .arg("run")
        .arg(schema_location(&oms))
        .arg("--url")
        .arg(&oms.host.base)
        .arg("--report")
        .arg("junit")
        .arg("--report-junit-path")
        .arg(&junit)
        .env("OMS_STAFF_TOKEN", ADMIN_TOKEN)
        .env("OMS_FULFILMENT_KEYS", fulfilment.to_string())
        .env("OMS_ORDER_TOKENS", known.tokens.to_string())
        .env("OMS_SHOPIFY_CHANNEL", SHOPIFY_CHANNEL)
        .env("OMS_SHOPIFY_SECRET", SHOPIFY_SECRET)
        .env("OMS_STANDARD_CHANNEL", STANDARD_CHANNEL)
        .env("OMS_STANDARD_SECRET", STANDARD_SECRET)
        // No progress bars or colours in the captured report.
        .env("NO_COLOR", "1")
        .env("COLUMNS", "120")
        .stdin(Stdio::null());
    let (ok, report) = run_bounded(cmd, RUN_LIMIT);
    let cases = generated_cases(&report);
    assert!(
        ok,
        "schemathesis found contract failures (or did not finish in {RUN_LIMIT:?}):\n{report}\n\
         --- oms log (tail) ---\n{}",
        tail(&oms.host.log(), 80)
    );
    assert!(
        cases >= MIN_CASES,
        "schemathesis generated {cases} test cases, fewer than {MIN_CASES}:\n{report}"
    );
    // Every role's credential was sent and let through somewhere, and signed marketplace
    // deliveries got past the signature check (the hooks count answers per credential).
    let answers = answers_by_credential(&report);
    let let_through = |role: &str| {
        answers[role]
            .as_object()
            .is_some_and(|statuses| statuses.keys().any(|s| s.starts_with('2')))
    };
    for role in ["staff", "customer", "fulfilment"] {
        assert!(let_through(role), "no {role} request succeeded: {answers}");
    }
    let signed_and_verified = answers["marketplace"]
        .as_object()
        .is_some_and(|statuses| statuses.keys().any(|s| s != "401"));
    assert!(
        signed_and_verified,
        "no signed delivery passed its signature check: {answers}"
    );
    println!(
        "schemathesis: {cases} test cases, no failures; answers by credential: {answers}\n{}",
        summary(&report)
    );
}

/// Resources made before the run, so that operations on an existing order, shipment or return
/// are reached (a generated id almost never names one): their ids become the schemathesis
/// dictionaries `orders`, `shipments` and `returns` (`target/contract/*.dict`, read by
/// schemathesis.toml), and the orders' customer tokens go to the hooks.
struct Known {
    orders: Vec<String>,
    shipments: Vec<String>,
    returns: Vec<String>,
    /// `{"<order id>": "<access token>"}`.
    tokens: Value,
}

impl Known {
    /// Six routed orders; the shipment of two of them delivered, with a return requested on each.
    fn make(oms: &Oms) -> Known {
        let mut known = Known {
            orders: Vec::new(),
            shipments: Vec::new(),
            returns: Vec::new(),
            tokens: json!({}),
        };
        for n in 0..6 {
            let reply = staff(
                oms,
                "POST",
                "/v1/orders",
                &OrderSpec::default().body(),
                &[("idempotency-key", &format!("contract-seed-{n}"))],
            );
            assert_eq!(reply.status, 202, "seed order: {}", reply.body);
            let accepted = reply.json();
            let id = accepted["id"].as_str().unwrap().to_string();
            known.tokens[&id] = accepted["access_token"].clone();
            known.orders.push(id);
        }
        for (n, id) in known.orders.clone().iter().enumerate() {
            let order = eventually(Duration::from_secs(30), "a seed order routed", || {
                let view = staff(oms, "GET", &format!("/v1/orders/{id}"), &Value::Null, &[]);
                let view = view.json();
                (view["status"] == "routed").then_some(view)
            });
            let shipment = order["shipments"][0]["id"].as_str().unwrap().to_string();
            known.shipments.push(shipment.clone());
            if n < 2 {
                let at = |update: &str| format!("/v1/shipments/{shipment}/{update}");
                let tracking = json!({"carrier": "UPS", "tracking": format!("1Z{n}")});
                for (update, body) in [("shipped", tracking), ("delivered", Value::Null)] {
                    let reply = staff(oms, "POST", &at(update), &body, &[]);
                    assert_eq!(reply.status, 200, "seed shipment {update}: {}", reply.body);
                }
                let request = json!({"items": [{"line": 0, "quantity": 1}]});
                let path = format!("/v1/orders/{id}/returns");
                let reply = staff(oms, "POST", &path, &request, &[]);
                assert_eq!(reply.status, 201, "seed return: {}", reply.body);
                known
                    .returns
                    .push(reply.json()["id"].as_str().unwrap().to_string());
            }
        }
        known
    }

    /// `target/contract/{orders,shipments,returns}.dict`, one quoted id a line (libFuzzer's
    /// dictionary format, which schemathesis reads).
    fn write_dictionaries(&self) {
        let dir = repo().join("target/contract");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, ids) in [
            ("orders", &self.orders),
            ("shipments", &self.shipments),
            ("returns", &self.returns),
        ] {
            let lines: String = ids.iter().map(|id| format!("\"{id}\"\n")).collect();
            std::fs::write(dir.join(format!("{name}.dict")), lines).unwrap();
        }
    }
}

/// A request as staff with a JSON body (none for `null`).
fn staff(oms: &Oms, method: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let mut all = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    all.extend_from_slice(headers);
    let body = (!body.is_null()).then(|| body.to_string());
    send(
        method,
        &oms.url(path),
        body.as_deref().map(str::as_bytes),
        &all,
    )
}

/// The document under test: the one the OMS serves, or the file `OMS_CONTRACT_SCHEMA` names (to
/// try a candidate document against the server before it is built in).
fn schema_location(oms: &Oms) -> String {
    std::env::var("OMS_CONTRACT_SCHEMA").unwrap_or_else(|_| oms.url("/v1/openapi.json"))
}

/// Installs (or finds, when already installed) the pinned schemathesis; its executable.
fn install_schemathesis() -> String {
    let out = Command::new("bash")
        .arg(repo().join("scripts/install-schemathesis.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/install-schemathesis.sh");
    assert!(
        out.status.success(),
        "scripts/install-schemathesis.sh failed"
    );
    let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        !path.is_empty(),
        "scripts/install-schemathesis.sh printed no path"
    );
    path
}

/// A fulfilment key per location, `{"<location>": "<key>"}`, created through the staff API.
fn fulfilment_keys(oms: &Oms) -> Value {
    let mut keys = serde_json::Map::new();
    for location in LOCATIONS {
        let body = json!({"role": "fulfilment", "location": location, "name": format!("contract {location}")});
        let reply = send(
            "POST",
            &oms.url("/v1/admin/keys"),
            Some(body.to_string().as_bytes()),
            &[
                ("authorization", &format!("Bearer {ADMIN_TOKEN}")),
                ("content-type", "application/json"),
            ],
        );
        assert_eq!(reply.status, 201, "POST /v1/admin/keys: {}", reply.body);
        let token = reply.json()["token"].as_str().unwrap().to_string();
        keys.insert(location.to_string(), Value::String(token));
    }
    Value::Object(keys)
}

/// Runs `cmd` to completion or until `limit` (then kills it): whether it succeeded, and its
/// stdout and stderr.
fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start schemathesis");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut report = out.join().unwrap();
    let stderr = err.join().unwrap();
    if !stderr.trim().is_empty() {
        report.push_str("\n--- stderr ---\n");
        report.push_str(&stderr);
    }
    if status.is_none() {
        report.push_str(&format!("\n--- stopped after {limit:?} ---\n"));
    }
    (status.is_some_and(|s| s.success()), report)
}

/// The number of generated test cases schemathesis reports (the line after `Test cases:`,
/// `N generated, ...`).
fn generated_cases(report: &str) -> u64 {
    let mut lines = report.lines().map(str::trim);
    lines.find(|line| *line == "Test cases:");
    lines
        .next()
        .and_then(|line| line.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// What the hooks counted: `{"<credential kind>": {"<status>": count}}`.
fn answers_by_credential(report: &str) -> Value {
    const PREFIX: &str = "oms-contract answers by credential: ";
    report
        .lines()
        .find_map(|line| line.strip_prefix(PREFIX))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("the hooks printed no answer counts:\n{report}"))
}

/// The report's closing summary (from its `SUMMARY` heading on).
fn summary(report: &str) -> &str {
    report.find("SUMMARY").map_or(report, |at| &report[at..])
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
