//! The operations console and the storefront demo page in a real browser: a real `oms up` of
//! the repository's `spin.toml`, seeded with the demo catalog, then the browser tests of
//! `tests/browser/*.test.mjs` (Node's test runner driving Debian's headless Chromium through
//! playwright-core), given the URL and the staff token in the environment. Screenshots land in
//! `target/screenshots/`.
//!
//! Needs `scripts/install-chromium.sh` (Chromium and the pinned playwright-core; `./oms test`
//! runs it first).

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::oms::{Oms, ADMIN_TOKEN};
use support::*;

/// How long the whole browser run may take before it is stopped and the test fails.
const BROWSER_DEADLINE: Duration = Duration::from_secs(300);

/// The demo catalog the storefront page sells (its own `products.json`), priced in the OMS.
fn seed(oms: &Oms) {
    oms.seed();
    let catalog: Value = serde_json::from_str(include_str!(
        "../functions/console/assets/shop/products.json"
    ))
    .expect("products.json is JSON");
    for p in catalog["products"].as_array().unwrap() {
        let sku = p["sku"].as_str().unwrap();
        oms.admin_put(
            &format!("/v1/admin/catalog/{sku}"),
            json!({"USD": p["price"]}),
        );
        oms.stock(sku, "wh-west", 500);
    }
    // A pre-order item: no stock, backordered without limit (an order waits, so it can be held).
    oms.admin_put("/v1/admin/catalog/PRE-ORD", json!({"USD": "45.00"}));
    oms.admin_put("/v1/admin/backorder/PRE-ORD", json!("unlimited"));
}

#[test]
fn console_and_storefront_in_headless_chromium() {
    require_wasm(&["console"]);
    let root = repo();
    let browser_dir = root.join("tests/browser");
    for (path, what) in [
        (Path::new("/usr/bin/chromium").to_path_buf(), "Chromium"),
        (
            browser_dir.join("node_modules/playwright-core"),
            "playwright-core",
        ),
    ] {
        assert!(
            path.exists(),
            "{what} is missing ({}): run `bash scripts/install-chromium.sh` (./oms test does)",
            path.display()
        );
    }
    let oms = Oms::start();
    seed(&oms);
    let shots = root.join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    let mut child = Command::new("node")
        .args([
            "--test",
            "--test-concurrency=1",
            "--test-reporter=spec",
            // A stuck test fails alone, and its file's `after` still closes Chromium.
            "--test-timeout=120000",
            "console.test.mjs",
            "shop.test.mjs",
        ])
        .current_dir(&browser_dir)
        .env("OMS_URL", oms.url(""))
        .env("OMS_STAFF_TOKEN", ADMIN_TOKEN)
        .env("OMS_SCREENSHOTS", &shots)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (Node.js 20+) runs the browser tests");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = out.read_to_string(&mut o);
        let _ = err.read_to_string(&mut e);
        (o, e)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > BROWSER_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (stdout, stderr) = reader.join().unwrap();
    println!("{stdout}\n{stderr}");
    let status = status.unwrap_or_else(|| {
        panic!("the browser tests ran past {BROWSER_DEADLINE:?}:\n{stdout}\n{stderr}")
    });
    assert!(
        status.success(),
        "browser tests failed ({status}):\n{stdout}\n{stderr}"
    );
    for name in [
        "console-dashboard",
        "console-dashboard-later",
        "console-order",
        "console-webhooks",
        "shop-invalid",
        "shop-order",
    ] {
        assert!(
            shots.join(format!("{name}.png")).is_file(),
            "screenshot {name}.png"
        );
    }
}
