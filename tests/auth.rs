//! Who may call what, through a real `oms up`: every route of the contract with no
//! credential (401), a credential of the wrong role, order or location (403) and the right one
//! (success); a refusal changes nothing (the order and its timeline read the same, no message
//! is handled); keys rotate without downtime and revoke for good; the timeline names who did
//! what; the bootstrap staff token is a rotatable list; no personal data in the host's log.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::oms::*;
use support::*;

/// The customer's e-mail in [`OrderSpec`]'s orders.
const EMAIL: &str = "ada@example.com";

/// A request with `Authorization: Bearer <token>` when `token` is given, repeated while the
/// OMS answers 503/504.
fn call(oms: &Oms, method: &str, path: &str, body: Option<&Value>, token: Option<&str>) -> Reply {
    call_keyed(oms, method, path, body, token, None)
}

/// [`call`] with an `Idempotency-Key`.
fn call_keyed(
    oms: &Oms,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
    key: Option<&str>,
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let body = body.map(Value::to_string);
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    until_answered(|| {
        send(
            method,
            &oms.url(path),
            body.as_deref().map(str::as_bytes),
            &headers,
        )
    })
}

/// A key made through the staff API with the bootstrap token: (id, token).
fn key(oms: &Oms, role: &str, location: Option<&str>, name: &str) -> (String, String) {
    let mut body = json!({"role": role, "name": name});
    if let Some(l) = location {
        body["location"] = json!(l);
    }
    let r = call(
        oms,
        "POST",
        "/v1/admin/keys",
        Some(&body),
        Some(ADMIN_TOKEN),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let made = r.json();
    (
        made["id"].as_str().unwrap().to_string(),
        made["token"].as_str().unwrap().to_string(),
    )
}

/// Lines of the host's log that record a handled queue message.
fn handled(oms: &Oms) -> usize {
    oms.host
        .log()
        .lines()
        .filter(|l| l.contains("message handled"))
        .count()
}

/// Waits until no queue message has been handled for a while; the count.
fn quiet(oms: &Oms) -> usize {
    let start = Instant::now();
    let mut last = handled(oms);
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = handled(oms);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_millis(500) {
            return now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the queue never went quiet"
        );
    }
}

/// What a refusal must leave as it was: the order and its timeline (read as staff).
fn snapshot(oms: &Oms, order: &str) -> (Value, Value) {
    let view = oms.staff_get(&format!("/v1/orders/{order}"));
    let events = oms.staff_get(&format!("/v1/orders/{order}/events"));
    assert_eq!((view.status, events.status), (200, 200), "{}", view.body);
    (view.json(), events.json())
}

/// One route of the contract, tried with each caller.
struct Route<'a> {
    method: &'a str,
    path: String,
    body: Option<Value>,
    /// The order a refusal must not change.
    order: &'a str,
}

impl Route<'_> {
    /// Sends with `token`, expecting `status` (401 or 403): a problem naming `Authorization`,
    /// no personal data, nothing changed, nothing published.
    fn refused(&self, oms: &Oms, token: Option<&str>, status: u16, who: &str) {
        let before = snapshot(oms, self.order);
        let messages = quiet(oms);
        let r = call_keyed(
            oms,
            self.method,
            &self.path,
            self.body.as_ref(),
            token,
            Some("refused-1"),
        );
        let case = format!("{} {} as {who}", self.method, self.path);
        assert_eq!(r.status, status, "{case}: {}", r.body);
        assert_eq!(r.content_type, "application/problem+json", "{case}");
        assert_eq!(
            r.json()["invalid-params"][0]["name"],
            "Authorization",
            "{case}: {}",
            r.body
        );
        assert!(!r.body.contains(EMAIL), "{case}: {}", r.body);
        assert_eq!(quiet(oms), messages, "{case}: a message was handled");
        assert_eq!(
            snapshot(oms, self.order),
            before,
            "{case}: the order changed"
        );
    }

    /// Sends with `token`, expecting 2xx; the body.
    fn served(&self, oms: &Oms, token: Option<&str>, who: &str) -> Value {
        let r = call_keyed(
            oms,
            self.method,
            &self.path,
            self.body.as_ref(),
            token,
            Some(&format!("served-{}", who.replace(' ', "-"))),
        );
        assert!(
            (200..300).contains(&r.status),
            "{} {} as {who}: {} {}",
            self.method,
            self.path,
            r.status,
            r.body
        );
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }
}

