//! subscriber: a purpose-built queue-triggered test component.
//!
//! Each message is JSON `{"key": "...", "value": "...", "fail": N, "sleep_ms": M}`. Every
//! delivery increments `deliveries:{key}`, then takes `sleep_ms` (a slow handler, to catch a
//! host with the message in flight); the first `fail` deliveries are refused (the handler
//! errors, so the host must retry); after that the value is stored under `received:{key}`.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

use spin_sdk::key_value::Store;
use spin_sdk::redis_component;
use spin_sdk::wit::wasi::keyvalue::{atomics, store as wkv};

#[redis_component]
fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    let msg: serde_json::Value = serde_json::from_slice(&message)?;
    let key = msg["key"].as_str().unwrap_or("none");
    let fail = msg["fail"].as_i64().unwrap_or(0);
    let bucket = wkv::open("default")?;
    let delivery = atomics::increment(&bucket, &format!("deliveries:{key}"), 1)?;
    if let Some(ms) = msg["sleep_ms"].as_u64() {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    if delivery <= fail {
        anyhow::bail!("refusing delivery {delivery} of {key} as asked");
    }
    let value = msg["value"].as_str().unwrap_or_default();
    Store::open_default()?.set(&format!("received:{key}"), value.as_bytes())?;
    Ok(())
}
