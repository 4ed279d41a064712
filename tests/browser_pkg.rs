//! The browser package (target/browser-pkg, `scripts/build-browser.sh`) and the server agree on
//! every golden order fixture: each fixture is posted to a real `oms up` (validate, query,
//! admin) whose catalogue is `shared/tests/fixtures/catalog.json`; the answers (the whole
//! problem document, or for a 202 the order as the server then serves it) go to
//! `shared/browser/tests/golden.test.mjs`, which runs the package in Node and fails on any
//! difference, field by field.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::oms::Oms;
use support::*;

/// The golden fixtures, repo-relative, in the order the Node test lists them.
fn fixtures() -> Vec<String> {
    let mut out = Vec::new();
    for dir in [
        "tests/fixtures/orders/invalid",
        "shared/tests/fixtures/invalid",
        "shared/tests/fixtures/valid",
    ] {
        let mut names: Vec<String> = std::fs::read_dir(repo().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".json") && !n.ends_with(".expected.json"))
            .collect();
        names.sort();
        out.extend(names.into_iter().map(|n| format!("{dir}/{n}")));
    }
    out
}

fn package() -> PathBuf {
    let pkg = repo().join("target/browser-pkg");
    assert!(
        pkg.join("oms_browser_bg.wasm").exists(),
        "{} is not built: run scripts/build-browser.sh (scripts/build-wasm.sh and ./oms test run it)",
        pkg.display()
    );
    pkg
}

fn node_test(answers: &Path) -> (bool, String) {
    let out = Command::new("node")
        .arg("--test")
        .arg(repo().join("shared/browser/tests/"))
        .env("OMS_BROWSER_SERVER_ANSWERS", answers)
        .env("OMS_BROWSER_PKG", package())
        .output()
        .expect("node (Node.js 20) runs the browser package's tests");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn browser_and_server_agree_on_every_golden_fixture() {
    package();
    require_wasm(&["validate", "query", "admin"]);
    let oms = Oms::start_with(&["-c", "validate", "-c", "query", "-c", "admin"], &[]);
    let catalog: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("shared/tests/fixtures/catalog.json")).unwrap(),
    )
    .unwrap();
    for (sku, prices) in catalog.as_object().unwrap() {
        oms.admin_put(&format!("/v1/admin/catalog/{sku}"), prices.clone());
    }

    let mut cases = Vec::new();
    let mut accepted = 0;
    for (i, fixture) in fixtures().iter().enumerate() {
        let body = std::fs::read(repo().join(fixture)).unwrap();
        let r = send(
            "POST",
            &oms.url("/v1/orders"),
            Some(&body),
            &[
                ("idempotency-key", &format!("browser-pkg-{i}")),
                ("content-type", "application/json"),
            ],
        );
        let answer: Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("{fixture}: {} is not JSON ({e}): {}", r.status, r.body));
        let view = if r.status == 202 {
            accepted += 1;
            let token = answer["access_token"].as_str().unwrap();
            let read = send(
                "GET",
                &oms.url(answer["links"]["self"].as_str().unwrap()),
                None,
                &[("authorization", &format!("Bearer {token}"))],
            );
            assert_eq!(read.status, 200, "{fixture}: {}", read.body);
            read.json()
        } else {
            assert_eq!(
                r.content_type, "application/problem+json",
                "{fixture}: {}",
                r.body
            );
            Value::Null
        };
        cases.push(json!({"fixture": fixture, "status": r.status, "body": answer, "view": view}));
    }
    assert!(
        accepted >= 3,
        "the valid fixtures must be accepted: {accepted}"
    );
    assert!(cases.len() >= 30, "only {} fixtures", cases.len());

    let dir = tempfile::tempdir().unwrap();
    let answers = dir.path().join("answers.json");
    std::fs::write(
        &answers,
        serde_json::to_vec(&json!({"catalog": catalog, "cases": cases})).unwrap(),
    )
    .unwrap();
    let (ok, output) = node_test(&answers);
    assert!(
        ok,
        "the browser package disagrees with the server:\n{output}"
    );
    // The live comparison ran (it is skipped without the answers).
    assert!(
        output.contains("ok 2 - the browser answers exactly what the live server answered")
            && !output.contains("# SKIP"),
        "{output}"
    );

    // And the test can fail: a server answer changed in one field is caught.
    let mut tampered = cases.clone();
    let bad = tampered
        .iter_mut()
        .find(|c| c["status"] == 422)
        .expect("a refused fixture");
    bad["body"]["detail"] = json!("something else");
    std::fs::write(
        &answers,
        serde_json::to_vec(&json!({"catalog": catalog, "cases": tampered})).unwrap(),
    )
    .unwrap();
    let (ok, output) = node_test(&answers);
    assert!(
        !ok,
        "a differing problem document went unnoticed:\n{output}"
    );
}
