//! Order holds through the real components on `oms up`: a staff hold keeps a reserved order
//! from being routed — by the queue and by the reconciler — until it is released; hold and
//! release are staff-only, answered with problem documents naming the field, shown in the
//! order view and sent as webhooks.
//!
//! Deterministic ordering without sleeps-and-hope: the order is placed on a host that runs
//! everything but reserve (`-c`), so it waits `validated` with its `order.validated` message
//! queued for reserve; the hold is placed then. The host is stopped and started again on the
//! same state with every component: reserve takes the queued message and reserves the held
//! order, and route must leave it alone.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use support::oms::{until_answered, Oms, OrderSpec, ADMIN_TOKEN, SHOPIFY_CHANNEL};
use support::*;

/// Everything but reserve (and its sweeper): orders stay `validated`. (`holds` is route's
/// code serving the hold routes.)
const NO_RESERVE: [&str; 14] = [
    "-c", "validate", "-c", "query", "-c", "admin", "-c", "route", "-c", "holds", "-c", "notify",
    "-c", "refund",
];

/// A webhook receiver that answers 204 to everything and keeps the bodies (the signatures are
/// checked by tests/notify.rs).
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        seen.lock().unwrap().push(v);
                    }
                }
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
            }
        });
        Receiver { url, bodies }
    }

    /// The webhooks received for `order`, as (type, data).
    fn of(&self, order: &str) -> Vec<(String, Value)> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["order_id"] == order)
            .map(|b| {
                (
                    b["type"].as_str().unwrap_or("").to_string(),
                    b["data"].clone(),
                )
            })
            .collect()
    }
}

fn staff(oms: &Oms, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let body = body.map(Value::to_string);
    until_answered(|| {
        send(
            method,
            &oms.url(path),
            body.as_deref().map(str::as_bytes),
            &[
                ("authorization", &format!("Bearer {ADMIN_TOKEN}")),
                ("content-type", "application/json"),
            ],
        )
    })
}

