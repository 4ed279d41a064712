//! Bearer-token checks for operator endpoints (the `admin_token` Spin variable).

use spin_sdk::http::Request;

use crate::problem::{FunctionError, Problem};

/// Requires `Authorization: Bearer <admin_token>`, compared in constant time.
///
/// # Errors
/// 401 problem naming `Authorization`; internal error when the variable is not granted.
pub fn require_admin(req: &Request) -> Result<(), FunctionError> {
    let expected = spin_sdk::variables::get("admin_token")
        .map_err(|e| FunctionError::Internal(format!("admin_token variable: {e}")))?;
    let given = req
        .header("authorization")
        .and_then(|v| v.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(Problem::field(
            401,
            "unauthorized",
            "Unauthorized",
            "Authorization",
            "invalid_token",
            "a valid admin bearer token is required",
        )
        .into());
    }
    Ok(())
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
