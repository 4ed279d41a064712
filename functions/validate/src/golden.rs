//! The golden Shopify corpus (`tests/fixtures/shopify/*.json`): payloads shaped like
//! Shopify's documented `orders/create` examples, each run through the intake
//! ([`shopify_intake::receive`] on an in-memory store holding the corpus's alias table,
//! `aliases.json`) and compared with `<name>.expected.json` beside it: the answer's status
//! and either the stored order (document, status, payment status, holds with their notes)
//! or the problem. `UPDATE_GOLDEN=1 cargo test --release -p validate golden` rewrites the
//! expected files; review the diff.

use std::path::{Path, PathBuf};

use oms_domain::{ChannelId, OrderId, OrderRecord, Sku};
use oms_edge::aliases::{self, AliasKind};
use oms_edge::{keys, Env, FunctionError, Kv, MemEnv};
use serde_json::{json, Map, Value};

use crate::shopify::Topic;
use crate::shopify_intake;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/shopify")
}

fn shop() -> ChannelId {
    ChannelId::parse("shop").unwrap()
}

/// An in-memory OMS with the corpus's alias table.
fn env_with_aliases() -> MemEnv {
    let env = MemEnv::new();
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(corpus().join("aliases.json")).unwrap())
            .unwrap();
    for (kind, k) in [
        ("variant", AliasKind::Variant),
        ("product", AliasKind::Product),
    ] {
        for (id, sku) in table[kind].as_object().unwrap() {
            let sku = Sku::parse(sku.as_str().unwrap()).unwrap();
            aliases::put(env.kv(), &shop(), k, id, sku, env.now()).unwrap();
        }
    }
    env
}

/// What intake made of one payload.
fn outcome(payload: &Map<String, Value>) -> Value {
    let env = env_with_aliases();
    match shopify_intake::receive(&env, &shop(), &Topic::OrdersCreate, None, payload) {
        Ok(answer) => {
            let external = crate::shopify::external_id(payload).unwrap();
            let id = OrderId::for_marketplace(&shop(), &external).to_string();
            let record: OrderRecord = env.kv().get_json(&keys::order(&id)).unwrap().unwrap();
            json!({
                "answer": answer.status,
                "status": record.status(),
                "payment_status": record.payment_status(),
                "holds": record.holds().iter().map(|h| json!({"reason": h.reason, "note": h.note})).collect::<Vec<_>>(),
                "order": record.order(),
            })
        }
        Err(FunctionError::Problem(p)) => json!({"answer": p.status, "problem": p}),
        Err(e) => panic!("unexpected {e:?}"),
    }
}

#[test]
fn every_payload_of_the_corpus_gives_its_expected_order_or_problem() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut names: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.ends_with(".json") && !name.ends_with(".expected.json") && name != "aliases.json"
        })
        .collect();
    names.sort();
    assert!(names.len() >= 12, "the corpus has {} payloads", names.len());
    let mut failures = Vec::new();
    for path in names {
        let payload: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let got = outcome(payload.as_object().unwrap());
        let expected_path = path.with_extension("expected.json");
        if update {
            std::fs::write(
                &expected_path,
                serde_json::to_string_pretty(&got).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let expected: Value = std::fs::read_to_string(&expected_path)
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or_else(|_| {
                panic!(
                    "{} is missing: run with UPDATE_GOLDEN=1",
                    expected_path.display()
                )
            });
        if got != expected {
            failures.push(format!(
                "{}:\n{}",
                path.display(),
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "differs from the expected files (UPDATE_GOLDEN=1 rewrites them):\n{}",
        failures.join("\n")
    );
}
