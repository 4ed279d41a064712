//! Intake under faults: every I/O call of storefront acceptance and marketplace intake fails
//! or aborts in turn, then the world goes on (the client's retry, the marketplace's
//! redelivery, the reconciler) and exactly one order must stand for the intent.

use chrono::{DateTime, Duration, Utc};
use oms_domain::{ChannelId, EventEnvelope, IdempotencyKey, OrderId, OrderRecord, OrderStatus};
use oms_edge::standard_webhooks::WebhookSecret;
use oms_edge::{
    for_every_fault, keys, reconcile, Bus, Env, Fault, FaultPlan, FaultyEnv, FunctionError, Kv,
    MemEnv, MemKv, OwedEntry, StoredResponse,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::marketplace::{self, Channel, Delivery, TakenIn, Verified};
use crate::receipt::Accepted;
use crate::storefront;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn body(price: &str) -> Value {
    json!({
        "channel": "web", "customer": {"email": "a@example.com"}, "currency": "USD",
        "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price": price}],
        "shipping": {"method": "standard", "amount": "5.00",
            "address": {"country": "US", "postal_code": "94107", "line1": "1 Main", "city": "SF"}},
        "tax": "0.00",
        "totals": {"subtotal": "39.98", "discount": "0.00", "shipping": "5.00", "tax": "0.00", "grand_total": "44.98"},
        "payment": {"reference": "pi_1", "status": "captured", "amount": "44.98"}
    })
}

/// The same order with another payment reference: a different request body.
fn other_body() -> Value {
    let mut b = body("19.99");
    b["payment"]["reference"] = json!("pi_2");
    b
}

fn setup(env: &MemEnv) {
    env.kv
        .set_json(&keys::catalog("SKU-1"), &json!({"USD": "19.99"}))
        .unwrap();
}

fn key() -> IdempotencyKey {
    IdempotencyKey::parse("order-key-1").unwrap()
}

fn web() -> ChannelId {
    ChannelId::parse("web").unwrap()
}

fn status(r: &Result<StoredResponse, FunctionError>) -> u16 {
    match r {
        Ok(r) => r.status,
        Err(FunctionError::Problem(p)) => p.status,
        Err(_) => 500,
    }
}

fn stored(env: &MemEnv, id: &str) -> Option<OrderRecord> {
    env.kv.get_json(&keys::order(id)).unwrap()
}

/// Exactly one order, `id`, validated, its `order.validated` published at least once and
/// always with the same event id; nothing else stored under another order id, no claim
/// record; the owed-work index names only this order.
fn assert_one_validated_order(env: &MemEnv, id: &str, fault: &str) {
    let orders: Vec<String> = env
        .kv
        .keys()
        .unwrap()
        .into_iter()
        .filter(|k| k.starts_with("order:") || k.starts_with("intake:"))
        .collect();
    assert_eq!(orders, [keys::order(id)], "{fault}");
    let record = stored(env, id).unwrap();
    assert_eq!(record.status(), OrderStatus::Validated, "{fault}");
    assert!(record.outbox().is_empty(), "{fault}: {:?}", record.outbox());
    let sent: Vec<EventEnvelope> = env
        .bus
        .sent
        .borrow()
        .iter()
        .filter(|(channel, _)| channel == "order.validated")
        .map(|(_, payload)| serde_json::from_slice(payload).unwrap())
        .collect();
    assert!(!sent.is_empty(), "{fault}: order.validated never published");
    assert!(
        sent.iter().all(|e| e.id() == record.events()[0].id()),
        "{fault}: one stable event id"
    );
    for entry in env.owed.keys().unwrap() {
        let e: OwedEntry = env.owed.get_json(&entry).unwrap().unwrap();
        assert_eq!(e.order, id, "{fault}");
    }
}

#[test]
fn every_fault_in_storefront_accept_ends_in_one_validated_order_per_key() {
    let id = OrderId::for_storefront(&web(), &key()).to_string();
    for_every_fault(
        setup,
        |env| {
            let _ = storefront::place(env, &key(), &body("19.99"));
        },
        |env| {
            // The client retries until it gets an answer; then the reconciler runs.
            for _ in 0..3 {
                if storefront::place(env, &key(), &body("19.99")).is_ok() {
                    break;
                }
                env.advance(Duration::seconds(1));
            }
            env.advance(Duration::seconds(120));
            reconcile(env, Duration::seconds(60), 100).unwrap();
        },
        |env, fault| {
            assert_one_validated_order(env, &id, fault);
            // The answer is the first one, on replay and after every fault alike.
            let again = storefront::place(env, &key(), &body("19.99")).unwrap();
            let record = stored(env, &id).unwrap();
            let token = oms_edge::order_token::issue(&env.kv, record.order().id()).unwrap();
            assert_eq!(again, Accepted::of(&record, token).stored(), "{fault}");
            let refused = storefront::place(env, &key(), &other_body());
            assert_eq!(status(&refused), 422, "{fault}: same key, other body");
            // Apart from the pruning index (oms_edge::retention), which lists the key.
            let mut all: Vec<String> = env
                .kv
                .keys()
                .unwrap()
                .into_iter()
                .filter(|k| !k.starts_with("prune:"))
                .collect();
            all.sort();
            let mut expected = [
                keys::catalog("SKU-1"),
                keys::idempotency("orders:web", key().as_str()),
                keys::order(&id),
                // The customer tokens' secret, made on first use.
                "secret:order_token".to_string(),
            ];
            expected.sort();
            assert_eq!(all, expected, "{fault}: nothing else stored");
        },
    );
}