/// The order as staff see it.
fn order(oms: &Oms, id: &str) -> Value {
    let r = staff(oms, "GET", &format!("/v1/orders/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn wait_status(oms: &Oms, id: &str, status: &str) -> Value {
    eventually(
        Duration::from_secs(20),
        &format!("order {id} to be {status}"),
        || {
            let o = order(oms, id);
            (o["status"] == status).then_some(o)
        },
    )
}

/// The first invalid-param's name of a problem.
fn field(r: &Reply) -> String {
    assert_eq!(r.content_type, "application/problem+json", "{}", r.body);
    r.json()["invalid-params"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_held_order_is_reserved_but_not_routed_until_staff_release_it() {
    let oms = Oms::start_with(&NO_RESERVE, &[]);
    oms.seed();
    oms.stock("SKU-1", "wh-west", 5);
    let hooks = Receiver::start();
    let sub = json!({"url": hooks.url, "events": ["order.held", "order.hold_released"]});
    let r = staff(&oms, "POST", "/v1/webhooks", Some(&sub));
    assert_eq!(r.status, 201, "{}", r.body);
    let placed = oms.place(&OrderSpec::default().body(), "holds-1");
    assert_eq!(placed.status, 202, "{}", placed.body);
    let (id, customer) = {
        let p = placed.json();
        (
            p["id"].as_str().unwrap().to_string(),
            p["access_token"].as_str().unwrap().to_string(),
        )
    };
    let key = |role: &str| {
        let mut body = json!({"role": role, "name": format!("{role} key")});
        if role == "fulfilment" {
            body["location"] = json!("wh-west");
        }
        let r = staff(&oms, "POST", "/v1/admin/keys", Some(&body));
        assert_eq!(r.status, 201, "{}", r.body);
        let k = r.json();
        (
            k["id"].as_str().unwrap().to_string(),
            k["token"].as_str().unwrap().to_string(),
        )
    };
    let (_, fulfilment) = key("fulfilment");
    let (staff_key, staff_token) = key("staff");
    let holds = format!("/v1/orders/{id}/holds");
    let hold = json!({"reason": "fraud_review", "note": "billing country differs"});

    // Refusals change nothing.
    let before = oms.event_types(&id);
    let anonymous = send(
        "POST",
        &oms.url(&holds),
        Some(hold.to_string().as_bytes()),
        &[],
    );
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(field(&anonymous), "Authorization");
    let as_ = |token: &str| {
        send(
            "POST",
            &oms.url(&holds),
            Some(hold.to_string().as_bytes()),
            &[("authorization", &format!("Bearer {token}"))],
        )
    };
    let wrong = as_("not-the-token");
    assert_eq!(
        (wrong.status, field(&wrong)),
        (401, "Authorization".into()),
        "{}",
        wrong.body
    );
    for (who, token) in [
        ("the order's customer", &customer),
        ("a fulfilment key", &fulfilment),
    ] {
        let r = as_(token);
        assert_eq!(
            (r.status, field(&r)),
            (403, "Authorization".into()),
            "{who}: {}",
            r.body
        );
    }
    let bad = staff(&oms, "POST", &holds, Some(&json!({"reason": "on_ice"})));
    assert_eq!(
        (bad.status, field(&bad)),
        (422, "/reason".into()),
        "{}",
        bad.body
    );
    let blank = staff(
        &oms,
        "POST",
        &holds,
        Some(&json!({"reason": "staff", "note": " "})),
    );
    assert_eq!(
        (blank.status, field(&blank)),
        (422, "/note".into()),
        "{}",
        blank.body
    );
    let get = ureq::get(&oms.url(&holds))
        .set("authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .call();
    match get {
        Err(ureq::Error::Status(405, r)) => assert_eq!(r.header("allow"), Some("POST")),
        other => panic!("GET holds: {other:?}"),
    }
    let unknown = staff(&oms, "POST", &format!("{holds}/on_ice/release"), None);
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let not_held = staff(&oms, "POST", &format!("{holds}/staff/release"), None);
    assert_eq!(not_held.status, 409, "{}", not_held.body);
    assert_eq!(oms.event_types(&id), before, "refusals record nothing");
    assert_eq!(order(&oms, &id)["holds"], json!([]));

    // Placed while validated (reserve is not running), by a staff API key: 201 with the
    // holds, the key on the event; one hold per reason.
    let placed = as_(&staff_token);
    assert_eq!(placed.status, 201, "{}", placed.body);
    assert_eq!(placed.json()["holds"][0]["reason"], "fraud_review");
    let timeline = staff(&oms, "GET", &format!("/v1/orders/{id}/events"), None).json();
    let held = timeline["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (&held["type"], &held["actor"]),
        (&json!("order.held"), &json!(format!("staff:{staff_key}"))),
        "{held:#}"
    );
    let again = staff(&oms, "POST", &holds, Some(&hold));
    assert_eq!(again.status, 409, "{}", again.body);
    let view = order(&oms, &id);
    assert_eq!(view["status"], "validated");
    let shown = &view["holds"][0];
    assert_eq!(
        (&shown["reason"], &shown["note"]),
        (&json!("fraud_review"), &json!("billing country differs"))
    );
    assert!(shown["placed_at"].is_string(), "{view:#}");

    // Every component now: reserve reserves the held order (it keeps its stock); route and
    // the reconciler leave it reserved.
    let state = oms.kill();
    let oms = Oms::start_in(state, &[], &[]);
    wait_status(&oms, &id, "reserved");
    std::thread::sleep(Duration::from_secs(2));
    let reports = oms.reconcile_until_quiet(Duration::from_secs(20));
    assert!(
        reports
            .iter()
            .all(|r| !r["redriven"].as_array().unwrap().contains(&json!(id))),
        "the reconciler re-drove a held order: {reports:#?}"
    );
    let view = order(&oms, &id);
    assert_eq!(view["status"], "reserved", "{view:#}");
    assert_eq!(view["shipments"], json!([]));
    assert!(view["reservation"].is_object(), "the stock stays held");

    // Released by staff: routed.
    let release = format!("{holds}/fraud_review/release");
    let note = json!({"note": "verified with the bank"});
    let anonymous = send(
        "POST",
        &oms.url(&release),
        Some(note.to_string().as_bytes()),
        &[],
    );
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(order(&oms, &id)["holds"].as_array().unwrap().len(), 1);
    let released = staff(&oms, "POST", &release, Some(&note));
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(released.json()["holds"], json!([]));
    let routed = wait_status(&oms, &id, "routed");
    assert_eq!(routed["holds"], json!([]));
    let types = oms.event_types(&id);
    let at = |t: &str| types.iter().position(|x| x == t).unwrap_or(usize::MAX);
    assert!(
        at("order.held") < at("order.reserved")
            && at("order.reserved") < at("order.hold_released")
            && at("order.hold_released") < at("order.routed"),
        "{types:?}"
    );

    // Both webhooks, with their reason and note.
    let got = eventually(Duration::from_secs(20), "the hold webhooks", || {
        let got = hooks.of(&id);
        (got.len() >= 2).then_some(got)
    });
    assert_eq!(
        got,
        vec![
            (
                "order.held".to_string(),
                json!({"reason": "fraud_review", "note": "billing country differs"})
            ),
            (
                "order.hold_released".to_string(),
                json!({"reason": "fraud_review", "note": "verified with the bank"})
            ),
        ]
    );
}

/// A Shopify order whose line came without a SKU and with no shipping address is taken in on
/// `unmapped_item` and `address_needed` holds: not reserved (its SKU is unknown) until staff
/// add the channel alias and release, then reserved but not routed until they give the
/// address.
#[test]
fn a_marketplace_order_on_intake_holds_is_released_by_staff_step_by_step() {
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-2", "wh-west", 5);
    oms.stock("SKU-3", "wh-west", 5);
    let mut delivery: Value =
        serde_json::from_str(include_str!("fixtures/shopify/04-unmapped-item-held.json")).unwrap();
    delivery["shipping_address"] = Value::Null;
    let accepted = oms.deliver_shopify(&delivery.to_string());
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let id = accepted.json()["id"].as_str().unwrap().to_string();
    let holds = format!("/v1/orders/{id}/holds");
    let reasons = |o: &Value| -> Vec<String> {
        let mut r: Vec<String> = o["holds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["reason"].as_str().unwrap().to_string())
            .collect();
        r.sort();
        r
    };

    // Held at intake: the queue and the reconciler leave it validated, nothing reserved.
    oms.reconcile_until_quiet(Duration::from_secs(20));
    let view = order(&oms, &id);
    assert_eq!(view["status"], "validated", "{view:#}");
    assert_eq!(reasons(&view), ["address_needed", "unmapped_item"]);
    assert!(view["reservation"].is_null());

    // No alias yet: 409 naming the line, nothing changes.
    let release = |reason: &str, body: Option<&Value>| {
        staff(&oms, "POST", &format!("{holds}/{reason}/release"), body)
    };
    let refused = release("unmapped_item", None);
    assert_eq!(
        (refused.status, field(&refused)),
        (409, "/lines/1".into()),
        "{}",
        refused.body
    );
    assert_eq!(
        reasons(&order(&oms, &id)),
        ["address_needed", "unmapped_item"]
    );

    // Staff map the variant; the release maps the line and reserve takes the order.
    let alias = format!("/v1/admin/channels/{SHOPIFY_CHANNEL}/aliases/variant/39072856");
    oms.admin_put(&alias, json!({"sku": "SKU-3"}));
    let released = release("unmapped_item", None);
    assert_eq!(released.status, 200, "{}", released.body);
    let view = wait_status(&oms, &id, "reserved");
    assert_eq!(view["lines"][1]["sku"], "SKU-3");
    oms.reconcile_until_quiet(Duration::from_secs(20));
    let view = order(&oms, &id);
    assert_eq!(view["status"], "reserved", "still held: address_needed");
    assert_eq!(reasons(&view), ["address_needed"]);

    // The address: required, then routed.
    let missing = release(
        "address_needed",
        Some(&json!({"note": "called the customer"})),
    );
    assert_eq!(
        (missing.status, field(&missing)),
        (422, "/address".into()),
        "{}",
        missing.body
    );
    let address = json!({"country": "US", "postal_code": "40202", "line1": "Chestnut Street 92",
        "city": "Louisville"});
    let released = release("address_needed", Some(&json!({"address": address})));
    assert_eq!(released.status, 200, "{}", released.body);
    let view = wait_status(&oms, &id, "routed");
    assert_eq!(view["shipping"]["address"]["postal_code"], "40202");
    assert_eq!(view["holds"], json!([]));
}