/// The actor of the first event of `event_type` in an order's timeline.
fn actor_of(oms: &Oms, order: &str, event_type: &str) -> Option<String> {
    let events = oms.staff_get(&format!("/v1/orders/{order}/events")).json();
    let event = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == event_type)
        .unwrap_or_else(|| panic!("no {event_type} in {events:#}"))
        .clone();
    event["actor"].as_str().map(str::to_string)
}

/// The contract's table, route by route, on one order's life: placed by its customer,
/// shipped by its location's key, delivered by staff, returned by its customer, received,
/// inspected and refunded by staff; another order cancelled by its customer.
#[test]
fn every_route_refuses_the_wrong_caller_and_serves_the_right_one() {
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-1", "wh-west", 10);
    let (staff_id, staff) = key(&oms, "staff", None, "back office");
    let (west_id, west) = key(&oms, "fulfilment", Some("wh-west"), "west dock");
    let (_, east) = key(&oms, "fulfilment", Some("wh-east"), "east dock");

    let (a, a_token) = oms.place_for_customer(&OrderSpec::default().body());
    let (b, b_token) = oms.place_for_customer(&OrderSpec::default().body());
    assert_ne!(a_token, b_token);
    let order = oms.wait_status(&a, "routed");
    oms.wait_status(&b, "routed");
    let sid = order["shipments"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(order["shipments"][0]["location"], "wh-west");

    // Reads of an order: its customer or staff.
    for path in [format!("/v1/orders/{a}"), format!("/v1/orders/{a}/events")] {
        let read = Route {
            method: "GET",
            path,
            body: None,
            order: &a,
        };
        read.refused(&oms, None, 401, "nobody");
        read.refused(&oms, Some("made-up"), 401, "an unknown token");
        read.refused(&oms, Some(&b_token), 403, "another order's customer");
        read.refused(&oms, Some(&west), 403, "a fulfilment key");
        let seen = read.served(&oms, Some(&a_token), "customer");
        assert!(
            seen.to_string().contains(&a),
            "the customer sees their order"
        );
        read.served(&oms, Some(&staff), "staff key");
        read.served(&oms, Some(ADMIN_TOKEN), "bootstrap");
    }

    // Shipment updates: the shipment's location or staff.
    let shipped = Route {
        method: "POST",
        path: format!("/v1/shipments/{sid}/shipped"),
        body: Some(json!({"carrier": "ups", "tracking": "1Z1"})),
        order: &a,
    };
    shipped.refused(&oms, None, 401, "nobody");
    shipped.refused(&oms, Some(&a_token), 403, "the customer");
    shipped.refused(&oms, Some(&east), 403, "another location's key");
    shipped.served(&oms, Some(&west), "the shipment's location");
    let delivered = Route {
        method: "POST",
        path: format!("/v1/shipments/{sid}/delivered"),
        body: Some(json!({})),
        order: &a,
    };
    delivered.refused(&oms, None, 401, "nobody");
    delivered.refused(&oms, Some(&east), 403, "another location's key");
    delivered.served(&oms, Some(&staff), "staff key");
    oms.wait_status(&a, "delivered");

    // A return: opened by the order's customer, worked by staff.
    let open = Route {
        method: "POST",
        path: format!("/v1/orders/{a}/returns"),
        body: Some(json!({"items": [{"line": 0, "quantity": 1}], "reason": "too big"})),
        order: &a,
    };
    open.refused(&oms, None, 401, "nobody");
    open.refused(&oms, Some(&b_token), 403, "another order's customer");
    open.refused(&oms, Some(&west), 403, "a fulfilment key");
    let rid = open.served(&oms, Some(&a_token), "customer")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let staff_only = |method: &'static str, path: String, body: Option<Value>| Route {
        method,
        path,
        body,
        order: &a,
    };
    let read_return = staff_only("GET", format!("/v1/returns/{rid}"), None);
    let receive = staff_only("POST", format!("/v1/returns/{rid}/received"), None);
    let inspect = staff_only(
        "POST",
        format!("/v1/returns/{rid}/inspection"),
        Some(json!({"lines": [{"line": 0, "accepted": true}]})),
    );
    let refund = staff_only(
        "POST",
        format!("/v1/orders/{a}/refunds"),
        Some(json!({"items": [{"kind": "amount", "amount": "1.00"}], "reason": "goodwill"})),
    );
    for route in [&read_return, &receive, &inspect, &refund] {
        route.refused(&oms, None, 401, "nobody");
        route.refused(&oms, Some(&a_token), 403, "the order's customer");
        route.refused(&oms, Some(&west), 403, "a fulfilment key");
        route.served(&oms, Some(&staff), "staff key");
    }

    // A cancel: the order's customer (or staff).
    let cancel = Route {
        method: "POST",
        path: format!("/v1/orders/{b}/cancel"),
        body: Some(json!({"reason": "changed mind"})),
        order: &b,
    };
    cancel.refused(&oms, None, 401, "nobody");
    cancel.refused(&oms, Some(&a_token), 403, "another order's customer");
    cancel.refused(&oms, Some(&west), 403, "a fulfilment key");
    let answer = cancel.served(&oms, Some(&b_token), "customer");
    assert_eq!(answer["status"], "cancelled", "{answer}");

    // The audit trail names who did each thing; the system's own steps name nobody.
    assert_eq!(
        actor_of(&oms, &a, "order.validated").as_deref(),
        Some("storefront")
    );
    assert_eq!(actor_of(&oms, &a, "order.routed"), None);
    assert_eq!(
        actor_of(&oms, &a, "order.shipped"),
        Some(format!("fulfilment:{west_id}"))
    );
    assert_eq!(
        actor_of(&oms, &a, "order.delivered"),
        Some(format!("staff:{staff_id}"))
    );
    assert_eq!(
        actor_of(&oms, &a, "return.requested").as_deref(),
        Some("customer")
    );
    for t in [
        "return.received",
        "return.inspected",
        "order.partially_refunded",
    ] {
        assert_eq!(
            actor_of(&oms, &a, t),
            Some(format!("staff:{staff_id}")),
            "{t}"
        );
    }
    assert_eq!(
        actor_of(&oms, &b, "order.cancelled").as_deref(),
        Some("customer")
    );

    // Staff-only resources without an order: the admin API, webhooks, the expiry sweep.
    let staff_routes = [
        ("GET", "/v1/admin/keys", None),
        ("GET", "/v1/admin/channels/shopify-eu/aliases", None),
        (
            "PUT",
            "/v1/admin/catalog/SKU-9",
            Some(json!({"USD": "1.00"})),
        ),
        ("POST", "/v1/admin/reconcile", None),
        ("POST", "/v1/admin/order-tokens/rotate", None),
        ("GET", "/v1/webhooks", None),
        ("POST", "/v1/reservations/expire", None),
    ];
    for (method, path, body) in staff_routes {
        let route = Route {
            method,
            path: path.to_string(),
            body,
            order: &a,
        };
        route.refused(&oms, None, 401, "nobody");
        route.refused(
            &oms,
            Some("oms_sk_0123456789abcdef_00"),
            401,
            "a forged key",
        );
        route.refused(&oms, Some(&west), 403, "a fulfilment key");
        route.refused(&oms, Some(&a_token), 403, "a customer");
        route.served(&oms, Some(&staff), "staff key");
        route.served(&oms, Some(ADMIN_TOKEN), "bootstrap");
    }

    // Public: placing an order, availability, the API description.
    for path in ["/v1/availability/SKU-1", "/v1/openapi.json"] {
        assert_eq!(get(&oms.url(path)).status, 200, "{path}");
    }

    // No personal data in the host's log after placing, reading and refusing.
    let log = oms.host.log();
    assert!(!log.contains(EMAIL), "the log shows the customer's e-mail");
    assert!(!log.contains(&a_token), "the log shows an access token");
}