fn market() -> ChannelId {
    ChannelId::parse("market").unwrap()
}

fn standard() -> Channel {
    marketplace::channel_config(
        &json!({"market": {"kind": "standard", "secret": SECRET}}).to_string(),
        &market(),
    )
    .unwrap()
}

/// A signed Standard Webhooks delivery of `body`, verified.
fn delivery(env: &MemEnv, msg: &str, body: &[u8]) -> Result<Delivery, FunctionError> {
    let now = env.now();
    let sig = WebhookSecret::parse(SECRET)
        .unwrap()
        .sign(msg, now.timestamp(), body);
    let ts = now.timestamp().to_string();
    let header = |name: &str| match name {
        "webhook-id" => Some(msg.to_string()),
        "webhook-timestamp" => Some(ts.clone()),
        "webhook-signature" => Some(sig.clone()),
        _ => None,
    };
    match marketplace::verify(&market(), &standard(), header, body, now)? {
        Verified::Standard(d) => Ok(d),
        other => panic!("a standard channel verified as {other:?}"),
    }
}

fn market_delivery(env: &MemEnv) -> Delivery {
    delivery(env, "msg_1", body("19.99").to_string().as_bytes()).unwrap()
}

#[test]
fn every_fault_in_marketplace_intake_ends_in_one_validated_order_per_external_id() {
    let id = OrderId::for_marketplace(&market(), "msg_1").to_string();
    for_every_fault(
        |_| {},
        |env| {
            let _ = marketplace::take_in(env, &market(), &market_delivery(env.inner()));
        },
        |env| {
            // The marketplace redelivers until answered; then the reconciler runs.
            for _ in 0..3 {
                if marketplace::take_in(env, &market(), &market_delivery(env)).is_ok() {
                    break;
                }
                env.advance(Duration::seconds(1));
            }
            env.advance(Duration::seconds(120));
            reconcile(env, Duration::seconds(60), 100).unwrap();
        },
        |env, fault| {
            assert_one_validated_order(env, &id, fault);
            let again = marketplace::take_in(env, &market(), &market_delivery(env)).unwrap();
            assert!(
                matches!(&again, TakenIn::Duplicate(d) if d.id == id && d.external_id == "msg_1"),
                "{fault}: {again:?}"
            );
        },
    );
}

#[test]
fn a_delivery_that_died_before_its_order_was_stored_is_taken_in_by_the_redelivery() {
    let env = MemEnv::new();
    // What the old intake left after a crash between its claim and the order: a claim
    // record. It no longer means anything.
    env.kv
        .set_json(
            "intake:market:msg_1",
            &"00000000-0000-0000-0000-000000000001",
        )
        .unwrap();
    // A delivery stopped before its order was stored (at each I/O call up to the swap).
    for at in 1..=3 {
        let plan = FaultPlan::new(Some(at), Fault::Abort);
        let faulty = FaultyEnv::new(&env, &plan);
        let d = market_delivery(&env);
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            marketplace::take_in(&faulty, &market(), &d)
        }));
        std::panic::set_hook(hook);
        assert!(died.is_err(), "call {at} aborted");
    }
    let id = OrderId::for_marketplace(&market(), "msg_1").to_string();
    assert!(stored(&env, &id).is_none(), "no order yet");
    let redelivery = marketplace::take_in(&env, &market(), &market_delivery(&env)).unwrap();
    assert!(
        matches!(&redelivery, TakenIn::New(a) if a.id == id),
        "the redelivery takes the order in, not `duplicate`: {redelivery:?}"
    );
    let again = marketplace::take_in(&env, &market(), &market_delivery(&env)).unwrap();
    assert!(matches!(again, TakenIn::Duplicate(d) if d.id == id));
}

