//! API keys for staff and fulfilment locations: created, listed, rotated and revoked through
//! the staff API; stored hashed.
//!
//! A token is `oms_sk_<id>_<secret>` (staff) or `oms_fk_<id>_<secret>` (fulfilment), with a
//! 16-hex-digit id and a 64-hex-digit secret from the host's random source. The store keeps
//! the key under `apikey:<id>` with the SHA-256 of each live secret, never the secret: the
//! token is shown once, when created or rotated. Verification hashes the presented secret and
//! compares digests in constant time.
//!
//! Rotation without downtime: rotating adds a new secret and gives the older ones an expiry
//! (the grace period, a day by default), so callers switch to the new token while the old one
//! still works. Revoking ends every secret at once.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::constant_time_eq;
use crate::kv::{update_json, Change, Kv, KvError};
use crate::problem::{FunctionError, Problem};

/// Prefix of a staff key's token.
pub const STAFF_PREFIX: &str = "oms_sk_";
/// Prefix of a fulfilment key's token.
pub const FULFILMENT_PREFIX: &str = "oms_fk_";
/// How long a rotated-out secret keeps working unless the caller says otherwise.
pub const DEFAULT_GRACE_SECONDS: i64 = 86_400;

const INDEX_KEY: &str = "apikeys";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// Everything staff do.
    Staff,
    /// Shipment updates for one location.
    Fulfilment,
}

/// One secret of a key: its digest, and when it stops working (after a rotation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySecret {
    /// SHA-256 of the secret, hex.
    pub sha256: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working; `None` while it is the current secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored API key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    /// Its id (part of the token).
    pub id: String,
    /// What it may do.
    pub role: KeyRole,
    /// The location a fulfilment key acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// A label for people.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it (an audit actor).
    pub created_by: String,
    /// Its live and rotated-out secrets.
    pub secrets: Vec<KeySecret>,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// The key as the staff API shows it: everything but the secrets' digests.
    pub fn public_view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "role": self.role,
            "location": self.location,
            "name": self.name,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "revoked_at": self.revoked_at,
            "secrets": self.secrets.iter().map(|s| serde_json::json!({
                "created_at": s.created_at,
                "expires_at": s.expires_at,
            })).collect::<Vec<_>>(),
        })
    }

    fn prefix(&self) -> &'static str {
        match self.role {
            KeyRole::Staff => STAFF_PREFIX,
            KeyRole::Fulfilment => FULFILMENT_PREFIX,
        }
    }
}

fn store_key(id: &str) -> String {
    format!("apikey:{id}")
}

/// `bytes` random bytes from the host's random source, as hex (secrets, key ids).
///
/// # Errors
/// Internal error when the host provides no randomness.
pub(crate) fn random_hex(bytes: usize) -> Result<String, FunctionError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|e| FunctionError::Internal(format!("no randomness from the host: {e}")))?;
    Ok(hex::encode(buf))
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates a key; returns it with its token (shown once).
///
/// # Errors
/// 422 naming `location` when a fulfilment key has none (or a staff key has one); 503 when
/// the store does not answer.
pub fn create<K: Kv>(
    kv: &K,
    role: KeyRole,
    location: Option<String>,
    name: String,
    created_by: String,
    now: DateTime<Utc>,
) -> Result<(ApiKey, String), FunctionError> {
    match (role, &location) {
        (KeyRole::Fulfilment, None) => {
            return Err(Problem::field(
                422,
                "invalid-request",
                "Invalid request",
                "/location",
                "required",
                "a fulfilment key acts for one location",
            )
            .into())
        }
        (KeyRole::Staff, Some(_)) => {
            return Err(Problem::field(
                422,
                "invalid-request",
                "Invalid request",
                "/location",
                "not_allowed",
                "a staff key is not bound to a location",
            )
            .into())
        }
        _ => {}
    }
    let id = random_hex(8)?;
    let secret = random_hex(32)?;
    let key = ApiKey {
        id: id.clone(),
        role,
        location,
        name,
        created_at: now,
        created_by,
        secrets: vec![KeySecret {
            sha256: digest(&secret),
            created_at: now,
            expires_at: None,
        }],
        revoked_at: None,
    };
    // The index first: a crash after it leaves an id that lists as nothing, never a key that
    // works but does not list.
    update_json(kv, INDEX_KEY, |ids: Option<Vec<String>>| {
        let mut ids = ids.unwrap_or_default();
        ids.push(id.clone());
        Ok::<_, KvError>(Change::Write(ids, ()))
    })?;
    kv.set_json(&store_key(&id), &key)?;
    let token = format!("{}{id}_{secret}", key.prefix());
    Ok((key, token))
}

