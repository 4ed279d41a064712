//! probe: a purpose-built test component that exercises each host capability over HTTP.
//!
//! Routes (under the component's base route, read from `spin-path-info`):
//! - `GET|PUT|DELETE /kv/{key}?store=NAME` — fermyon key-value round trip (`GET /kv` lists keys)
//! - `POST /cas/{key}?store=NAME&barrier=N` — add one to a counter with wasi:keyvalue
//!   compare-and-swap, retrying on conflict; answers the number of attempts. With `barrier`,
//!   the first attempt reads, then waits until N requests have read (counted in
//!   `{key}:arrived`) before it swaps, so all N race on the same value: exactly one can win
//!   its first swap (fails after 5 s if fewer than N arrive)
//! - `POST /incr/{key}` — wasi:keyvalue atomic increment
//! - `POST /batch` — set-many then get-many then delete-many with wasi:keyvalue batch
//! - `GET /var/{name}` — a Spin variable
//! - `POST /publish/{channel}` — publish the body to the app's redis address (variable `address`)
//! - `GET /outbound?url=URL` — outbound HTTP GET
//! - `GET /loop` — never returns (the host must cut it off)
//! - `GET /alloc/{mib}` — allocate and touch that many MiB
//! - `ANY /echo` — the Spin headers and the body length

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store as wkv};

#[http_component]
fn handle(req: Request) -> anyhow::Result<Response> {
    let path = header(&req, "spin-path-info");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let store_name = query(&req, "store").unwrap_or_else(|| "default".to_string());
    match (req.method(), segments.as_slice()) {
        (Method::Get, ["kv"]) => {
            let store = Store::open(&store_name)?;
            ok(serde_json::to_string(&store.get_keys()?)?)
        }
        (Method::Get, ["kv", key]) => match Store::open(&store_name) {
            Ok(store) => match store.get(key)? {
                Some(v) => ok(v),
                None => status(404, "no such key"),
            },
            Err(e) => status(403, format!("{e}")),
        },
        (Method::Put, ["kv", key]) => {
            Store::open(&store_name)?.set(key, req.body())?;
            status(204, "")
        }
        (Method::Delete, ["kv", key]) => {
            Store::open(&store_name)?.delete(key)?;
            status(204, "")
        }
        (Method::Post, ["cas", key]) => {
            let bucket = wkv::open(&store_name)?;
            let barrier: Option<i64> = query(&req, "barrier").map(|n| n.parse()).transpose()?;
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                let cas = atomics::Cas::new(&bucket, key)?;
                let current: u64 = match cas.current()? {
                    Some(bytes) => String::from_utf8(bytes)?.parse()?,
                    None => 0,
                };
                if let (Some(n), 1) = (barrier, attempts) {
                    wait_until_arrived(&bucket, &format!("{key}:arrived"), n)?;
                }
                match atomics::swap(cas, (current + 1).to_string().as_bytes()) {
                    Ok(()) => break,
                    Err(atomics::CasError::CasFailed(_)) => continue,
                    Err(atomics::CasError::StoreError(e)) => anyhow::bail!("store error: {e:?}"),
                }
            }
            ok(attempts.to_string())
        }
        (Method::Post, ["incr", key]) => {
            let bucket = wkv::open(&store_name)?;
            ok(atomics::increment(&bucket, key, 1)?.to_string())
        }
        (Method::Post, ["batch"]) => {
            let bucket = wkv::open(&store_name)?;
            let pairs = vec![
                ("b1".to_string(), b"one".to_vec()),
                ("b2".to_string(), b"two".to_vec()),
            ];
            batch::set_many(&bucket, &pairs)?;
            let got = batch::get_many(&bucket, &["b1".into(), "b2".into(), "b3".into()])?;
            batch::delete_many(&bucket, &["b1".into()])?;
            let after = bucket.exists("b1")?;
            let got: Vec<(String, Option<String>)> = got
                .into_iter()
                .map(|(k, v)| (k, v.map(|b| String::from_utf8_lossy(&b).into_owned())))
                .collect();
            ok(serde_json::json!({"got": got, "b1_exists_after_delete": after}).to_string())
        }
        (Method::Get, ["var", name]) => match spin_sdk::variables::get(name) {
            Ok(v) => ok(v),
            Err(e) => status(404, format!("{e}")),
        },
        (Method::Post, ["publish", channel]) => {
            let address = spin_sdk::variables::get("address")?;
            let conn = spin_sdk::redis::Connection::open(&address)?;
            conn.publish(channel, req.body())?;
            status(202, "published")
        }
        (Method::Get, ["outbound"]) => {
            let url = query(&req, "url").unwrap_or_default();
            let out = Request::get(url).build();
            match spin_sdk::http::run(spin_sdk::http::send::<_, Response>(out)) {
                Ok(resp) => ok(format!("status {}", resp.status())),
                Err(e) => status(502, format!("outbound failed: {e}")),
            }
        }
        (Method::Get, ["loop"]) => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        (Method::Get, ["alloc", mib]) => {
            let mib: usize = mib.parse()?;
            let mut v: Vec<u8> = Vec::new();
            v.try_reserve_exact(mib << 20)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            v.resize(mib << 20, 1);
            ok(format!("allocated {}", std::hint::black_box(v).len()))
        }
        (_, ["echo"]) => {
            let mut spin: Vec<(String, String)> = req
                .headers()
                .filter(|(k, _)| k.starts_with("spin-"))
                .map(|(k, v)| (k.to_string(), v.as_str().unwrap_or("").to_string()))
                .collect();
            spin.sort();
            ok(serde_json::json!({"headers": spin, "body_len": req.body().len()}).to_string())
        }
        _ => status(
            404,
            format!("probe has no route for {} {path}", req.method()),
        ),
    }
}

/// Counts this request in `counter`, then waits until `n` have been counted.
fn wait_until_arrived(bucket: &wkv::Bucket, counter: &str, n: i64) -> anyhow::Result<()> {
    let mut arrived = atomics::increment(bucket, counter, 1)?;
    for _ in 0..5000 {
        if arrived >= n {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
        arrived = atomics::increment(bucket, counter, 0)?;
    }
    anyhow::bail!("barrier: only {arrived} of {n} requests arrived within 5 s")
}

fn header(req: &Request, name: &str) -> String {
    req.header(name)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn query(req: &Request, name: &str) -> Option<String> {
    req.query()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.replace("%3A", ":").replace("%2F", "/"))
}

fn ok(body: impl Into<Vec<u8>>) -> anyhow::Result<Response> {
    Ok(Response::builder().status(200).body(body.into()).build())
}

fn status(code: u16, body: impl Into<Vec<u8>>) -> anyhow::Result<Response> {
    Ok(Response::builder().status(code).body(body.into()).build())
}
