//! Who is calling, and what they may do.
//!
//! Every credential is an `Authorization: Bearer <token>` header. Three roles:
//!
//! - **staff** — a bootstrap token from the `admin_token` Spin variable (a comma-separated list,
//!   so it can be rotated: any listed token is accepted), or a staff API key
//!   `oms_sk_<id>_<secret>` created through the staff API ([`crate::api_keys`]);
//! - **fulfilment** — an API key `oms_fk_<id>_<secret>` bound to one location;
//! - **customer** — a per-order token `oms_ot_<mac>` ([`crate::order_token`]) handed out when the
//!   order is placed; it opens that order only.
//!
//! No credential, or one that is malformed, unknown, expired or revoked: 401 with
//! `WWW-Authenticate: Bearer`. A valid credential of the wrong role, location or order: 403.
//! Both are problem documents naming `Authorization`, returned before anything is read or
//! changed.

use chrono::{DateTime, Utc};
use oms_domain::OrderId;
use sha2::{Digest, Sha256};
use spin_sdk::http::Request;

use crate::api_keys::{self, KeyRole};
use crate::kv::Kv;
use crate::order_token;
use crate::problem::{FunctionError, Problem};

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// No credential.
    Anonymous,
    /// Staff: the bootstrap token (`key: None`) or a staff API key.
    Staff {
        /// The API key's id, `None` for the bootstrap token.
        key: Option<String>,
    },
    /// A fulfilment location's (or 3PL's) API key.
    Fulfilment {
        /// The key's id.
        key: String,
        /// The location it acts for.
        location: String,
    },
    /// The customer of one order, by its access token.
    Customer {
        /// The order the token opens.
        order: OrderId,
    },
}

impl Actor {
    /// The string recorded in an order's timeline for what this caller did: `staff:root`,
    /// `staff:<key id>`, `fulfilment:<key id>`, `customer` (`anonymous` never acts).
    pub fn audit(&self) -> String {
        match self {
            Actor::Anonymous => "anonymous".into(),
            Actor::Staff { key: None } => "staff:root".into(),
            Actor::Staff { key: Some(id) } => format!("staff:{id}"),
            Actor::Fulfilment { key, .. } => format!("fulfilment:{key}"),
            Actor::Customer { .. } => "customer".into(),
        }
    }

    /// Whether this is staff.
    pub fn is_staff(&self) -> bool {
        matches!(self, Actor::Staff { .. })
    }

    /// Staff only.
    ///
    /// # Errors
    /// 401 for no credential, 403 for another role.
    pub fn require_staff(&self) -> Result<(), FunctionError> {
        match self {
            Actor::Staff { .. } => Ok(()),
            Actor::Anonymous => Err(missing()),
            _ => Err(forbidden("this operation is for staff")),
        }
    }

    /// Staff, or the customer of `order`.
    ///
    /// # Errors
    /// 401 for no credential, 403 for another role or another order's token.
    pub fn require_staff_or_customer(&self, order: OrderId) -> Result<(), FunctionError> {
        match self {
            Actor::Staff { .. } => Ok(()),
            Actor::Customer { order: own } if *own == order => Ok(()),
            Actor::Anonymous => Err(missing()),
            Actor::Customer { .. } => Err(forbidden("the token does not open this order")),
            Actor::Fulfilment { .. } => Err(forbidden(
                "this operation is for staff or the order's customer",
            )),
        }
    }

    /// Staff, or a fulfilment key of `location`.
    ///
    /// # Errors
    /// 401 for no credential, 403 for another role or another location's key.
    pub fn require_staff_or_fulfilment(&self, location: &str) -> Result<(), FunctionError> {
        match self {
            Actor::Staff { .. } => Ok(()),
            Actor::Fulfilment { location: own, .. } if own == location => Ok(()),
            Actor::Anonymous => Err(missing()),
            Actor::Fulfilment { .. } => Err(forbidden(
                "the key is for another location than this shipment's",
            )),
            Actor::Customer { .. } => Err(forbidden(
                "this operation is for staff or the shipment's fulfilment location",
            )),
        }
    }

