//! The subscription API under `/v1/webhooks` (staff only: a bootstrap token or a staff API key,
//! [`oms_edge::auth`]):
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/webhooks` `{"url", "events", "secret"?}` | 201, the subscription with its secret (shown this once) |
//! | `GET /v1/webhooks` | `{"webhooks": [...]}`, secrets left out |
//! | `GET /v1/webhooks/{id}` | the subscription, secret left out |
//! | `DELETE /v1/webhooks/{id}` | 204; its delivery log goes too |
//! | `GET /v1/webhooks/{id}/deliveries[?state=pending\|delivered\|dead]` | recent deliveries, newest first |

use std::rc::Rc;

use chrono::{DateTime, Utc};
use oms_edge::{
    auth, json_body, json_response, keys, query_param, read_response, update_json, Change,
    FunctionError, Kv, Problem,
};
use serde_json::json;
use spin_sdk::http::{Params, Request, Response, Router};
use uuid::Uuid;

use crate::delivery::{self, DeliveryState};
use crate::subscription::{self, NewSubscription, Subscription, MAX_SUBSCRIPTIONS};
use oms_edge::standard_webhooks::{WebhookSecret, GENERATED_KEY_BYTES};

/// Fresh randomness for a registration, drawn by the caller (the API itself is deterministic).
#[derive(Debug, Clone, Copy)]
pub struct Fresh {
    /// The new subscription's id.
    pub id: Uuid,
    /// Key material for a generated secret.
    pub key: [u8; GENERATED_KEY_BYTES],
}

/// What one request to the API works with: the store, the bootstrap staff tokens, the time and
/// the randomness of a registration.
pub struct Api<K> {
    /// The `default` store (subscriptions and delivery records).
    pub kv: K,
    /// The `admin_token` variable: the bootstrap staff tokens (comma-separated).
    pub admin_token: String,
    /// The request's time.
    pub now: DateTime<Utc>,
    /// Id and key of a subscription this request may create.
    pub fresh: Fresh,
}

/// Answers one request to the subscription API; every failure is a problem document.
pub fn handle<K: Kv + 'static>(req: Request, api: Rc<Api<K>>) -> Response {
    let header = req.header("authorization").and_then(|v| v.as_str());
    let staff = auth::authenticate(&api.kv, &api.admin_token, header, None, api.now)
        .and_then(|actor| actor.require_staff());
    if let Err(e) = staff {
        return e.response();
    }
    router(&api).handle(req)
}

/// The routes (full paths, as `spin.toml` sends `/v1/webhooks` and `/v1/webhooks/...` here).
fn router<K: Kv + 'static>(api: &Rc<Api<K>>) -> Router {
    const ROOT: &str = "/v1/webhooks";
    const ONE: &str = "/v1/webhooks/:id";
    const LOG: &str = "/v1/webhooks/:id/deliveries";
    let mut r = Router::new();
    r.get(ROOT, endpoint(api, |api, req, _| list(req, &api.kv)));
    r.post(ROOT, endpoint(api, create));
    r.any(ROOT, not_allowed("GET, POST"));
    r.get(
        ONE,
        endpoint(api, |api, req, id| {
            Ok(read_response(req, &find(&api.kv, id)?.redacted()))
        }),
    );
    r.delete(ONE, endpoint(api, |api, _, id| delete(&api.kv, id)));
    r.any(ONE, not_allowed("GET, DELETE"));
    r.get(
        LOG,
        endpoint(api, |api, req, id| deliveries(req, &api.kv, id)),
    );
    r.any(LOG, not_allowed("GET"));
    r.any("/*", |req: Request, _: Params| {
        Problem::new(
            404,
            "not-found",
            "Not found",
            format!("no resource at {}", req.path()),
        )
        .response()
    });
    r
}

/// A route handler over the shared [`Api`]: `f` gets the request and its `:id` ("" when the
/// route has none); its error becomes the problem response.
fn endpoint<K: Kv + 'static>(
    api: &Rc<Api<K>>,
    f: impl Fn(&Api<K>, &Request, &str) -> Result<Response, FunctionError> + 'static,
) -> impl Fn(Request, Params) -> Response + 'static {
    let api = Rc::clone(api);
    move |req, params| {
        let id = params.get("id").unwrap_or_default();
        f(&api, &req, id).unwrap_or_else(|e| e.response())
    }
}

fn create<K: Kv>(api: &Api<K>, req: &Request, _: &str) -> Result<Response, FunctionError> {
    let body = json_body(req)?;
    let new = NewSubscription::parse(&body)
        .map_err(|v| Problem::invalid("the webhook subscription is invalid", v.as_slice()))?;
    let sub = Subscription {
        id: api.fresh.id.to_string(),
        url: new.url,
        events: new.events,
        secret: new
            .secret
            .unwrap_or_else(|| WebhookSecret::from_key(api.fresh.key)),
        created_at: api.now,
    };
    update_json(
        &api.kv,
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

/// The 405 answer of a route, naming the methods it takes.
fn not_allowed(allow: &'static str) -> impl Fn(Request, Params) -> Response + 'static {
    move |_, _| Problem::method_not_allowed(allow).response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::{EventEnvelope, EventType, OrderId};
    use oms_edge::MemKv;
    use serde_json::Value;
    use spin_sdk::http::Method;

    const TOKEN: &str = "admin";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn api() -> Rc<Api<MemKv>> {
        Rc::new(Api {
            kv: MemKv::new(),
            admin_token: TOKEN.into(),
            now: at(0),
            fresh: Fresh {
                id: Uuid::from_u128(1),
                key: [9; 24],
            },
        })
    }

    fn request(method: Method, rest: &str, body: Option<&[u8]>) -> Request {
        let mut b = Request::builder();
        b.method(method)
            .uri(format!("/v1/webhooks{rest}"))
            .header("authorization", format!("Bearer {TOKEN}"));
        if let Some(body) = body {
            b.body(body.to_vec());
        }
        b.build()
    }

    fn send(api: &Rc<Api<MemKv>>, req: Request) -> (u16, Value) {
        let response = handle(req, Rc::clone(api));
        let json = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        (*response.status(), json)
    }

    fn call(api: &Rc<Api<MemKv>>, method: Method, rest: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        send(
            api,
            request(method, rest, body.as_deref().map(str::as_bytes)),
        )
    }

    #[test]
    fn register_read_and_delete_a_subscription() {
        let api = api();
        let (status, created) = call(
            &api,
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
        let (status, listed) = call(&api, Method::Get, "", None);
        assert_eq!(
            (status, listed["webhooks"][0]["id"].as_str()),
            (200, Some(id.as_str()))
        );
        assert!(
            listed["webhooks"][0].get("secret").is_none(),
            "reads never show the secret"
        );
        let (status, one) = call(&api, Method::Get, &format!("/{id}"), None);
        assert_eq!(
            (status, one["url"].as_str()),
            (200, Some("https://h.example.com/in"))
        );
        let (status, log) = call(&api, Method::Get, &format!("/{id}/deliveries"), None);
        assert_eq!((status, log["deliveries"].clone()), (200, json!([])));
        assert_eq!(call(&api, Method::Delete, &format!("/{id}"), None).0, 204);
        assert_eq!(call(&api, Method::Get, &format!("/{id}"), None).0, 404);
        assert_eq!(call(&api, Method::Delete, &format!("/{id}"), None).0, 404);
        assert_eq!(call(&api, Method::Put, "", None).0, 405);
    }

    #[test]
    fn an_invalid_registration_names_the_field_and_stores_nothing() {
        let api = api();
        let (status, problem) = call(
            &api,
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
        assert_eq!(call(&api, Method::Post, "", None).0, 400, "no body");
        assert!(api.kv.get(keys::SUBSCRIPTIONS).unwrap().is_none());
    }

    #[test]
    fn deliveries_can_be_filtered_by_state() {
        let api = api();
        let (_, created) = call(
            &api,
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
        delivery::claim(&api.kv, id, &event, 1, at(1)).unwrap();
        let failed = delivery::Outcome::Failed {
            status: Some(500),
            error: "HTTP 500".into(),
        };
        delivery::settle(&api.kv, id, event.id(), &failed, 1, at(1)).unwrap();
        let (_, dead) = call(
            &api,
            Method::Get,
            &format!("/{id}/deliveries?state=dead"),
            None,
        );
        assert_eq!(dead["deliveries"][0]["state"], "dead");
        assert_eq!(dead["deliveries"][0]["event_type"], "order.routed");
        assert_eq!(dead["deliveries"][0]["attempts"], 1);
        let (_, delivered) = call(
            &api,
            Method::Get,
            &format!("/{id}/deliveries?state=delivered"),
            None,
        );
        assert_eq!(delivered["deliveries"], json!([]));
        assert_eq!(
            call(
                &api,
                Method::Get,
                &format!("/{id}/deliveries?state=lost"),
                None
            )
            .0,
            400
        );
    }

    fn with_auth(value: Option<&str>) -> Request {
        let mut b = Request::builder();
        b.method(Method::Get).uri("/v1/webhooks");
        if let Some(v) = value {
            b.header("authorization", v);
        }
        b.build()
    }

    #[test]
    fn requests_without_the_admin_token_are_refused() {
        let api = api();
        let response = handle(with_auth(None), api);
        assert_eq!(*response.status(), 401);
        assert_eq!(
            response.header("www-authenticate").and_then(|v| v.as_str()),
            Some("Bearer")
        );
    }

    #[test]
    fn only_staff_credentials_pass() {
        let api = api();
        for (value, status, code) in [
            (None, 401, "missing"),
            (Some(TOKEN), 401, "invalid_format"),
            (Some("Basic YWRtaW4="), 401, "invalid_format"),
            (Some("Bearer admi"), 401, "invalid"),
            (Some("Bearer admin2"), 401, "invalid"),
            (Some("Bearer "), 401, "invalid_format"),
            (Some("Bearer oms_sk_0123456789abcdef_00"), 401, "invalid"),
        ] {
            let (got, problem) = send(&api, with_auth(value));
            assert_eq!(
                (got, problem["invalid-params"][0]["code"].as_str()),
                (status, Some(code)),
                "{value:?}: {problem}"
            );
            assert_eq!(problem["invalid-params"][0]["name"], "Authorization");
        }
        assert_eq!(send(&api, with_auth(Some("Bearer admin"))).0, 200);
        // Staff API keys are staff too; fulfilment keys and customer tokens are not.
        let key = |role, location: Option<&str>| {
            let made = oms_edge::api_keys::create(
                &api.kv,
                role,
                location.map(str::to_string),
                "k".into(),
                "staff:root".into(),
                at(0),
            );
            format!("Bearer {}", made.unwrap().1)
        };
        let staff = key(oms_edge::api_keys::KeyRole::Staff, None);
        assert_eq!(send(&api, with_auth(Some(&staff))).0, 200);
        let dock = key(oms_edge::api_keys::KeyRole::Fulfilment, Some("wh-1"));
        assert_eq!(send(&api, with_auth(Some(&dock))).0, 403);
        let order = OrderId::new(Uuid::from_u128(5));
        let customer = oms_edge::order_token::issue(&api.kv, order).unwrap();
        let (got, _) = send(&api, with_auth(Some(&format!("Bearer {customer}"))));
        assert_eq!(got, 403);
        // An empty list of bootstrap tokens lets nobody in with an empty or blank token.
        let none = Rc::new(Api {
            kv: MemKv::new(),
            admin_token: " , ".into(),
            now: at(0),
            fresh: api.fresh,
        });
        for value in ["Bearer ", "Bearer  ", "Bearer ,"] {
            assert_eq!(send(&none, with_auth(Some(value))).0, 401, "{value:?}");
        }
    }

    #[test]
    fn a_body_that_is_not_a_subscription_object_is_a_422_problem() {
        let api = api();
        for body in ["[1]", "\"x\"", "null", "3", "{\"url\": 5, \"events\": {}}"] {
            let (status, problem) = send(&api, request(Method::Post, "", Some(body.as_bytes())));
            assert_eq!(status, 422, "{body}: {problem}");
            assert!(
                problem["invalid-params"]
                    .as_array()
                    .is_some_and(|p| !p.is_empty()),
                "{body}"
            );
        }
        for body in ["{", "\u{0}", "{\"url\": }"] {
            let (status, problem) = send(&api, request(Method::Post, "", Some(body.as_bytes())));
            assert_eq!(
                (status, &problem["invalid-params"][0]["code"]),
                (400, &json!("invalid_json")),
                "{body:?}"
            );
        }
        assert!(api.kv.get(keys::SUBSCRIPTIONS).unwrap().is_none());
    }

    #[test]
    fn other_methods_and_paths_are_problems() {
        let api = api();
        for (method, rest, allow) in [
            (Method::Delete, "", "GET, POST"),
            (Method::Post, "/x", "GET, DELETE"),
            (Method::Put, "/x/deliveries", "GET"),
        ] {
            let response = handle(request(method, rest, None), Rc::clone(&api));
            assert_eq!(*response.status(), 405, "{rest}");
            assert_eq!(
                response.header("allow").and_then(|v| v.as_str()),
                Some(allow)
            );
        }
        for rest in ["/x/deliveries/y", "/x/log"] {
            let (status, problem) = call(&api, Method::Get, rest, None);
            assert_eq!(
                (status, problem["title"].as_str()),
                (404, Some("Not found")),
                "{rest}"
            );
        }
    }
}