/// Every key, oldest first (revoked ones too, marked).
///
/// # Errors
/// 503 when the store does not answer.
pub fn list<K: Kv>(kv: &K) -> Result<Vec<ApiKey>, FunctionError> {
    let ids: Vec<String> = kv.get_json(INDEX_KEY)?.unwrap_or_default();
    let keys: Vec<String> = ids.iter().map(|id| store_key(id)).collect();
    let mut out = Vec::new();
    for bytes in kv.get_many(&keys)?.into_iter().flatten() {
        out.push(serde_json::from_slice::<ApiKey>(&bytes)?);
    }
    out.sort_by_key(|k| k.created_at);
    Ok(out)
}

/// Gives key `id` a new secret; the older ones keep working for `grace` (then stop).
/// Returns the key and its new token.
///
/// # Errors
/// 404 for an unknown key, 409 for a revoked one, 503 when the store does not answer.
pub fn rotate<K: Kv>(
    kv: &K,
    id: &str,
    grace: Duration,
    now: DateTime<Utc>,
) -> Result<(ApiKey, String), FunctionError> {
    let secret = random_hex(32)?;
    let key = update_json(kv, &store_key(id), |key: Option<ApiKey>| {
        let mut key = key.ok_or_else(|| FunctionError::from(Problem::not_found("key", id)))?;
        if key.revoked_at.is_some() {
            return Err(FunctionError::from(Problem::conflict(
                "the key is revoked; create a new one",
            )));
        }
        let ends = now + grace;
        for old in &mut key.secrets {
            old.expires_at = Some(old.expires_at.map_or(ends, |t| t.min(ends)));
        }
        // Secrets that no longer work are dropped, so a key's record stays small.
        key.secrets.retain(|s| s.expires_at.is_none_or(|t| t > now));
        key.secrets.push(KeySecret {
            sha256: digest(&secret),
            created_at: now,
            expires_at: None,
        });
        Ok(Change::Write(key.clone(), key))
    })?;
    let token = format!("{}{id}_{secret}", key.prefix());
    Ok((key, token))
}

/// Revokes key `id`: none of its secrets works any more. Revoking twice is not an error.
///
/// # Errors
/// 404 for an unknown key, 503 when the store does not answer.
pub fn revoke<K: Kv>(kv: &K, id: &str, now: DateTime<Utc>) -> Result<ApiKey, FunctionError> {
    update_json(kv, &store_key(id), |key: Option<ApiKey>| {
        let mut key = key.ok_or_else(|| FunctionError::from(Problem::not_found("key", id)))?;
        if key.revoked_at.is_some() {
            return Ok(Change::Keep(key));
        }
        key.revoked_at = Some(now);
        Ok(Change::Write(key.clone(), key))
    })
}