    /// Staff, or any fulfilment key (the location is checked once the resource is loaded,
    /// with [`Actor::require_staff_or_fulfilment`]).
    ///
    /// # Errors
    /// 401 for no credential, 403 for a customer.
    pub fn require_staff_or_any_fulfilment(&self) -> Result<(), FunctionError> {
        match self {
            Actor::Staff { .. } | Actor::Fulfilment { .. } => Ok(()),
            Actor::Anonymous => Err(missing()),
            Actor::Customer { .. } => Err(forbidden(
                "this operation is for staff or a fulfilment location",
            )),
        }
    }
}

/// The caller of `req`, with the staff tokens of the `admin_token` Spin variable.
///
/// `order` is the order the request is about, when it is about one: a customer token is
/// checked against it (without one, a customer token is refused with 403).
///
/// # Errors
/// 401 for a malformed or unknown credential, 403 for a customer token of another order,
/// 503 when the store does not answer.
pub fn caller<K: Kv>(
    req: &Request,
    kv: &K,
    order: Option<OrderId>,
) -> Result<Actor, FunctionError> {
    let header = req.header("authorization").and_then(|v| v.as_str());
    if header.is_none() {
        return Ok(Actor::Anonymous);
    }
    authenticate(kv, &bootstrap_tokens(), header, order, crate::now())
}

/// The `admin_token` Spin variable (none when the component does not declare it).
#[cfg(target_arch = "wasm32")]
fn bootstrap_tokens() -> String {
    spin_sdk::variables::get("admin_token").unwrap_or_default()
}

/// Natively (the components' unit tests) there is no Spin host to ask, and so no bootstrap
/// token: tests act as staff with a staff API key in their in-memory store.
#[cfg(not(target_arch = "wasm32"))]
fn bootstrap_tokens() -> String {
    String::new()
}

/// The caller for an `Authorization` header value (see [`caller`]); `admin_tokens` is the
/// comma-separated list of bootstrap staff tokens.
///
/// # Errors
/// As [`caller`].
pub fn authenticate<K: Kv>(
    kv: &K,
    admin_tokens: &str,
    authorization: Option<&str>,
    order: Option<OrderId>,
    now: DateTime<Utc>,
) -> Result<Actor, FunctionError> {
    let Some(header) = authorization else {
        return Ok(Actor::Anonymous);
    };
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            unauthorized(
                "invalid_format",
                "expected \"Authorization: Bearer <token>\"",
            )
        })?;
    if token.starts_with(order_token::PREFIX) {
        let Some(order) = order else {
            return Err(forbidden(
                "an order access token opens only its order's routes",
            ));
        };
        return if order_token::verify(kv, order, token)? {
            Ok(Actor::Customer { order })
        } else {
            Err(forbidden("the token does not open this order"))
        };
    }
    if token.starts_with(api_keys::STAFF_PREFIX) || token.starts_with(api_keys::FULFILMENT_PREFIX) {
        let key = api_keys::verify(kv, token, now)?
            .ok_or_else(|| unauthorized("invalid", "the key is unknown, revoked or expired"))?;
        return Ok(match key.role {
            KeyRole::Staff => Actor::Staff { key: Some(key.id) },
            KeyRole::Fulfilment => Actor::Fulfilment {
                key: key.id,
                location: key.location.unwrap_or_default(),
            },
        });
    }
    if bootstrap_token_matches(admin_tokens, token) {
        return Ok(Actor::Staff { key: None });
    }
    Err(unauthorized("invalid", "the token is not valid"))
}

/// Whether `token` is one of the comma-separated bootstrap staff tokens. Every listed token is
/// compared (over SHA-256 digests, in constant time), so neither which one matched nor a
/// token's length shows in the timing.
fn bootstrap_token_matches(admin_tokens: &str, token: &str) -> bool {
    let given = Sha256::digest(token.as_bytes());
    admin_tokens
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .fold(false, |found, t| {
            constant_time_eq(&Sha256::digest(t.as_bytes()), &given) | found
        })
}

fn missing() -> FunctionError {
    unauthorized("missing", "a bearer token is required")
}