/// A marketplace's 202 carries the customer's token too; it opens that order only, and the
/// order's first event names the channel.
#[test]
fn a_marketplace_order_has_a_customer_token_and_names_its_channel() {
    let oms = Oms::start();
    oms.seed();
    let body = OrderSpec::default().body().to_string();
    let r = oms.deliver_standard("msg_auth_1", unix_now(), &body);
    assert_eq!(r.status, 202, "{}", r.body);
    let accepted = r.json();
    let (id, token) = (
        accepted["id"].as_str().unwrap().to_string(),
        accepted["access_token"].as_str().unwrap().to_string(),
    );
    let read = call(&oms, "GET", &format!("/v1/orders/{id}"), None, Some(&token));
    assert_eq!(read.status, 200, "{}", read.body);
    let redelivered = oms.deliver_standard("msg_auth_1", unix_now(), &body);
    assert_eq!(redelivered.status, 200, "{}", redelivered.body);
    assert_eq!(redelivered.json()["access_token"], token.as_str());
    assert_eq!(
        actor_of(&oms, &id, "order.validated"),
        Some(format!("marketplace:{STANDARD_CHANNEL}"))
    );
    let other = oms.place_ok(&OrderSpec::default().body());
    let r = call(
        &oms,
        "GET",
        &format!("/v1/orders/{other}"),
        None,
        Some(&token),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // A storefront replay answers the same token.
    let spec = OrderSpec::default().body();
    let first = oms.place(&spec, "replayed-key");
    let again = oms.place(&spec, "replayed-key");
    assert_eq!((first.status, again.status), (202, 202));
    assert_eq!(first.json()["access_token"], again.json()["access_token"]);
}

/// Staff keys: listed without secrets; a rotation keeps the old token working for the grace;
/// a revoked key works no more. Customer tokens survive one rotation of their secret.
#[test]
fn keys_rotate_without_downtime_and_revoked_keys_stop_working() {
    let oms = Oms::start();
    oms.seed();
    let (id, first) = key(&oms, "staff", None, "ops");
    let works = |token: &str| call(&oms, "GET", "/v1/admin/keys", None, Some(token)).status;
    assert_eq!(works(&first), 200);

    // Keys made with a staff key record it; the list shows no secret.
    let made = call(
        &oms,
        "POST",
        "/v1/admin/keys",
        Some(&json!({"role": "fulfilment", "location": "wh-east", "name": "east"})),
        Some(&first),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.json()["created_by"], format!("staff:{id}"));
    let listed = call(&oms, "GET", "/v1/admin/keys", None, Some(&first));
    let keys = listed.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2, "{}", listed.body);
    assert_eq!(keys[0]["created_by"], "staff:root");
    let secret = first.rsplit('_').next().unwrap();
    assert!(!listed.body.contains(secret), "{}", listed.body);
    assert!(!listed.body.contains("token") && !listed.body.contains("sha256"));

    // Rotation: the old and the new token work during the grace.
    let rotate = format!("/v1/admin/keys/{id}/rotate");
    let r = call(
        &oms,
        "POST",
        &rotate,
        Some(&json!({"grace_seconds": 600})),
        Some(&first),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let second = r.json()["token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!((works(&first), works(&second)), (200, 200));
    // A rotation without grace ends every earlier token at once.
    let r = call(
        &oms,
        "POST",
        &rotate,
        Some(&json!({"grace_seconds": 0})),
        Some(&second),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let third = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        (works(&first), works(&second), works(&third)),
        (401, 401, 200)
    );
    // Revoked: nothing works, and the list says so.
    let r = call(
        &oms,
        "DELETE",
        &format!("/v1/admin/keys/{id}"),
        None,
        Some(ADMIN_TOKEN),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(works(&third), 401);
    let listed = call(&oms, "GET", "/v1/admin/keys", None, Some(ADMIN_TOKEN)).json();
    assert!(listed["keys"][0]["revoked_at"].is_string(), "{listed:#}");
    let r = call(&oms, "POST", &rotate, None, Some(ADMIN_TOKEN));
    assert_eq!(r.status, 409, "a revoked key is not rotated: {}", r.body);

    // Customer tokens: one rotation of the secret keeps them, the next ends them.
    let (order, token) = oms.place_for_customer(&OrderSpec::default().body());
    let path = format!("/v1/orders/{order}");
    let reads = |t: &str| call(&oms, "GET", &path, None, Some(t)).status;
    assert_eq!(reads(&token), 200);
    let rotate_tokens = "/v1/admin/order-tokens/rotate";
    assert_eq!(
        call(&oms, "POST", rotate_tokens, None, Some(ADMIN_TOKEN)).status,
        204
    );
    assert_eq!(
        reads(&token),
        200,
        "the previous secret's tokens still open their order"
    );
    assert_eq!(
        call(&oms, "POST", rotate_tokens, None, Some(ADMIN_TOKEN)).status,
        204
    );
    assert_eq!(reads(&token), 403, "two rotations later the token is gone");
}

/// `admin_token` is a comma-separated list, so the bootstrap token rotates: each listed token
/// is staff, nothing else is.
#[test]
fn every_listed_bootstrap_token_is_staff() {
    let oms = Oms::start_with(
        &[],
        &[("SPIN_VARIABLE_ADMIN_TOKEN", "first-token, second-token")],
    );
    for token in ["first-token", "second-token"] {
        for path in ["/v1/admin/keys", "/v1/webhooks"] {
            let r = call(&oms, "GET", path, None, Some(token));
            assert_eq!(r.status, 200, "{path} with {token}: {}", r.body);
        }
    }
    for token in ["first-token, second-token", "third-token", ADMIN_TOKEN] {
        let r = call(&oms, "GET", "/v1/admin/keys", None, Some(token));
        assert_eq!(r.status, 401, "{token}: {}", r.body);
    }
}
