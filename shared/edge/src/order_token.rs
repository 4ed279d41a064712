//! Per-order access tokens for customers, like the token in Shopify's order-status URL.
//!
//! A token is `oms_ot_` + base64url(HMAC-SHA256(secret, "order:" + order id)). Nothing per
//! order is stored: the token can be given again at any time (a replayed 202, the status
//! page) and checked by any host. The secret is random, made on first use and kept in the
//! `default` store under `secret:order_token` (one compare-and-swap decides it when hosts
//! race), so it needs no configuration and every host shares it. It keeps a list of older
//! secrets that still verify, for rotation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use oms_domain::OrderId;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::api_keys::random_hex;
use crate::auth::constant_time_eq;
use crate::kv::{update_json, Change, Kv, KvError};
use crate::problem::FunctionError;

/// Prefix of a customer's order token.
pub const PREFIX: &str = "oms_ot_";

const SECRET_KEY: &str = "secret:order_token";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Secrets {
    /// Hex; signs new tokens.
    current: String,
    /// Hex; older secrets whose tokens still verify.
    #[serde(default)]
    previous: Vec<String>,
}

fn mac(secret_hex: &str, order: OrderId) -> Vec<u8> {
    let secret = hex::decode(secret_hex).unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes any key length");
    mac.update(format!("order:{order}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn secrets<K: Kv>(kv: &K) -> Result<Secrets, FunctionError> {
    if let Some(s) = kv.get_json::<Secrets>(SECRET_KEY)? {
        return Ok(s);
    }
    let fresh = random_hex(32)?;
    // Whoever creates it first wins; everyone else uses theirs.
    Ok(update_json(kv, SECRET_KEY, |current: Option<Secrets>| {
        Ok::<_, KvError>(match current {
            Some(s) => Change::Keep(s),
            None => {
                let s = Secrets {
                    current: fresh.clone(),
                    previous: Vec::new(),
                };
                Change::Write(s.clone(), s)
            }
        })
    })?)
}

/// The access token of `order`.
///
/// # Errors
/// 503 when the store does not answer.
pub fn issue<K: Kv>(kv: &K, order: OrderId) -> Result<String, FunctionError> {
    let s = secrets(kv)?;
    Ok(format!(
        "{PREFIX}{}",
        URL_SAFE_NO_PAD.encode(mac(&s.current, order))
    ))
}

/// Whether `token` opens `order`.
///
/// # Errors
/// 503 when the store does not answer.
pub fn verify<K: Kv>(kv: &K, order: OrderId, token: &str) -> Result<bool, FunctionError> {
    let Some(given) = token
        .strip_prefix(PREFIX)
        .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
    else {
        return Ok(false);
    };
    let s = secrets(kv)?;
    Ok(std::iter::once(&s.current)
        .chain(&s.previous)
        .fold(false, |ok, secret| {
            constant_time_eq(&mac(secret, order), &given) | ok
        }))
}

/// Makes a new signing secret; tokens signed with the old one keep verifying until
/// `keep_previous` newer rotations have happened.
///
/// # Errors
/// 503 when the store does not answer.
pub fn rotate<K: Kv>(kv: &K, keep_previous: usize) -> Result<(), FunctionError> {
    let fresh = random_hex(32)?;
    update_json(kv, SECRET_KEY, |current: Option<Secrets>| {
        let mut previous = Vec::new();
        if let Some(old) = current {
            previous.push(old.current);
            previous.extend(old.previous);
        }
        previous.truncate(keep_previous);
        Ok::<_, KvError>(Change::Write(
            Secrets {
                current: fresh.clone(),
                previous,
            },
            (),
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemKv;

    fn order(n: u128) -> OrderId {
        OrderId::new(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_token_opens_its_order_and_no_other() {
        let kv = MemKv::new();
        let token = issue(&kv, order(1)).unwrap();
        assert_eq!(
            issue(&kv, order(1)).unwrap(),
            token,
            "stable: no state per order"
        );
        assert!(verify(&kv, order(1), &token).unwrap());
        assert!(!verify(&kv, order(2), &token).unwrap());
        assert!(!verify(&kv, order(1), "oms_ot_AAAA").unwrap());
        assert!(!verify(&kv, order(1), "oms_ot_%%%").unwrap());
    }

    #[test]
    fn rotation_keeps_old_tokens_until_they_fall_off() {
        let kv = MemKv::new();
        let old = issue(&kv, order(1)).unwrap();
        rotate(&kv, 1).unwrap();
        let new = issue(&kv, order(1)).unwrap();
        assert_ne!(old, new);
        assert!(verify(&kv, order(1), &old).unwrap());
        assert!(verify(&kv, order(1), &new).unwrap());
        rotate(&kv, 1).unwrap();
        assert!(!verify(&kv, order(1), &old).unwrap());
        assert!(verify(&kv, order(1), &new).unwrap());
    }
}
