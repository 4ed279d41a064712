//! The core logic of each order lifecycle step — validate, reserve, route, refund, notify — as
//! one pure function from a JSON input document to a JSON output, plus a fixed, realistic input
//! per step.
//!
//! The same code runs natively (in the host's `cargo bench`) and inside the `steps` test
//! component, so a step as native Rust and the same step as a Wasm component can be compared on
//! the same bytes. Each step does what its function under `functions/` does between loading its
//! data and storing its result, through the domain crate; what the functions read from
//! key-value, the clock or the id generator is a field of the input document instead.

mod fixtures;
mod notify;
mod refund;
mod reserve;
mod route;
mod step;
mod validate;

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
    /// The webhook signing secret is not `whsec_` followed by a base64 key of 24 to 64 bytes.
    #[error("malformed webhook secret")]
    Secret,
    /// No step has this name.
    #[error("unknown step {0:?} (validate, reserve, route, refund or notify)")]
    UnknownStep(String),
}
