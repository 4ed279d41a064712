//! RFC 9457 problem documents as plain data: the body every component answers a refused
//! request with (`oms_edge::Problem` wraps this with the HTTP response), and what the browser
//! package (`shared/browser`) returns for the same input, built by the same constructors.

use serde::{Deserialize, Serialize};

use crate::violation::Violation;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemDocument {
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
    #[serde(
        rename = "invalid-params",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub invalid_params: Vec<InvalidParam>,
}

/// One offending field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidParam {
    /// JSON Pointer (RFC 6901) or header/path name.
    pub name: String,
    /// Machine-readable code.
    pub code: String,
    /// Why.
    pub reason: String,
}

impl ProblemDocument {
    /// A problem of `status` with a type slug (`https://oms.dev/problems/<slug>`).
    pub fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://oms.dev/problems/{slug}"),
            title: title.to_string(),
            status,
            detail: detail.into(),
            invalid_params: Vec::new(),
        }
    }

    /// 422 with every violation named.
    pub fn invalid(detail: impl Into<String>, violations: &[Violation]) -> Self {
        let mut p = Self::new(422, "validation", "Invalid request", detail);
        p.invalid_params = violations
            .iter()
            .map(|v| InvalidParam {
                name: v.field.clone(),
                code: v.code.as_str().to_string(),
                reason: v.detail.clone(),
            })
            .collect();
        p
    }

    /// 400/401/422 naming a single field (a header, a path segment, a JSON Pointer).
    pub fn field(
        status: u16,
        slug: &str,
        title: &str,
        field: &str,
        code: &str,
        reason: impl Into<String>,
    ) -> Self {
        let reason = reason.into();
        let mut p = Self::new(status, slug, title, format!("{field}: {reason}"));
        p.invalid_params.push(InvalidParam {
            name: field.to_string(),
            code: code.to_string(),
            reason,
        });
        p
    }
}
