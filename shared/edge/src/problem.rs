//! RFC 9457 problem documents, and the error type handlers return.

use oms_domain::{ProblemDocument, Violation};
use serde::Serialize;
use spin_sdk::http::Response;

use crate::kv::KvError;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// This occurrence.
    pub detail: String,
    /// The fields at fault (JSON Pointers), for validation problems.
    #[serde(rename = "invalid-params", skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
    /// The `Allow` header of a 405: the methods the resource takes.
    #[serde(skip)]
    pub allow: Option<Box<str>>,
}

/// One offending field.
pub use oms_domain::InvalidParam;

impl Problem {
    /// A problem of `status` with a type slug (`https://oms.dev/problems/<slug>`).
    pub fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Problem {
        ProblemDocument::new(status, slug, title, detail).into()
    }

    /// 422 with every violation named.
    pub fn invalid(detail: impl Into<String>, violations: &[Violation]) -> Problem {
        ProblemDocument::invalid(detail, violations).into()
    }

    /// 400/401/422 naming a single field (a header, a path segment, a JSON Pointer).
    pub fn field(
        status: u16,
        slug: &str,
        title: &str,
        field: &str,
        code: &str,
        reason: impl Into<String>,
    ) -> Problem {
        ProblemDocument::field(status, slug, title, field, code, reason).into()
    }

    /// 404 for a resource.
    pub fn not_found(what: &str, id: &str) -> Problem {
        Problem::new(404, "not-found", "Not found", format!("no {what} {id:?}"))
    }

    /// 400 for a request that must carry an `Idempotency-Key` header; `why` says what the key
    /// protects against.
    pub fn idempotency_key_required(why: &str) -> Problem {
        Problem::field(
            400,
            "idempotency-key-required",
            "Idempotency-Key required",
            "Idempotency-Key",
            "missing",
            why,
        )
    }

    /// 405 for a method the resource does not take; `allow` lists the ones it does (`"GET, HEAD"`),
    /// sent as the `Allow` header RFC 9110 §15.5.6 requires.
    pub fn method_not_allowed(allow: &str) -> Problem {
        let mut p = Problem::new(
            405,
            "method-not-allowed",
            "Method not allowed",
            format!("use {allow}"),
        );
        p.allow = Some(allow.into());
        p
    }

    /// 409 for a state conflict.
    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::new(409, "conflict", "Conflict", detail)
    }

    /// The HTTP response.
    pub fn response(&self) -> Response {
        let mut builder = Response::builder();
        builder
            .status(self.status)
            .header("content-type", "application/problem+json")
            .header("cache-control", "no-store");
        if self.status == 401 {
            // RFC 9110 §11.6.1: a 401 names the scheme the client should use.
            builder.header("www-authenticate", "Bearer");
        }
        if let Some(allow) = &self.allow {
            builder.header("allow", allow.as_ref());
        }
        builder
            .body(serde_json::to_vec(self).unwrap_or_default())
            .build()
    }
}

/// The documents are built by the domain crate's constructors (the browser package answers
/// with the same ones).
impl From<ProblemDocument> for Problem {
    fn from(d: ProblemDocument) -> Problem {
        Problem {
            kind: d.kind,
            title: d.title,
            status: d.status,
            detail: d.detail,
            invalid_params: d.invalid_params,
            allow: None,
        }
    }
}

/// What a handler fails with: a problem for the client, or an internal error that is logged
/// and answered with a generic 500.
#[derive(Debug)]
pub enum FunctionError {
    /// Client-visible problem (4xx, or 503 under contention).
    Problem(Problem),
    /// Unexpected: logged, generic 500.
    Internal(String),
}

impl FunctionError {
    /// The response; internal errors are logged to stderr (the host's log).
    pub fn response(&self) -> Response {
        match self {
            FunctionError::Problem(p) => p.response(),
            FunctionError::Internal(e) => {
                eprintln!("internal error: {e}");
                Problem::new(
                    500,
                    "internal",
                    "Internal error",
                    "an unexpected error occurred; it has been logged",
                )
                .response()
            }
        }
    }
}

impl From<Problem> for FunctionError {
    fn from(p: Problem) -> Self {
        FunctionError::Problem(p)
    }
}

impl From<KvError> for FunctionError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Contention(key) => FunctionError::Problem(Problem::new(
                503,
                "contention",
                "Busy",
                format!("too many concurrent updates of {key}; retry"),
            )),
            // The store is down or failing (e.g. Redis unreachable): nothing was decided on a
            // value we could not read or write, so the caller may retry. The detail is logged,
            // not shown (it can name keys and hosts).
            KvError::Store(detail) => {
                eprintln!("storage unavailable: {detail}");
                FunctionError::Problem(Problem::new(
                    503,
                    "storage-unavailable",
                    "Storage unavailable",
                    "the order store did not answer; retry with the same request",
                ))
            }
            other => FunctionError::Internal(other.to_string()),
        }
    }
}

impl From<serde_json::Error> for FunctionError {
    fn from(e: serde_json::Error) -> Self {
        FunctionError::Internal(format!("json: {e}"))
    }
}
