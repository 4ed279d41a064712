//! The subscription API under `/v1/webhooks` (admin only):
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/webhooks` `{"url", "events", "secret"?}` | 201, the subscription with its secret (shown this once) |
//! | `GET /v1/webhooks` | `{"webhooks": [...]}`, secrets left out |
//! | `GET /v1/webhooks/{id}` | the subscription, secret left out |
//! | `DELETE /v1/webhooks/{id}` | 204; its delivery log goes too |
//! | `GET /v1/webhooks/{id}/deliveries[?state=pending\|delivered\|dead]` | recent deliveries, newest first |

use chrono::{DateTime, Utc};
use oms_edge::{
    json_body, json_response, keys, query_param, read_response, update_json, Change, FunctionError,
    Kv, Problem,
};
use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use uuid::Uuid;

use crate::auth::require_admin;
use crate::delivery::{self, DeliveryState};
use crate::signature::{WebhookSecret, GENERATED_KEY_BYTES};
use crate::subscription::{self, NewSubscription, Subscription, MAX_SUBSCRIPTIONS};

/// Fresh randomness for a registration, drawn by the caller (the API itself is deterministic).
pub struct Fresh {
    /// The new subscription's id.
    pub id: Uuid,
    /// Key material for a generated secret.
    pub key: [u8; GENERATED_KEY_BYTES],
}

/// Answers one request to the subscription API; every failure is a problem document.
pub fn handle<K: Kv>(
    req: &Request,
    kv: &K,
    admin_token: &str,
    now: DateTime<Utc>,
    fresh: Fresh,
) -> Response {
    if let Err(problem) = require_admin(req, admin_token) {
        let mut response = problem.response();
        response.set_header("www-authenticate", "Bearer");
        return response;
    }
    route(req, kv, now, fresh).unwrap_or_else(|e| e.response())
}

fn route<K: Kv>(
    req: &Request,
    kv: &K,
    now: DateTime<Utc>,
    fresh: Fresh,
) -> Result<Response, FunctionError> {
    // The part after /v1/webhooks, as Spin's wildcard route hands it over.
    let rest = req
        .header("spin-path-info")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (req.method(), segments.as_slice()) {
        (Method::Get, []) => list(req, kv),
        (Method::Post, []) => create(req, kv, now, fresh),
        (_, []) => Ok(not_allowed("GET, POST")),
        (Method::Get, [id]) => Ok(read_response(req, &find(kv, id)?.redacted())),
        (Method::Delete, [id]) => delete(kv, id),
        (_, [_]) => Ok(not_allowed("GET, DELETE")),
        (Method::Get, [id, "deliveries"]) => deliveries(req, kv, id),
        (_, [_, "deliveries"]) => Ok(not_allowed("GET")),
        _ => Err(Problem::new(
            404,
            "not-found",
            "Not found",
            format!("no resource at /v1/webhooks{rest}"),
        )
        .into()),
    }
}

fn create<K: Kv>(
    req: &Request,
    kv: &K,
    now: DateTime<Utc>,
    fresh: Fresh,
) -> Result<Response, FunctionError> {
    let body = json_body(req)?;
    let new = NewSubscription::parse(&body)
        .map_err(|v| Problem::invalid("the webhook subscription is invalid", v.as_slice()))?;
    let sub = Subscription {
        id: fresh.id.to_string(),
        url: new.url,
        events: new.events,
        secret: new
            .secret
            .unwrap_or_else(|| WebhookSecret::from_key(fresh.key)),
        created_at: now,
    };
    update_json(
        kv,
        keys::SUBSCRIPTIONS,
        |current: Option<Vec<Subscription>>| {
            let mut subs = current.unwrap_or_default();
            if subs.len() >= MAX_SUBSCRIPTIONS {
                return Err(FunctionError::from(Problem::conflict(format!(
                    "at most {MAX_SUBSCRIPTIONS} webhook subscriptions; delete one first"
                ))));
            }
            subs.push(sub.clone());
            Ok(Change::Write(subs, ()))
        },
    )?;
    let mut shown = sub.redacted();
    shown["secret"] = json!(sub.secret.as_str());
    let mut response = json_response(201, &shown);
    response.set_header("location", format!("/v1/webhooks/{}", sub.id));
    Ok(response)
}

fn list<K: Kv>(req: &Request, kv: &K) -> Result<Response, FunctionError> {
    let subs: Vec<_> = subscription::load(kv)?
        .iter()
        .map(Subscription::redacted)
        .collect();
    Ok(read_response(req, &json!({ "webhooks": subs })))
}

fn delete<K: Kv>(kv: &K, id: &str) -> Result<Response, FunctionError> {
    let removed = update_json(
        kv,
        keys::SUBSCRIPTIONS,
        |current: Option<Vec<Subscription>>| {
            let mut subs = current.unwrap_or_default();
            let before = subs.len();
            subs.retain(|s| s.id != id);
            Ok::<_, FunctionError>(if subs.len() == before {
                Change::Keep(false)
            } else {
                Change::Write(subs, true)
            })
        },
    )?;
    if !removed {
        return Err(Problem::not_found("webhook subscription", id).into());
    }
    delivery::forget(kv, id)?;
    Ok(Response::builder()
        .status(204)
        .header("cache-control", "no-store")
        .build())
}

fn deliveries<K: Kv>(req: &Request, kv: &K, id: &str) -> Result<Response, FunctionError> {
    find(kv, id)?;
    let state = match query_param(req, "state") {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<DeliveryState>(json!(s)).map_err(|_| {
                Problem::field(
                    400,
                    "invalid-query",
                    "Invalid query",
                    "state",
                    "invalid_format",
                    "one of pending, delivered, dead",
                )
            })?,
        ),
    };
    let records: Vec<_> = delivery::recent(kv, id)?
        .into_iter()
        .filter(|r| state.is_none_or(|s| r.state == s))
        .collect();
    Ok(read_response(
        req,
        &json!({ "subscription": id, "deliveries": records }),
    ))
}

fn find<K: Kv>(kv: &K, id: &str) -> Result<Subscription, FunctionError> {
    subscription::load(kv)?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| Problem::not_found("webhook subscription", id).into())
}

fn not_allowed(allow: &str) -> Response {
    let mut response = Problem::new(
        405,
        "method-not-allowed",
        "Method not allowed",
        format!("use {allow}"),
    )
    .response();
    response.set_header("allow", allow);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::{EventEnvelope, EventType, OrderId};
    use oms_edge::MemKv;
    use serde_json::Value;

    const TOKEN: &str = "admin";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn call(kv: &MemKv, method: Method, rest: &str, body: Option<Value>) -> (u16, Value) {
        let mut b = Request::builder();
        // Spin's path info is the path after the route, without the query.
        let path_info = rest.split('?').next().unwrap_or_default();
        b.method(method)
            .uri(format!("/v1/webhooks{rest}"))
            .header("spin-path-info", path_info)
            .header("authorization", format!("Bearer {TOKEN}"));
        if let Some(body) = body {
            b.body(body.to_string());
        }
        let fresh = Fresh {
            id: Uuid::from_u128(1),
            key: [9; 24],
        };
        let response = handle(&b.build(), kv, TOKEN, at(0), fresh);
        let json = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        (*response.status(), json)
    }

    #[test]
    fn register_read_and_delete_a_subscription() {
        let kv = MemKv::new();
        let (status, created) = call(
            &kv,
            Method::Post,
            "",
            Some(json!({"url": "https://h.example.com/in", "events": ["order.*"]})),
        );
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(
            created["secret"],
            WebhookSecret::from_key([9; 24]).as_str(),
            "a secret is generated"
        );
        assert_eq!(created["events"], json!(["order.*"]));
        let (status, listed) = call(&kv, Method::Get, "", None);
        assert_eq!(
            (status, listed["webhooks"][0]["id"].as_str()),
            (200, Some(id.as_str()))
        );
        assert!(
            listed["webhooks"][0].get("secret").is_none(),
            "reads never show the secret"
        );
        let (status, one) = call(&kv, Method::Get, &format!("/{id}"), None);
        assert_eq!(
            (status, one["url"].as_str()),
            (200, Some("https://h.example.com/in"))
        );
        let (status, log) = call(&kv, Method::Get, &format!("/{id}/deliveries"), None);
        assert_eq!((status, log["deliveries"].clone()), (200, json!([])));
        assert_eq!(call(&kv, Method::Delete, &format!("/{id}"), None).0, 204);
        assert_eq!(call(&kv, Method::Get, &format!("/{id}"), None).0, 404);
        assert_eq!(call(&kv, Method::Delete, &format!("/{id}"), None).0, 404);
        assert_eq!(call(&kv, Method::Put, "", None).0, 405);
    }

    #[test]
    fn an_invalid_registration_names_the_field_and_stores_nothing() {
        let kv = MemKv::new();
        let (status, problem) = call(
            &kv,
            Method::Post,
            "",
            Some(json!({"url": "ftp://x", "events": ["order.*", "nope"]})),
        );
        assert_eq!(status, 422);
        let names: Vec<&str> = problem["invalid-params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["/url", "/events/1"]);
        assert_eq!(call(&kv, Method::Post, "", None).0, 400, "no body");
        assert!(kv.get(keys::SUBSCRIPTIONS).unwrap().is_none());
    }

    #[test]
    fn deliveries_can_be_filtered_by_state() {
        let kv = MemKv::new();
        let (_, created) = call(
            &kv,
            Method::Post,
            "",
            Some(json!({"url": "https://h.io", "events": ["*"]})),
        );
        let id = created["id"].as_str().unwrap();
        let event = EventEnvelope::new(
            Uuid::from_u128(5),
            EventType::OrderRouted,
            OrderId::new(Uuid::from_u128(6)),
            4,
            at(0),
            json!({}),
        )
        .unwrap();
        delivery::claim(&kv, id, &event, 1, at(1)).unwrap();
        let failed = delivery::Outcome::Failed {
            status: Some(500),
            error: "HTTP 500".into(),
        };
        delivery::settle(&kv, id, event.id(), &failed, 1, at(1)).unwrap();
        let (_, dead) = call(
            &kv,
            Method::Get,
            &format!("/{id}/deliveries?state=dead"),
            None,
        );
        assert_eq!(dead["deliveries"][0]["state"], "dead");
        assert_eq!(dead["deliveries"][0]["event_type"], "order.routed");
        assert_eq!(dead["deliveries"][0]["attempts"], 1);
        let (_, delivered) = call(
            &kv,
            Method::Get,
            &format!("/{id}/deliveries?state=delivered"),
            None,
        );
        assert_eq!(delivered["deliveries"], json!([]));
        assert_eq!(
            call(
                &kv,
                Method::Get,
                &format!("/{id}/deliveries?state=lost"),
                None
            )
            .0,
            400
        );
    }

    #[test]
    fn requests_without_the_admin_token_are_refused() {
        let kv = MemKv::new();
        let req = Request::builder()
            .method(Method::Get)
            .uri("/v1/webhooks")
            .build();
        let response = handle(
            &req,
            &kv,
            TOKEN,
            at(0),
            Fresh {
                id: Uuid::nil(),
                key: [0; 24],
            },
        );
        assert_eq!(*response.status(), 401);
        assert_eq!(
            response.header("www-authenticate").and_then(|v| v.as_str()),
            Some("Bearer")
        );
    }
}
