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
//! | `POST /v1/webhooks/{id}/deliveries/{event_id}/redrive` | 202, the delivery back to `pending` with a fresh attempt budget; 409 unless it is `dead` |
//! | `POST /v1/webhooks/{id}/redrive` | 200, the subscriber's dead deliveries re-driven, at most [`REDRIVE_BATCH`] a call: `{"redriven": [...], "failed": [...], "remaining": n}` |
//!
//! A re-drive keeps the webhook's `webhook-id` (the event id: receivers de-duplicate on it),
//! notes who did it and when in the delivery's `redrives`, and hands the event back to notify
//! on the `webhook.redrive` channel ([`crate::dispatch::REDRIVE_CHANNEL`]): its attempts are
//! then made, retried with the queue's backoff and dead-lettered again after
//! `webhook_max_attempts` exactly as a first delivery's.

use std::rc::Rc;

use chrono::{DateTime, Utc};
use oms_edge::{
    auth, json_body, json_response, keys, query_param, read_response, update_json, Bus, Change,
    FunctionError, Kv, OrderRecord, Problem,
};
use serde_json::json;
use spin_sdk::http::{Params, Request, Response, Router};
use uuid::Uuid;

use crate::delivery::{self, DeliveryRecord, DeliveryState, RedriveRefused};
use crate::dispatch::{Redriven, REDRIVE_CHANNEL};
use crate::subscription::{self, NewSubscription, Subscription, MAX_SUBSCRIPTIONS};
use oms_edge::standard_webhooks::{WebhookSecret, GENERATED_KEY_BYTES};

/// At most this many dead deliveries are re-driven by one `POST /v1/webhooks/{id}/redrive`.
pub const REDRIVE_BATCH: usize = 50;

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
    /// The app's queue, where re-driven webhooks go.
    pub bus: Box<dyn Bus>,
}

/// Answers one request to the subscription API; every failure is a problem document.
pub fn handle<K: Kv + 'static>(req: Request, api: Rc<Api<K>>) -> Response {
    let header = req.header("authorization").and_then(|v| v.as_str());
    let staff = auth::authenticate(&api.kv, &api.admin_token, header, None, api.now)
        .and_then(|actor| actor.require_staff().map(|()| actor));
    match staff {
        Ok(actor) => router(&api, actor.audit()).handle(req),
        Err(e) => e.response(),
    }
}

/// The routes (full paths, as `spin.toml` sends `/v1/webhooks` and `/v1/webhooks/...` here).
fn router<K: Kv + 'static>(api: &Rc<Api<K>>, by: String) -> Router {
    const ROOT: &str = "/v1/webhooks";
    const ONE: &str = "/v1/webhooks/:id";
    const LOG: &str = "/v1/webhooks/:id/deliveries";
    const REDRIVE_ONE: &str = "/v1/webhooks/:id/deliveries/:delivery/redrive";
    const REDRIVE_ALL: &str = "/v1/webhooks/:id/redrive";
    let by = Rc::new(by);
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
    {
        let (api, by) = (Rc::clone(api), Rc::clone(&by));
        r.post(REDRIVE_ONE, move |_: Request, params: Params| {
            let id = params.get("id").unwrap_or_default();
            let delivery = params.get("delivery").unwrap_or_default();
            redrive_one(&api, id, delivery, &by).unwrap_or_else(|e| e.response())
        });
    }
    r.any(REDRIVE_ONE, not_allowed("POST"));
    r.post(
        REDRIVE_ALL,
        endpoint(api, move |api, _, id| redrive_all(api, id, &by)),
    );
    r.any(REDRIVE_ALL, not_allowed("POST"));
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

/// `POST /v1/webhooks/{id}/deliveries/{event_id}/redrive`.
fn redrive_one<K: Kv>(
    api: &Api<K>,
    id: &str,
    delivery: &str,
    by: &str,
) -> Result<Response, FunctionError> {
    let sub = find(&api.kv, id)?;
    let event = Uuid::parse_str(delivery).map_err(|_| not_a_delivery(id, delivery))?;
    Ok(json_response(202, &redrive(api, &sub, event, by)?))
}

