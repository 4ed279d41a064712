//! Each order lifecycle step — validate, reserve, route, refund, notify — run as the functions
//! run it, on a fixed, realistic input, from a JSON input document to a JSON output.
//!
//! The same code runs natively (in the host's `cargo bench`) and inside the `steps` test
//! component, so a step as native Rust and the same step as a Wasm component can be compared on
//! the same bytes. Nothing here re-states a step: each one calls the code its function calls —
//! the domain's `OrderRecord` methods, `oms_edge`'s step runner over an in-memory
//! [`oms_edge::MemEnv`] seeded from the input (the store's keys, the clock), and, where a
//! function's orchestration is not shared yet, the function's own source file compiled in
//! here as it is (see below), so a change to a step is measured the day it lands.
//!
//! # The functions' step files
//!
//! `functions/validate/src/{storefront,receipt}.rs`, `functions/reserve/src/reservation.rs`
//! and `functions/route/src/routing.rs` are compiled into this crate with `#[path]` (the
//! function crates are `cdylib`s carrying the component exports, so they cannot be linked as
//! libraries). They may use only `oms_domain`, `oms_edge` and the crates this one depends on;
//! a step file that starts to need more fails this crate's build, loudly, instead of drifting.
//! When those steps move into `oms_edge`, these modules become plain calls.

mod fixtures;
mod notify;
mod refund;
mod reserve;
mod route;
mod step;
mod validate;
mod world;

// The functions' own step code (see the crate docs). Items the benchmark does not call are
// expected to be unused here.
#[allow(dead_code)]
#[path = "../../../functions/validate/src/receipt.rs"]
mod receipt;
#[allow(dead_code)]
#[path = "../../../functions/reserve/src/reservation.rs"]
mod reservation;
#[allow(dead_code)]
#[path = "../../../functions/route/src/routing.rs"]
mod routing;
#[allow(dead_code)]
#[path = "../../../functions/validate/src/storefront.rs"]
mod storefront;

pub use fixtures::input;
pub use step::{run, run_repeated, Step};

/// Why a step refused its input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not the step's JSON document, or holds a value the domain does not parse.
    #[error("malformed input: {0}")]
    Json(#[from] serde_json::Error),
    /// A domain rule refused the request (invalid order, price mismatch, refund above the cap…).
    #[error(transparent)]
    Domain(#[from] oms_domain::Error),
    /// The step answered with a problem or failed (as the function would answer it).
    #[error("the step failed: {0}")]
    Step(String),
    /// The webhook signing secret is not `whsec_` followed by a base64 key of 24 to 64 bytes.
    #[error("malformed webhook secret: {0}")]
    Secret(#[from] oms_edge::standard_webhooks::SecretError),
    /// No step has this name.
    #[error("unknown step {0:?} (validate, reserve, route, refund or notify)")]
    UnknownStep(String),
}

impl From<oms_edge::FunctionError> for Error {
    fn from(e: oms_edge::FunctionError) -> Error {
        match e {
            oms_edge::FunctionError::Problem(p) => {
                let fields: Vec<&str> = p.invalid_params.iter().map(|f| f.name.as_str()).collect();
                Error::Step(format!("{} {}: {} {fields:?}", p.status, p.title, p.detail))
            }
            oms_edge::FunctionError::Internal(e) => Error::Step(e),
        }
    }
}

impl From<oms_edge::KvError> for Error {
    fn from(e: oms_edge::KvError) -> Error {
        Error::Step(e.to_string())
    }
}
