//! The staff API for credentials (see `oms_edge::api_keys` and `oms_edge::order_token`):
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/admin/keys` `{"role": "staff"\|"fulfilment", "location"?, "name"}` | 201, the key with its `token` (shown this once) |
//! | `GET /v1/admin/keys` | `{"keys": [...]}`, revoked ones marked, never a secret |
//! | `POST /v1/admin/keys/{id}/rotate` `{"grace_seconds"?}` | 200, the key with its new `token`; the old one works for the grace (a day by default) |
//! | `DELETE /v1/admin/keys/{id}` | 204; none of its tokens works any more |
//! | `POST /v1/admin/order-tokens/rotate` | 204; customers' order tokens get a new secret, tokens of the previous one keep working until the next rotation |
//!
//! A fulfilment key is bound to one location (`location`, required); a staff key to none.
//! Who created a key is recorded on it (`created_by`, the caller's audit name).

use chrono::Duration;
use oms_domain::LocationId;
use oms_edge::api_keys::{self, KeyRole, DEFAULT_GRACE_SECONDS};
use oms_edge::purge::{self, tag};
use oms_edge::{json_response, now, order_token, Actor, FunctionError, Kv, Problem, SpinKv};
use serde_json::{Map, Value};
use spin_sdk::http::{Request, Response};

/// Longest label of a key.
const MAX_NAME_LEN: usize = 100;
/// Longest grace of a rotation: thirty days.
const MAX_GRACE_SECONDS: i64 = 30 * 24 * 3600;
/// Earlier secrets whose customer tokens keep verifying after a rotation.
const ORDER_TOKEN_SECRETS_KEPT: usize = 1;

/// What `POST /v1/admin/keys` asks for.
#[derive(Debug, PartialEq, Eq)]
struct NewKey {
    role: KeyRole,
    location: Option<String>,
    name: String,
}

impl NewKey {
    /// Parses the body.
    ///
    /// # Errors
    /// 422 naming the first field at fault (the location rules are `api_keys::create`'s).
    fn parse(body: &Value) -> Result<NewKey, FunctionError> {
        let fields = object(body)?;
        reject_unknown(fields, &["role", "location", "name"])?;
        let role = match fields.get("role").and_then(Value::as_str) {
            Some("staff") => KeyRole::Staff,
            Some("fulfilment") => KeyRole::Fulfilment,
            _ => return Err(invalid("/role", "required: \"staff\" or \"fulfilment\"")),
        };
        let location = match fields.get("location") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let text = v.as_str().unwrap_or_default();
                let id = LocationId::parse(text)
                    .map_err(|e| invalid("/location", &format!("not a location code: {e}")))?;
                Some(id.as_str().to_string())
            }
        };
        let name = fields
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| n.chars().count() <= MAX_NAME_LEN)
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                invalid(
                    "/name",
                    &format!("required: a label of 1 to {MAX_NAME_LEN} characters"),
                )
            })?;
        Ok(NewKey {
            role,
            location,
            name: name.to_string(),
        })
    }
}

/// The grace a rotation asks for (`{"grace_seconds": n}`, the body optional).
///
/// # Errors
/// 422 naming `grace_seconds` outside 0..=30 days, or an unknown field.
fn grace(body: Option<&Value>) -> Result<Duration, FunctionError> {
    let Some(body) = body else {
        return Ok(Duration::seconds(DEFAULT_GRACE_SECONDS));
    };
    let fields = object(body)?;
    reject_unknown(fields, &["grace_seconds"])?;
    let seconds = match fields.get("grace_seconds") {
        None | Some(Value::Null) => DEFAULT_GRACE_SECONDS,
        Some(v) => v
            .as_i64()
            .filter(|s| (0..=MAX_GRACE_SECONDS).contains(s))
            .ok_or_else(|| {
                invalid(
                    "/grace_seconds",
                    &format!("an integer from 0 to {MAX_GRACE_SECONDS}"),
                )
            })?,
    };
    Ok(Duration::seconds(seconds))
}

/// `POST /v1/admin/keys`: creates a key; 201 with its token, recorded as made by `actor`.
///
/// # Errors
/// 400 for a body that is not JSON; 422 naming the field at fault; storage errors.
pub(crate) fn create(actor: &Actor, req: &Request) -> Result<Response, FunctionError> {
    let asked = NewKey::parse(&oms_edge::json_body(req)?)?;
    let kv = SpinKv::open_default()?;
    let (key, token) = api_keys::create(
        &kv,
        asked.role,
        asked.location,
        asked.name,
        actor.audit(),
        now(),
    )?;
    Ok(json_response(201, &with_token(&key, token)))
}

/// `GET /v1/admin/keys`: every key, oldest first, without secrets.
///
/// # Errors
/// Storage errors.
pub(crate) fn list() -> Result<Response, FunctionError> {
    let keys = api_keys::list(&SpinKv::open_default()?)?;
    let views: Vec<Value> = keys.iter().map(api_keys::ApiKey::public_view).collect();
    Ok(json_response(200, &serde_json::json!({ "keys": views })))
}

/// `POST /v1/admin/keys/{id}/rotate`: a new token; the old ones work for the grace.
///
/// # Errors
/// 404 unknown key, 409 revoked key, 422 for a bad grace, storage errors.
pub(crate) fn rotate(kv: &impl Kv, req: &Request, id: &str) -> Result<Response, FunctionError> {
    let body = (!req.body().is_empty())
        .then(|| oms_edge::json_body(req))
        .transpose()?;
    let grace = grace(body.as_ref())?;
    let (key, token) = api_keys::rotate(kv, id, grace, now())?;
    credentials_changed();
    Ok(json_response(200, &with_token(&key, token)))
}

/// `DELETE /v1/admin/keys/{id}`: revokes the key (again: no error); 204.
///
/// # Errors
/// 404 unknown key, storage errors.
pub(crate) fn revoke(kv: &impl Kv, id: &str) -> Result<Response, FunctionError> {
    api_keys::revoke(kv, id, now())?;
    credentials_changed();
    Ok(no_content())
}

/// `POST /v1/admin/order-tokens/rotate`: customers' tokens get a new secret; the previous
/// secret's tokens keep working until the next rotation. 204.
///
/// # Errors
/// Storage errors.
pub(crate) fn rotate_order_tokens(kv: &impl Kv) -> Result<Response, FunctionError> {
    order_token::rotate(kv, ORDER_TOKEN_SECRETS_KEPT)?;
    credentials_changed();
    Ok(no_content())
}

/// A credential stopped (or will stop) opening what it opened: every response kept for a
/// credential goes, so none is served to a token that no longer verifies. (Keys are
/// hashed, so which partitions were the key's is not known here; a rotation or revocation
/// is rare.)
fn credentials_changed() {
    purge::touch(tag::CREDENTIALS);
}

fn with_token(key: &api_keys::ApiKey, token: String) -> Value {
    let mut view = key.public_view();
    if let Some(fields) = view.as_object_mut() {
        fields.insert("token".into(), Value::String(token));
    }
    view
}

fn no_content() -> Response {
    Response::builder()
        .status(204)
        .header("cache-control", "no-store")
        .build()
}

fn object(body: &Value) -> Result<&Map<String, Value>, FunctionError> {
    body.as_object().ok_or_else(|| {
        Problem::field(
            422,
            "validation",
            "Invalid request",
            "/",
            "invalid_type",
            "expected a JSON object",
        )
        .into()
    })
}

/// 422 naming the first field of `fields` that is not `known`.
pub(crate) fn reject_unknown(
    fields: &Map<String, Value>,
    known: &[&str],
) -> Result<(), FunctionError> {
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Problem::field(
            422,
            "validation",
            "Invalid request",
            &format!("/{k}"),
            "unknown_field",
            format!("known fields: {}", known.join(", ")),
        )
        .into()),
        None => Ok(()),
    }
}

fn invalid(field: &str, reason: &str) -> FunctionError {
    Problem::field(
        422,
        "validation",
        "Invalid request",
        field,
        "invalid",
        reason,
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(e: FunctionError) -> (u16, String) {
        match e {
            FunctionError::Problem(p) => (p.status, p.invalid_params[0].name.clone()),
            FunctionError::Internal(e) => panic!("{e}"),
        }
    }

    #[test]
    fn new_keys_name_a_role_a_label_and_for_fulfilment_a_location() {
        assert_eq!(
            NewKey::parse(&json!({"role": "fulfilment", "location": "wh-east", "name": " dock "}))
                .unwrap(),
            NewKey {
                role: KeyRole::Fulfilment,
                location: Some("wh-east".into()),
                name: "dock".into()
            }
        );
        assert_eq!(
            NewKey::parse(&json!({"role": "staff", "name": "ops", "location": null})).unwrap(),
            NewKey {
                role: KeyRole::Staff,
                location: None,
                name: "ops".into()
            }
        );
        for (body, field) in [
            (json!([]), "/"),
            (json!({"name": "x"}), "/role"),
            (json!({"role": "admin", "name": "x"}), "/role"),
            (json!({"role": "staff"}), "/name"),
            (json!({"role": "staff", "name": "  "}), "/name"),
            (json!({"role": "staff", "name": "x".repeat(101)}), "/name"),
            (
                json!({"role": "fulfilment", "name": "x", "location": 5}),
                "/location",
            ),
            (
                json!({"role": "staff", "name": "x", "secret": "s"}),
                "/secret",
            ),
        ] {
            let e = NewKey::parse(&body).unwrap_err();
            assert_eq!(status(e), (422, field.to_string()), "{body}");
        }
    }

    #[test]
    fn revoking_or_rotating_a_credential_purges_every_credentialed_response() {
        let kv = oms_edge::MemKv::new();
        let (key, _) = api_keys::create(
            &kv,
            KeyRole::Staff,
            None,
            "ops".into(),
            "staff:root".into(),
            now(),
        )
        .unwrap();
        let credentials = std::collections::BTreeSet::from([tag::CREDENTIALS.to_string()]);
        purge::take_sent();
        let post = spin_sdk::http::Request::builder()
            .method(spin_sdk::http::Method::Post)
            .uri("/")
            .build();
        assert_eq!(*rotate(&kv, &post, &key.id).unwrap().status(), 200);
        assert_eq!(purge::take_purged(), credentials, "rotate");
        assert_eq!(*revoke(&kv, &key.id).unwrap().status(), 204);
        assert_eq!(purge::take_purged(), credentials, "revoke");
        assert_eq!(*rotate_order_tokens(&kv).unwrap().status(), 204);
        assert_eq!(purge::take_purged(), credentials, "order tokens");
        // A refused change changes nothing and purges nothing.
        assert!(revoke(&kv, "no-such-key").is_err());
        assert!(purge::take_sent().is_empty());
    }

    #[test]
    fn a_rotation_grace_defaults_to_a_day_and_is_bounded() {
        assert_eq!(grace(None).unwrap(), Duration::days(1));
        assert_eq!(grace(Some(&json!({}))).unwrap(), Duration::days(1));
        assert_eq!(
            grace(Some(&json!({"grace_seconds": 0}))).unwrap(),
            Duration::zero()
        );
        for bad in [
            json!({"grace_seconds": -1}),
            json!({"grace_seconds": "60"}),
            json!({"grace_seconds": MAX_GRACE_SECONDS + 1}),
            json!({"grace": 1}),
        ] {
            assert_eq!(status(grace(Some(&bad)).unwrap_err()).0, 422, "{bad}");
        }
    }
}
