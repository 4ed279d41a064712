//! The admin bearer token that guards the subscription API.

use oms_edge::{constant_time_eq, Problem};
use sha2::{Digest, Sha256};
use spin_sdk::http::Request;

/// Checks `Authorization: Bearer <token>` against the `admin_token` variable.
///
/// The comparison runs over SHA-256 digests of both sides in constant time, so neither the
/// token's content nor its length leaks through timing.
///
/// # Errors
/// A 401 problem naming the `Authorization` header when it is missing, not a bearer token,
/// or the wrong token.
pub fn require_admin(req: &Request, admin_token: &str) -> Result<(), Problem> {
    let unauthorized = |code: &str, reason: &str| {
        Problem::field(
            401,
            "unauthorized",
            "Unauthorized",
            "Authorization",
            code,
            reason,
        )
    };
    let header = req
        .header("authorization")
        .and_then(|v| v.as_str())
        .ok_or_else(|| unauthorized("missing", "an admin bearer token is required"))?;
    let presented = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| unauthorized("invalid_format", "expected \"Bearer <token>\""))?;
    if admin_token.is_empty() || !same_digest(presented.trim().as_bytes(), admin_token.as_bytes()) {
        return Err(unauthorized("invalid", "the token is not valid"));
    }
    Ok(())
}

fn same_digest(a: &[u8], b: &[u8]) -> bool {
    constant_time_eq(&Sha256::digest(a), &Sha256::digest(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spin_sdk::http::Method;

    fn with_auth(value: Option<&str>) -> Request {
        let mut b = Request::builder();
        b.method(Method::Get).uri("/v1/webhooks");
        if let Some(v) = value {
            b.header("authorization", v);
        }
        b.build()
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        assert!(require_admin(&with_auth(Some("Bearer s3cret")), "s3cret").is_ok());
        for (value, code) in [
            (None, "missing"),
            (Some("s3cret"), "invalid_format"),
            (Some("Basic czNjcmV0"), "invalid_format"),
            (Some("Bearer s3cre"), "invalid"),
            (Some("Bearer s3cret2"), "invalid"),
        ] {
            let p = require_admin(&with_auth(value), "s3cret").unwrap_err();
            assert_eq!(
                (p.status, p.invalid_params[0].code.as_str()),
                (401, code),
                "{value:?}"
            );
        }
        assert!(
            require_admin(&with_auth(Some("Bearer ")), "").is_err(),
            "an empty token never matches"
        );
    }
}
