//! Golden order documents: every `fixtures/valid/*.json` is accepted (intake and catalogue
//! check) and round-trips; every `fixtures/invalid/x.json` is refused with exactly the
//! problems listed in `x.expected.json`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use oms_domain::{Catalog, Order, OrderId, Violations};
use serde_json::Value;
use uuid::Uuid;

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".expected.json")
        })
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn catalog() -> Catalog {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalog.json");
    serde_json::from_value(read(&path)).expect("catalog fixture is valid")
}

/// Intake, then the catalogue price check — what the validate component does.
fn validate(body: &Value) -> Result<Order, Violations> {
    let order = Order::from_request(
        body,
        OrderId::new(Uuid::from_u128(0x1234)),
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap(),
    )?;
    catalog().check(&order)?;
    Ok(order)
}

#[test]
fn valid_orders_are_accepted_and_round_trip() {
    let files = fixtures("valid");
    assert!(files.len() >= 3, "valid fixtures missing");
    for path in files {
        let body = read(&path);
        let order = validate(&body).unwrap_or_else(|v| panic!("{}: {v}", path.display()));
        // The stored form re-validates to the same order.
        let stored = serde_json::to_value(&order).unwrap();
        let back: Order = serde_json::from_value(stored.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(back, order, "{}", path.display());
        // Client totals equal the recomputed ones (compared as amounts, not text).
        let currency = order.currency();
        for name in ["subtotal", "discount", "shipping", "tax", "grand_total"] {
            let given = body["totals"][name].as_str().unwrap();
            let given = oms_domain::Money::parse(given, currency).unwrap();
            let stored = stored["totals"][name].as_str().unwrap();
            assert_eq!(
                oms_domain::Money::parse(stored, currency).unwrap(),
                given,
                "{} {name}",
                path.display()
            );
        }
        // A request body may not carry the fields the system assigns.
        let mut forged = body.clone();
        forged["id"] = Value::String(Uuid::from_u128(1).to_string());
        assert!(validate(&forged).is_err());
    }
}

#[test]
fn invalid_orders_report_exactly_the_expected_problems() {
    let files = fixtures("invalid");
    assert!(files.len() >= 10, "invalid fixtures missing");
    for path in files {
        let body = read(&path);
        let expected_path = path.with_extension("expected.json");
        let expected: BTreeSet<(String, String)> = read(&expected_path)["problems"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no problems list", expected_path.display()))
            .iter()
            .map(|p| {
                (
                    p["field"].as_str().unwrap().to_owned(),
                    p["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let problems = match validate(&body) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(v) => v,
        };
        let actual: BTreeSet<(String, String)> = problems
            .as_slice()
            .iter()
            .map(|v| (v.field.clone(), v.code.as_str().to_owned()))
            .collect();
        assert_eq!(actual, expected, "{}: {problems}", path.display());
        assert_eq!(
            actual.len(),
            problems.as_slice().len(),
            "{}: duplicates",
            path.display()
        );
        for v in problems.as_slice() {
            assert!(!v.detail.is_empty());
            // Problems about a value point at that value (RFC 6901), so a client can
            // highlight it; only absent fields and cross-field rules may point elsewhere.
            if v.code.as_str() != "missing" {
                assert!(
                    body.pointer(&v.field).is_some(),
                    "{}: {} does not resolve",
                    path.display(),
                    v.field
                );
            }
        }
    }
}