/// `POST /v1/webhooks/{id}/redrive`: the newest [`REDRIVE_BATCH`] dead deliveries; one that
/// cannot be re-driven (settled meanwhile, its order gone) is listed under `failed` with its
/// problem document and does not stop the others.
fn redrive_all<K: Kv>(api: &Api<K>, id: &str, by: &str) -> Result<Response, FunctionError> {
    let sub = find(&api.kv, id)?;
    let dead: Vec<Uuid> = delivery::recent(&api.kv, id)?
        .into_iter()
        .filter(|r| r.state == DeliveryState::Dead)
        .map(|r| r.event_id)
        .collect();
    let (mut redriven, mut failed) = (Vec::new(), Vec::new());
    for event in dead.iter().take(REDRIVE_BATCH) {
        match redrive(api, &sub, *event, by) {
            Ok(record) => redriven.push(record),
            Err(FunctionError::Problem(problem)) if problem.status != 503 => {
                failed.push(json!({ "event_id": event, "problem": problem }));
            }
            // The queue or the store is failing: the rest would fail too.
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        200,
        &json!({
            "subscription": id,
            "redriven": redriven,
            "failed": failed,
            "remaining": dead.len().saturating_sub(REDRIVE_BATCH),
        }),
    ))
}

/// Re-drives one dead delivery of `sub` (see the module docs): the record back to pending,
/// then the event handed to notify's queue; if that fails the record is dead again.
fn redrive<K: Kv>(
    api: &Api<K>,
    sub: &Subscription,
    event_id: Uuid,
    by: &str,
) -> Result<DeliveryRecord, FunctionError> {
    let unknown = || not_a_delivery(&sub.id, &event_id.to_string());
    let record = delivery::get(&api.kv, &sub.id, event_id)?.ok_or_else(unknown)?;
    if record.state != DeliveryState::Dead {
        return Err(not_dead(event_id, record.state).into());
    }
    let event = stored_event(&api.kv, &record)?;
    let dead = match delivery::redrive(&api.kv, &sub.id, event_id, by, api.now)? {
        Ok((dead, pending)) => (dead, pending),
        Err(RedriveRefused::Unknown) => return Err(unknown().into()),
        Err(RedriveRefused::NotDead(state)) => return Err(not_dead(event_id, state).into()),
    };
    let message = serde_json::to_vec(&Redriven {
        redrive: sub.id.clone(),
        event,
    })
    .map_err(|e| FunctionError::Internal(format!("encoding a re-drive: {e}")))?;
    if let Err(e) = api.bus.publish(REDRIVE_CHANNEL, &message) {
        eprintln!("notify: re-driving webhook {event_id} to {}: {e}", sub.id);
        delivery::undo_redrive(&api.kv, &sub.id, &dead.0)?;
        return Err(Problem::new(
            503,
            "unavailable",
            "Service unavailable",
            format!("the queue did not take the re-driven webhook {event_id}; it is still dead, try again"),
        )
        .into());
    }
    Ok(dead.1)
}

/// The event a delivery sends, from its order's timeline.
fn stored_event<K: Kv>(
    kv: &K,
    record: &DeliveryRecord,
) -> Result<oms_domain::EventEnvelope, FunctionError> {
    let order: Option<OrderRecord> = kv.get_json(&keys::order(&record.order_id))?;
    order
        .and_then(|o| {
            o.events()
                .iter()
                .find(|e| e.id() == record.event_id)
                .cloned()
        })
        .ok_or_else(|| {
            Problem::new(
                410,
                "gone",
                "Gone",
                format!(
                    "event {} of order {} is no longer stored; the webhook cannot be sent again",
                    record.event_id, record.order_id
                ),
            )
            .into()
        })
}

fn not_a_delivery(subscription: &str, delivery: &str) -> Problem {
    Problem::not_found(
        &format!("delivery to webhook subscription {subscription}:"),
        delivery,
    )
}