fn unauthorized(code: &str, detail: &str) -> FunctionError {
    Problem::field(
        401,
        "unauthorized",
        "Unauthorized",
        "Authorization",
        code,
        detail,
    )
    .into()
}

fn forbidden(detail: &str) -> FunctionError {
    Problem::field(
        403,
        "forbidden",
        "Forbidden",
        "Authorization",
        "forbidden",
        detail,
    )
    .into()
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemKv;

    fn at() -> DateTime<Utc> {
        "2026-12-02T08:00:00Z".parse().unwrap()
    }

    fn order(n: u128) -> OrderId {
        OrderId::new(uuid::Uuid::from_u128(n))
    }

    fn status(e: FunctionError) -> u16 {
        match e {
            FunctionError::Problem(p) => p.status,
            FunctionError::Internal(e) => panic!("internal: {e}"),
        }
    }

    #[test]
    fn bootstrap_tokens_rotate_as_a_list() {
        let kv = MemKv::new();
        for token in ["old-token-1", "new-token-2"] {
            let actor = authenticate(
                &kv,
                "old-token-1, new-token-2",
                Some(&format!("Bearer {token}")),
                None,
                at(),
            )
            .unwrap();
            assert_eq!(actor, Actor::Staff { key: None });
        }
        let wrong = authenticate(&kv, "a,b", Some("Bearer c"), None, at()).unwrap_err();
        assert_eq!(status(wrong), 401);
        let empty_list = authenticate(&kv, ",", Some("Bearer ,"), None, at()).unwrap_err();
        assert_eq!(status(empty_list), 401);
    }

    #[test]
    fn no_header_is_anonymous_and_a_bad_scheme_is_401() {
        let kv = MemKv::new();
        assert_eq!(
            authenticate(&kv, "t", None, None, at()).unwrap(),
            Actor::Anonymous
        );
        assert_eq!(
            status(authenticate(&kv, "t", Some("Basic dDp0"), None, at()).unwrap_err()),
            401
        );
        assert_eq!(status(Actor::Anonymous.require_staff().unwrap_err()), 401);
    }

    #[test]
    fn customer_tokens_open_their_own_order_only() {
        let kv = MemKv::new();
        let token = order_token::issue(&kv, order(1)).unwrap();
        let header = format!("Bearer {token}");
        let me = authenticate(&kv, "t", Some(&header), Some(order(1)), at()).unwrap();
        assert_eq!(me, Actor::Customer { order: order(1) });
        me.require_staff_or_customer(order(1)).unwrap();
        assert_eq!(status(me.require_staff().unwrap_err()), 403);
        let other = authenticate(&kv, "t", Some(&header), Some(order(2)), at()).unwrap_err();
        assert_eq!(status(other), 403);
        let nowhere = authenticate(&kv, "t", Some(&header), None, at()).unwrap_err();
        assert_eq!(status(nowhere), 403);
    }

    #[test]
    fn fulfilment_keys_act_for_their_location_only() {
        let kv = MemKv::new();
        let (_, token) = api_keys::create(
            &kv,
            KeyRole::Fulfilment,
            Some("WH-EAST".into()),
            "east dock".into(),
            "staff:root".into(),
            at(),
        )
        .unwrap();
        let actor = authenticate(&kv, "t", Some(&format!("Bearer {token}")), None, at()).unwrap();
        actor.require_staff_or_fulfilment("WH-EAST").unwrap();
        assert_eq!(
            status(actor.require_staff_or_fulfilment("WH-WEST").unwrap_err()),
            403
        );
        assert_eq!(status(actor.require_staff().unwrap_err()), 403);
        assert!(actor.audit().starts_with("fulfilment:"));
    }

    #[test]
    fn a_forged_key_is_401() {
        let kv = MemKv::new();
        let forged = format!(
            "Bearer {}0123456789abcdef_{}",
            api_keys::STAFF_PREFIX,
            "0".repeat(64)
        );
        assert_eq!(
            status(authenticate(&kv, "t", Some(&forged), None, at()).unwrap_err()),
            401
        );
    }
}