/// The live key a token belongs to, if any (`None` for an unknown id, a wrong or expired
/// secret, a revoked key, or a token of the wrong shape).
///
/// # Errors
/// 503 when the store does not answer.
pub fn verify<K: Kv>(
    kv: &K,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<ApiKey>, FunctionError> {
    let (role, rest) = if let Some(rest) = token.strip_prefix(STAFF_PREFIX) {
        (KeyRole::Staff, rest)
    } else if let Some(rest) = token.strip_prefix(FULFILMENT_PREFIX) {
        (KeyRole::Fulfilment, rest)
    } else {
        return Ok(None);
    };
    let Some((id, secret)) = rest.split_once('_') else {
        return Ok(None);
    };
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let Some(key) = kv.get_json::<ApiKey>(&store_key(id))? else {
        return Ok(None);
    };
    if key.role != role || key.revoked_at.is_some() {
        return Ok(None);
    }
    let given = digest(secret);
    let live = key
        .secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|t| t > now))
        .fold(false, |found, s| {
            constant_time_eq(s.sha256.as_bytes(), given.as_bytes()) | found
        });
    Ok(live.then_some(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemKv;

    fn at(minutes: i64) -> DateTime<Utc> {
        "2026-12-02T08:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minutes)
    }

    fn staff_key(kv: &MemKv) -> (ApiKey, String) {
        create(
            kv,
            KeyRole::Staff,
            None,
            "ops".into(),
            "staff:root".into(),
            at(0),
        )
        .unwrap()
    }

    #[test]
    fn the_store_keeps_a_digest_never_the_token() {
        let kv = MemKv::new();
        let (key, token) = staff_key(&kv);
        assert!(token.starts_with(STAFF_PREFIX));
        let stored = String::from_utf8(kv.get(&store_key(&key.id)).unwrap().unwrap()).unwrap();
        let secret = token.rsplit('_').next().unwrap();
        assert!(!stored.contains(secret));
        assert_eq!(verify(&kv, &token, at(1)).unwrap().unwrap().id, key.id);
    }

    #[test]
    fn rotation_keeps_the_old_token_for_the_grace_then_ends_it() {
        let kv = MemKv::new();
        let (key, old) = staff_key(&kv);
        let (_, new) = rotate(&kv, &key.id, Duration::minutes(10), at(1)).unwrap();
        assert_ne!(old, new);
        assert!(verify(&kv, &old, at(5)).unwrap().is_some());
        assert!(verify(&kv, &new, at(5)).unwrap().is_some());
        assert!(verify(&kv, &old, at(12)).unwrap().is_none());
        assert!(verify(&kv, &new, at(12)).unwrap().is_some());
        // A second rotation drops the expired secret from the record.
        rotate(&kv, &key.id, Duration::zero(), at(13)).unwrap();
        let stored: ApiKey = kv.get_json(&store_key(&key.id)).unwrap().unwrap();
        assert_eq!(stored.secrets.len(), 1);
        assert!(verify(&kv, &new, at(13)).unwrap().is_none());
    }

    #[test]
    fn revoked_keys_and_tampered_tokens_do_not_verify() {
        let kv = MemKv::new();
        let (key, token) = staff_key(&kv);
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('0') { '1' } else { '0' });
        assert!(verify(&kv, &tampered, at(1)).unwrap().is_none());
        let as_fulfilment = token.replacen(STAFF_PREFIX, FULFILMENT_PREFIX, 1);
        assert!(verify(&kv, &as_fulfilment, at(1)).unwrap().is_none());
        revoke(&kv, &key.id, at(2)).unwrap();
        assert!(verify(&kv, &token, at(3)).unwrap().is_none());
        assert!(rotate(&kv, &key.id, Duration::zero(), at(3)).is_err());
    }

    #[test]
    fn keys_list_oldest_first_and_fulfilment_needs_a_location() {
        let kv = MemKv::new();
        let (a, _) = staff_key(&kv);
        let (b, _) = create(
            &kv,
            KeyRole::Fulfilment,
            Some("WH-1".into()),
            "dock".into(),
            "staff:root".into(),
            at(1),
        )
        .unwrap();
        let ids: Vec<String> = list(&kv).unwrap().into_iter().map(|k| k.id).collect();
        assert_eq!(ids, vec![a.id, b.id]);
        assert!(create(
            &kv,
            KeyRole::Fulfilment,
            None,
            "x".into(),
            "s".into(),
            at(2)
        )
        .is_err());
        let view = list(&kv).unwrap()[0].public_view().to_string();
        assert!(!view.contains("sha256"));
    }
}