#[test]
fn a_correctly_signed_body_that_is_not_an_object_is_a_422_naming_the_body() {
    let env = MemEnv::new();
    for body in ["[1,2]", "\"an order\"", "42", "null", "true"] {
        match delivery(&env, "msg_x", body.as_bytes()) {
            Err(FunctionError::Problem(p)) => {
                assert_eq!(p.status, 422, "{body}");
                assert_eq!(p.invalid_params[0].name, "body", "{body}");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    // The same for a Shopify channel.
    let shopify = marketplace::channel_config(
        &json!({"market": {"kind": "shopify", "secret": "s"}}).to_string(),
        &market(),
    )
    .unwrap();
    let sig = {
        use base64::Engine;
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(b"s").unwrap();
        mac.update(b"[1]");
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    };
    let header = |h: &str| (h == "X-Shopify-Hmac-Sha256").then(|| sig.clone());
    match marketplace::verify(&market(), &shopify, header, b"[1]", env.now()) {
        Err(FunctionError::Problem(p)) => {
            assert_eq!((p.status, p.invalid_params[0].name.as_str()), (422, "body"))
        }
        other => panic!("{other:?}"),
    }
    // Signed garbage is a 400, a bad signature a 401 naming its header.
    match delivery(&env, "msg_x", b"{not json") {
        Err(FunctionError::Problem(p)) => assert_eq!(p.status, 400),
        other => panic!("{other:?}"),
    }
    let late = env.now() + Duration::minutes(6);
    let sig = WebhookSecret::parse(SECRET)
        .unwrap()
        .sign("m", env.now().timestamp(), b"{}");
    let ts = env.now().timestamp().to_string();
    let header = |h: &str| match h {
        "webhook-id" => Some("m".to_string()),
        "webhook-timestamp" => Some(ts.clone()),
        "webhook-signature" => Some(sig.clone()),
        _ => None,
    };
    match marketplace::verify(&market(), &standard(), header, b"{}", late) {
        Err(FunctionError::Problem(p)) => {
            assert_eq!(
                (p.status, p.invalid_params[0].name.as_str()),
                (401, "webhook-timestamp")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_channel_secret_that_is_not_whsec_base64_is_a_configuration_error() {
    let bad = json!({"market": {"kind": "standard", "secret": "plain"}}).to_string();
    assert!(matches!(
        marketplace::channel_config(&bad, &market()),
        Err(FunctionError::Internal(_))
    ));
    let none = json!({}).to_string();
    match marketplace::channel_config(&none, &market()) {
        Err(FunctionError::Problem(p)) => assert_eq!(p.status, 404),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_order_is_not_kept_under_its_key_so_the_corrected_one_is_placed() {
    let env = MemEnv::new();
    setup(&env);
    let mut wrong = body("18.99");
    wrong["totals"] = json!({"subtotal": "37.98", "discount": "0.00", "shipping": "5.00", "tax": "0.00", "grand_total": "42.98"});
    wrong["payment"]["amount"] = json!("42.98");
    match storefront::place(&env, &key(), &wrong) {
        Err(FunctionError::Problem(p)) => {
            assert_eq!(p.status, 422);
            assert_eq!(p.invalid_params[0].name, "/lines/0/unit_price");
            assert_eq!(p.invalid_params[0].code, "price_mismatch");
        }
        other => panic!("{other:?}"),
    }
    // Nothing but the pruning index's note of the key (harmless once the key is gone).
    assert_eq!(
        env.kv
            .keys()
            .unwrap()
            .into_iter()
            .filter(|k| !k.starts_with("prune:"))
            .collect::<Vec<_>>(),
        [keys::catalog("SKU-1")],
        "nothing kept"
    );
    assert!(env.published().is_empty());
    let placed = storefront::place(&env, &key(), &body("19.99")).unwrap();
    assert_eq!(placed.status, 202, "{}", placed.body);
}

#[test]
fn after_a_5xx_the_same_key_with_another_body_is_refused_and_the_same_body_placed() {
    let counting = FaultPlan::new(None, Fault::Error);
    let clean = MemEnv::new();
    setup(&clean);
    let _ = storefront::place(&FaultyEnv::new(&clean, &counting), &key(), &body("19.99"));
    let mut exercised = 0;
    for at in 1..=counting.calls() {
        let env = MemEnv::new();
        setup(&env);
        let plan = FaultPlan::new(Some(at), Fault::Error);
        let failed = storefront::place(&FaultyEnv::new(&env, &plan), &key(), &body("19.99"));
        let claimed = env
            .kv
            .get(&keys::idempotency("orders:web", key().as_str()))
            .unwrap()
            .is_some();
        if status(&failed) < 500 || !claimed {
            continue;
        }
        exercised += 1;
        let other = storefront::place(&env, &key(), &other_body());
        assert_eq!(status(&other), 422, "fault at call {at}: {other:?}");
        let same = storefront::place(&env, &key(), &body("19.99")).unwrap();
        assert_eq!(same.status, 202, "fault at call {at}");
    }
    assert!(exercised > 0, "no fault produced a 5xx after the claim");
}

/// A world whose broker refuses every publish.
struct NoBroker<'a> {
    inner: &'a MemEnv,
    bus: Refusing,
}

struct Refusing;

impl Bus for Refusing {
    fn publish(&self, channel: &str, _: &[u8]) -> Result<(), String> {
        Err(format!("publish to {channel}: broker unavailable"))
    }
}

impl Env for NoBroker<'_> {
    type Kv = MemKv;
    type Bus = Refusing;
    fn kv(&self) -> &MemKv {
        &self.inner.kv
    }
    fn owed(&self) -> &MemKv {
        &self.inner.owed
    }
    fn bus(&self) -> &Refusing {
        &self.bus
    }
    fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }
    fn new_id(&self) -> Uuid {
        self.inner.new_id()
    }
}

#[test]
fn a_refused_publish_keeps_the_order_and_its_event_owed() {
    let env = MemEnv::new();
    setup(&env);
    let down = NoBroker {
        inner: &env,
        bus: Refusing,
    };
    // Accepted all the same (the old intake deleted the order and answered 503).
    let placed = storefront::place(&down, &key(), &body("19.99")).unwrap();
    assert_eq!(placed.status, 202, "{}", placed.body);
    let id = OrderId::for_storefront(&web(), &key()).to_string();
    assert_eq!(
        stored(&env, &id).unwrap().outbox().len(),
        1,
        "the event is owed"
    );
    env.advance(Duration::seconds(61));
    reconcile(&env, Duration::seconds(60), 100).unwrap();
    assert_eq!(env.published(), ["order.validated"]);
    assert_one_validated_order(&env, &id, "broker down at intake");
    // The same for a marketplace delivery: 202, not undone.
    let taken = marketplace::take_in(&down, &market(), &market_delivery(&env)).unwrap();
    assert!(matches!(taken, TakenIn::New(_)), "{taken:?}");
}

#[test]
fn a_key_names_one_order_even_after_its_entry_is_forgotten() {
    let env = MemEnv::new();
    setup(&env);
    let first = storefront::place(&env, &key(), &body("19.99")).unwrap();
    env.advance(Duration::hours(25));
    let other = storefront::place(&env, &key(), &other_body());
    assert_eq!(
        status(&other),
        422,
        "the key's order was made by another body"
    );
    let same = storefront::place(&env, &key(), &body("19.99")).unwrap();
    assert_eq!(same, first);
}

#[test]
fn a_retry_after_a_price_change_finds_the_order_its_first_attempt_stored() {
    let env = MemEnv::new();
    setup(&env);
    // The first attempt stored the order, then its answer was lost (e.g. a 504).
    let first = storefront::place(&env, &key(), &body("19.99")).unwrap();
    env.kv
        .delete(&keys::idempotency("orders:web", key().as_str()))
        .unwrap();
    env.kv
        .set_json(&keys::catalog("SKU-1"), &json!({"USD": "24.99"}))
        .unwrap();
    let retry = storefront::place(&env, &key(), &body("19.99")).unwrap();
    assert_eq!(retry, first, "the order stands; the retry is not refused");
    // A new order at the old price is refused.
    let other = IdempotencyKey::parse("order-key-2").unwrap();
    let r = storefront::place(&env, &other, &body("19.99"));
    assert_eq!(status(&r), 422);
}

/// The receipt gives the customer the order's access token (the same on every answer for the
/// intent), and the timeline names who took the order in.
#[test]
fn the_receipt_carries_the_customers_token_and_the_intake_names_its_actor() {
    let env = MemEnv::new();
    setup(&env);
    let first = storefront::place(&env, &key(), &body("19.99")).unwrap();
    let accepted: Accepted = serde_json::from_str(&first.body).unwrap();
    let id = OrderId::parse(&accepted.id).unwrap();
    assert!(oms_edge::order_token::verify(&env.kv, id, &accepted.access_token).unwrap());
    let other = OrderId::new(Uuid::from_u128(1));
    assert!(!oms_edge::order_token::verify(&env.kv, other, &accepted.access_token).unwrap());
    assert_eq!(
        storefront::place(&env, &key(), &body("19.99")).unwrap(),
        first
    );
    let record = stored(&env, &accepted.id).unwrap();
    assert_eq!(record.events()[0].actor(), Some("storefront"));

    let TakenIn::New(new) = marketplace::take_in(&env, &market(), &market_delivery(&env)).unwrap()
    else {
        panic!("a new delivery is taken in");
    };
    let record = stored(&env, &new.id).unwrap();
    assert_eq!(record.events()[0].actor(), Some("marketplace:market"));
    let again = marketplace::take_in(&env, &market(), &market_delivery(&env)).unwrap();
    assert!(
        matches!(&again, TakenIn::Duplicate(d) if d.access_token == new.access_token),
        "{again:?}"
    );
}
