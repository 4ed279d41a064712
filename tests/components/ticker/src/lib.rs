//! ticker: a purpose-built cron-triggered test component (no other export).
//!
//! Each run, for the scheduled instant `ts` (seconds) the host passes and the component's
//! variable `name`, adds one to `{name}:fired:{ts}` in the `default` store and records how
//! many milliseconds after `ts` it ran in `{name}:late:{ts}`, so a test can see whether every
//! instant ran, on time, and none twice.

// wit-bindgen's export glue is FFI (export_name, unsafe); nothing else in this crate is unsafe.
#![allow(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use spin_sdk::wit::wasi::keyvalue::{atomics, store as wkv};

/// The cron trigger's export (`handle-cron-event`, as Spin's cron trigger plugin), from the
/// WIT the host implements.
mod cron {
    #![allow(missing_docs)]
    spin_sdk::wit_bindgen::generate!({
        path: "../../../host/wit",
        world: "oms:host/cron-trigger",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });
    use super::Ticker;
    export!(Ticker);
}

use cron::fermyon::spin_cron::cron_types::{Error, Metadata};

struct Ticker;

impl cron::Guest for Ticker {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let late_ms = now_ms - metadata.timestamp as i64 * 1000;
        let name = spin_sdk::variables::get("name").map_err(|e| Error::Other(e.to_string()))?;
        let count = || -> Result<(), wkv::Error> {
            let bucket = wkv::open("default")?;
            let ts = metadata.timestamp;
            // `late` first: a test that sees `fired` can read `late` too.
            bucket.set(&format!("{name}:late:{ts}"), late_ms.to_string().as_bytes())?;
            atomics::increment(&bucket, &format!("{name}:fired:{ts}"), 1)?;
            Ok(())
        };
        count().map_err(|e| Error::Other(format!("ticker: {e:?}")))
    }
}