/// The 409 of a re-drive of a delivery that is not dead, naming its state.
fn not_dead(event: Uuid, state: DeliveryState) -> Problem {
    let state = match state {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Dead => "dead",
    };
    Problem::conflict(format!(
        "delivery {event} is {state}; only a dead delivery can be re-driven"
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
    use std::cell::{Cell, RefCell};

    use super::*;
    use crate::dispatch;
    use crate::subscription::WebhookUrl;
    use crate::transport::Transport;
    use oms_domain::{EventEnvelope, EventType, Order, OrderId};
    use oms_edge::MemKv;
    use serde_json::Value;
    use spin_sdk::http::Method;

    const TOKEN: &str = "admin";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    /// The queue: what was published, and whether it refuses.
    #[derive(Default, Clone)]
    struct Queue {
        bus: Rc<oms_edge::MemBus>,
        down: Rc<Cell<bool>>,
    }

    impl Bus for Queue {
        fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), String> {
            if self.down.get() {
                return Err("connection refused".into());
            }
            self.bus.publish(channel, payload)
        }
    }

    fn api() -> Rc<Api<MemKv>> {
        api_with(Queue::default())
    }

    fn api_with(queue: Queue) -> Rc<Api<MemKv>> {
        Rc::new(Api {
            kv: MemKv::new(),
            admin_token: TOKEN.into(),
            now: at(0),
            fresh: Fresh {
                id: Uuid::from_u128(1),
                key: [9; 24],
            },
            bus: Box::new(queue),
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
            bus: Box::new(Queue::default()),
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

    /// Answers every webhook with `status` and records the `webhook-id`s it got.
    struct Receiver {
        status: u16,
        ids: RefCell<Vec<String>>,
    }

    impl Transport for Receiver {
        fn post(
            &self,
            _: &WebhookUrl,
            headers: &[(&str, String)],
            _: &[u8],
        ) -> Result<u16, String> {
            let id = headers.iter().find(|(k, _)| *k == "webhook-id");
            self.ids
                .borrow_mut()
                .push(id.map(|(_, v)| v.clone()).unwrap_or_default());
            Ok(self.status)
        }
    }

    /// Order `n`, accepted and stored; its `order.validated` event.
    fn stored_order(api: &Api<MemKv>, n: u128) -> EventEnvelope {
        let body = json!({
            "channel": "web", "customer": {"email": "a@example.com"}, "currency": "USD",
            "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": "10.00"}],
            "shipping": {"method": "standard", "amount": "0.00",
                "address": {"country": "US", "postal_code": "94107", "line1": "1 Main", "city": "SF"}},
            "tax": "0.00",
            "totals": {"subtotal": "10.00", "discount": "0.00", "shipping": "0.00", "tax": "0.00", "grand_total": "10.00"},
            "payment": {"reference": "pi_1", "status": "captured", "amount": "10.00"}
        });
        let order = Order::from_request(&body, OrderId::new(Uuid::from_u128(n)), at(0)).unwrap();
        let record = OrderRecord::accept(order, Uuid::from_u128(n * 1000), at(0)).unwrap();
        api.kv
            .set_json(&keys::order(&record.order().id().to_string()), &record)
            .unwrap();
        record.events()[0].clone()
    }

    /// A subscriber `"*"` and a dead webhook of a stored order `n` to it (one failed attempt).
    fn dead_letter(api: &Rc<Api<MemKv>>, n: u128) -> (String, EventEnvelope) {
        let id = match find(&api.kv, &Uuid::from_u128(1).to_string()) {
            Ok(sub) => sub.id,
            Err(_) => {
                let (_, created) = call(
                    api,
                    Method::Post,
                    "",
                    Some(json!({"url": "https://h.io/in", "events": ["*"]})),
                );
                created["id"].as_str().unwrap().to_string()
            }
        };
        let event = stored_order(api, n);
        delivery::claim(&api.kv, &id, &event, 1, at(1)).unwrap();
        let failed = delivery::Outcome::Failed {
            status: Some(500),
            error: "HTTP 500".into(),
        };
        let state = delivery::settle(&api.kv, &id, event.id(), &failed, 1, at(1)).unwrap();
        assert_eq!(state, Some(DeliveryState::Dead));
        (id, event)
    }

    fn record(api: &Api<MemKv>, sub: &str, event: Uuid) -> DeliveryRecord {
        delivery::get(&api.kv, sub, event).unwrap().unwrap()
    }

    /// What notify's queue handler does with a `webhook.redrive` message, with `transport`.
    fn handle_redrive(
        api: &Api<MemKv>,
        payload: &[u8],
        transport: &impl Transport,
        max: u32,
    ) -> dispatch::Pass {
        let message: Redriven = serde_json::from_slice(payload).unwrap();
        let subs: Vec<Subscription> = subscription::load(&api.kv)
            .unwrap()
            .into_iter()
            .filter(|s| s.id == message.redrive)
            .collect();
        dispatch::deliver(&api.kv, transport, &subs, &message.event, max, || at(50)).unwrap()
    }

    #[test]
    fn a_dead_webhook_is_redriven_with_a_fresh_budget_and_the_same_webhook_id() {
        let queue = Queue::default();
        let api = api_with(queue.clone());
        let (sub, event) = dead_letter(&api, 7);
        let path = format!("/{sub}/deliveries/{}/redrive", event.id());
        let (status, pending) = call(&api, Method::Post, &path, None);
        assert_eq!(status, 202, "{pending}");
        assert_eq!(
            (
                &pending["state"],
                &pending["attempts"],
                &pending["event_id"]
            ),
            (&json!("pending"), &json!(0), &json!(event.id()))
        );
        assert_eq!(
            pending["redrives"],
            json!([{"at": at(0), "by": "staff:root", "attempts": 1, "last_error": "HTTP 500"}]),
            "the history says who re-drove it and what had happened"
        );
        let (_, listed) = call(
            &api,
            Method::Get,
            &format!("/{sub}/deliveries?state=pending"),
            None,
        );
        assert_eq!(listed["deliveries"][0]["event_id"], json!(event.id()));
        // The event went back to notify, for this subscriber only.
        let sent = queue.bus.sent.borrow().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "webhook.redrive");
        assert!(
            serde_json::from_slice::<EventEnvelope>(&sent[0].1).is_err(),
            "the handler tells it from a lifecycle event"
        );
        let message: Redriven = serde_json::from_slice(&sent[0].1).unwrap();
        assert_eq!(
            (message.redrive.as_str(), &message.event),
            (sub.as_str(), &event)
        );
        // Re-driving it again while it is pending changes nothing.
        let (status, problem) = call(&api, Method::Post, &path, None);
        assert_eq!(status, 409);
        assert!(
            problem["detail"].as_str().unwrap().contains("is pending"),
            "{problem}"
        );
        assert_eq!(queue.bus.sent.borrow().len(), 1);
        // Two more failures (the budget starts again: max 2) and it is dead again.
        let down = Receiver {
            status: 503,
            ids: RefCell::new(Vec::new()),
        };
        assert!(handle_redrive(&api, &sent[0].1, &down, 2).needs_retry());
        let pass = handle_redrive(&api, &sent[0].1, &down, 2);
        assert_eq!((pass.dead, pass.needs_retry()), (1, false));
        let r = record(&api, &sub, event.id());
        assert_eq!(
            (r.state, r.attempts, r.redrives.len()),
            (DeliveryState::Dead, 2, 1)
        );
        // Re-driven once more, it is delivered with the webhook-id receivers saw before.
        assert_eq!(call(&api, Method::Post, &path, None).0, 202);
        let up = Receiver {
            status: 204,
            ids: RefCell::new(Vec::new()),
        };
        let payload = queue.bus.sent.borrow()[1].1.clone();
        assert_eq!(handle_redrive(&api, &payload, &up, 2).delivered, 1);
        assert_eq!(*up.ids.borrow(), [event.id().to_string()]);
        assert_eq!(*down.ids.borrow(), vec![event.id().to_string(); 2]);
        let r = record(&api, &sub, event.id());
        assert_eq!(
            (r.state, r.attempts, r.redrives.len()),
            (DeliveryState::Delivered, 1, 2)
        );
        let (status, problem) = call(&api, Method::Post, &path, None);
        assert_eq!(status, 409);
        assert!(
            problem["detail"].as_str().unwrap().contains("is delivered"),
            "{problem}"
        );
    }

    #[test]
    fn redriving_what_is_not_a_dead_delivery_is_a_problem_and_changes_nothing() {
        let queue = Queue::default();
        let api = api_with(queue.clone());
        let (sub, event) = dead_letter(&api, 7);
        let unknown = Uuid::from_u128(99);
        for (rest, status) in [
            (format!("/{sub}/deliveries/{unknown}/redrive"), 404),
            (format!("/{sub}/deliveries/not-a-uuid/redrive"), 404),
            (format!("/{unknown}/deliveries/{}/redrive", event.id()), 404),
            (format!("/{unknown}/redrive"), 404),
        ] {
            let (got, problem) = call(&api, Method::Post, &rest, None);
            assert_eq!(
                (got, problem["title"].as_str()),
                (status, Some("Not found")),
                "{rest}"
            );
        }
        let path = format!("/{sub}/deliveries/{}/redrive", event.id());
        let response = handle(request(Method::Get, &path, None), Rc::clone(&api));
        assert_eq!(
            (
                *response.status(),
                response.header("allow").and_then(|v| v.as_str())
            ),
            (405, Some("POST"))
        );
        // Callers that are not staff.
        let order = OrderId::new(Uuid::from_u128(7));
        let customer = oms_edge::order_token::issue(&api.kv, order).unwrap();
        for (auth, status) in [(None, 401), (Some(format!("Bearer {customer}")), 403)] {
            let mut b = Request::builder();
            b.method(Method::Post).uri(format!("/v1/webhooks{path}"));
            if let Some(v) = auth {
                b.header("authorization", v);
            }
            assert_eq!(send(&api, b.build()).0, status);
        }
        // The queue refuses: the webhook stays dead as it was.
        queue.down.set(true);
        let (status, problem) = call(&api, Method::Post, &path, None);
        assert_eq!(status, 503, "{problem}");
        queue.down.set(false);
        // Its order is gone (retention): the event cannot be sent again.
        api.kv
            .delete(&keys::order(&event.order_id().to_string()))
            .unwrap();
        assert_eq!(call(&api, Method::Post, &path, None).0, 410);
        let r = record(&api, &sub, event.id());
        assert_eq!(
            (r.state, r.attempts, r.redrives.len()),
            (DeliveryState::Dead, 1, 0)
        );
        assert!(queue.bus.sent.borrow().is_empty());
    }

    #[test]
    fn a_subscribers_dead_letters_are_redriven_together() {
        let queue = Queue::default();
        let api = api_with(queue.clone());
        let (sub, first) = dead_letter(&api, 7);
        let (_, second) = dead_letter(&api, 8);
        let (_, gone) = dead_letter(&api, 9);
        api.kv
            .delete(&keys::order(&gone.order_id().to_string()))
            .unwrap();
        let (status, answer) = call(&api, Method::Post, &format!("/{sub}/redrive"), None);
        assert_eq!(status, 200, "{answer}");
        let redriven: Vec<&Value> = answer["redriven"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["event_id"])
            .collect();
        assert_eq!(
            redriven,
            [&json!(second.id()), &json!(first.id())],
            "newest first"
        );
        assert_eq!(answer["failed"][0]["event_id"], json!(gone.id()));
        assert_eq!(answer["failed"][0]["problem"]["status"], 410);
        assert_eq!(answer["remaining"], 0);
        assert_eq!(queue.bus.sent.borrow().len(), 2);
        // Nothing dead that can be sent is left: a second call re-drives nothing.
        let (_, again) = call(&api, Method::Post, &format!("/{sub}/redrive"), None);
        assert_eq!(
            (again["redriven"].clone(), queue.bus.sent.borrow().len()),
            (json!([]), 2)
        );
    }
}
