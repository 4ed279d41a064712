//! notify tests: the real OMS components through `oms up` over HTTP, delivering to a local
//! webhook receiver that checks Standard Webhooks signatures and de-duplicates by webhook-id.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use support::oms::{Oms, OrderSpec, ADMIN_TOKEN};
use support::*;

/// A subscriber secret chosen by the test (Standard Webhooks' example key).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Mode {
    /// 204 to every correctly signed request.
    Accept,
    /// Processes the first `n` requests but answers 500 (as if it crashed before answering),
    /// then 204: the retries are duplicates it must recognise.
    FailFirst(usize),
    /// 500 to everything.
    AlwaysFail,
}

/// One correctly signed request.
#[derive(Debug, Clone)]
struct Hook {
    id: String,
    body: Value,
    status: u16,
}

#[derive(Default)]
struct Seen {
    /// Every correctly signed request, in arrival order.
    hooks: Vec<Hook>,
    /// Each webhook-id once, with the body first processed.
    unique: BTreeMap<String, Value>,
    /// Why requests were refused (bad or missing signatures, malformed requests).
    refused: Vec<String>,
}

/// A minimal HTTP/1.1 webhook receiver on a free loopback port.
struct Receiver {
    url: String,
    key: Arc<Mutex<Option<Vec<u8>>>>,
    seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/hooks",
            listener.local_addr().unwrap().port()
        );
        let key: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let (key2, seen2) = (key.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let status = match read_request(&stream) {
                    Ok((headers, body)) => accept(&headers, &body, &key2, &seen2, mode),
                    Err(e) => {
                        seen2.lock().unwrap().refused.push(e);
                        400
                    }
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let mut stream = stream;
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Receiver { url, key, seen }
    }

    /// Tells the receiver the subscription's secret.
    fn use_secret(&self, secret: &str) {
        let key = B64
            .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
            .unwrap();
        *self.key.lock().unwrap() = Some(key);
    }

    fn hooks(&self) -> Vec<Hook> {
        self.seen.lock().unwrap().hooks.clone()
    }

    fn unique(&self) -> BTreeMap<String, Value> {
        self.seen.lock().unwrap().unique.clone()
    }

    fn refused(&self) -> Vec<String> {
        self.seen.lock().unwrap().refused.clone()
    }

    /// The event types received (de-duplicated) for one order.
    fn types_for(&self, order: &str) -> Vec<String> {
        self.unique()
            .values()
            .filter(|b| b["order_id"] == order)
            .map(|b| b["type"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn read_request(stream: &TcpStream) -> Result<(BTreeMap<String, String>, Vec<u8>), String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    if !line.starts_with("POST ") {
        return Err(format!("expected a POST, got {line:?}"));
    }
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header line {l:?}"))?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let mut body = Vec::new();
    if let Some(len) = headers.get("content-length") {
        body.resize(len.parse::<usize>().map_err(|e| e.to_string())?, 0);
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| e.to_string())?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok((headers, body))
}

/// Verifies the Standard Webhooks headers; records the hook; the status to answer.
fn accept(
    headers: &BTreeMap<String, String>,
    body: &[u8],
    key: &Mutex<Option<Vec<u8>>>,
    seen: &Mutex<Seen>,
    mode: Mode,
) -> u16 {
    let mut seen = seen.lock().unwrap();
    let verdict = (|| {
        let id = headers.get("webhook-id").ok_or("no webhook-id")?;
        let ts = headers
            .get("webhook-timestamp")
            .ok_or("no webhook-timestamp")?;
        let sigs = headers
            .get("webhook-signature")
            .ok_or("no webhook-signature")?;
        if headers.get("content-type").map(String::as_str) != Some("application/json") {
            return Err("content-type is not application/json".to_string());
        }
        let sent: i64 = ts
            .parse()
            .map_err(|_| "webhook-timestamp is not a number")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        if (now - sent).abs() > 300 {
            return Err(format!(
                "webhook-timestamp {sent} is too far from now ({now})"
            ));
        }
        let key = key
            .lock()
            .unwrap()
            .clone()
            .ok_or("the receiver has no secret yet")?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
        if !sigs.split(' ').any(|s| s == expected) {
            return Err(format!("bad signature {sigs:?}"));
        }
        let body: Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
        Ok((id.clone(), body))
    })();
    let (id, body) = match verdict {
        Ok(v) => v,
        Err(why) => {
            seen.refused.push(why);
            return 401;
        }
    };
    let status = match mode {
        Mode::Accept => 204,
        Mode::FailFirst(n) if seen.hooks.len() < n => 500,
        Mode::FailFirst(_) => 204,
        Mode::AlwaysFail => 500,
    };
    // Processing is idempotent by webhook-id: a retry of a processed webhook changes nothing.
    if !matches!(mode, Mode::AlwaysFail) {
        seen.unique
            .entry(id.clone())
            .or_insert_with(|| body.clone());
    }
    seen.hooks.push(Hook { id, body, status });
    status
}

fn admin(oms: &Oms, method: &str, path: &str, body: Option<Value>) -> Reply {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let body = body.map(|b| b.to_string());
    send(
        method,
        &oms.url(path),
        body.as_deref().map(str::as_bytes),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
    )
}

/// Registers `receiver` for `events`; returns the subscription id (the receiver learns the
/// secret, given or generated).
fn subscribe(oms: &Oms, receiver: &Receiver, events: Value, secret: Option<&str>) -> String {
    let mut body = json!({"url": receiver.url, "events": events});
    if let Some(s) = secret {
        body["secret"] = json!(s);
    }
    let r = admin(oms, "POST", "/v1/webhooks", Some(body));
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    let shown = created["secret"]
        .as_str()
        .expect("the secret is shown at registration");
    match secret {
        Some(given) => assert_eq!(shown, given),
        None => assert!(
            shown.starts_with("whsec_") && shown.len() > 30,
            "a generated secret: {shown}"
        ),
    }
    receiver.use_secret(shown);
    created["id"].as_str().unwrap().to_string()
}

/// Deliveries of one subscription (GET /v1/webhooks/{id}/deliveries).
fn deliveries(oms: &Oms, subscription: &str) -> Vec<Value> {
    let r = admin(
        oms,
        "GET",
        &format!("/v1/webhooks/{subscription}/deliveries"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["deliveries"].as_array().unwrap().clone()
}

/// Starts the OMS with a catalog and stock, places one order; returns its id.
fn place_order(oms: &Oms) -> String {
    oms.seed();
    oms.stock("SKU-1", "wh-west", 10);
    oms.place_ok(&OrderSpec::default().body())
}

#[test]
fn order_events_reach_subscribers_signed_once_each() {
    let oms = Oms::start();
    let orders = Receiver::start(Mode::Accept);
    let sub = subscribe(&oms, &orders, json!(["order.*"]), Some(SECRET));
    let returns = Receiver::start(Mode::Accept);
    subscribe(&oms, &returns, json!(["return.*"]), None);
    let order = place_order(&oms);

    let wanted = ["order.validated", "order.reserved", "order.routed"];
    let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually(
            Duration::from_secs(30),
            "order.validated, order.reserved and order.routed webhooks",
            || {
                let types = orders.types_for(&order);
                wanted
                    .iter()
                    .all(|t| types.iter().any(|s| s == t))
                    .then_some(types)
            },
        )
    }))
    .unwrap_or_else(|_| {
        panic!(
            "received {:?}; refused {:?}\nlog:\n{}",
            orders.hooks(),
            orders.refused(),
            oms.host.log()
        )
    });
    assert!(orders.refused().is_empty(), "{:?}", orders.refused());
    let hooks = orders.hooks();
    assert_eq!(
        hooks.len(),
        orders.unique().len(),
        "every webhook arrived once: {hooks:?}"
    );
    for hook in &hooks {
        assert_eq!(hook.body["id"], hook.id, "webhook-id is the event id");
        assert_eq!(hook.body["version"], 1);
        assert!(
            hook.body["type"].as_str().unwrap().starts_with("order."),
            "{:?}",
            hook.body
        );
    }
    let mut sequences: Vec<u64> = hooks
        .iter()
        .filter(|h| h.body["order_id"] == order)
        .map(|h| h.body["sequence"].as_u64().unwrap())
        .collect();
    sequences.sort_unstable();
    sequences.dedup();
    assert_eq!(
        sequences.len(),
        seen.len(),
        "one webhook per event of the order"
    );
    assert!(
        returns.hooks().is_empty(),
        "the return.* subscriber gets no order events"
    );

    let log = deliveries(&oms, &sub);
    for t in wanted {
        let d = log
            .iter()
            .find(|d| d["event_type"] == t)
            .unwrap_or_else(|| panic!("no {t} delivery in {log:?}"));
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_u64()),
            (Some("delivered"), Some(1)),
            "{d}"
        );
        assert_eq!(d["order_id"], order);
    }
}

#[test]
fn a_failing_receiver_gets_the_same_webhook_again_until_it_succeeds() {
    let oms = Oms::start();
    let flaky = Receiver::start(Mode::FailFirst(2));
    let sub = subscribe(&oms, &flaky, json!(["order.validated"]), None);
    let order = place_order(&oms);

    let delivery = eventually(
        Duration::from_secs(20),
        "the order.validated webhook to be delivered",
        || {
            deliveries(&oms, &sub)
                .into_iter()
                .find(|d| d["order_id"] == order && d["state"] == "delivered")
        },
    );
    assert_eq!(delivery["attempts"], 3, "{delivery}");
    assert_eq!(delivery["event_type"], "order.validated");
    assert!(delivery.get("last_error").is_none(), "{delivery}");
    let hooks = flaky.hooks();
    let statuses: Vec<u16> = hooks.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [500, 500, 204]);
    assert!(
        hooks.iter().all(|h| h.id == delivery["event_id"]),
        "one stable webhook-id: {hooks:?}"
    );
    assert_eq!(
        flaky.unique().len(),
        1,
        "the retries were recognised as duplicates"
    );
    assert!(flaky.refused().is_empty(), "{:?}", flaky.refused());
}

#[test]
fn an_always_failing_receiver_is_dead_lettered_after_the_limit() {
    let oms = Oms::start_with(&[], &[("SPIN_VARIABLE_WEBHOOK_MAX_ATTEMPTS", "3")]);
    let down = Receiver::start(Mode::AlwaysFail);
    let sub = subscribe(&oms, &down, json!(["order.validated"]), None);
    let order = place_order(&oms);

    let dead = eventually(
        Duration::from_secs(20),
        "the webhook to be dead-lettered",
        || {
            deliveries(&oms, &sub)
                .into_iter()
                .find(|d| d["order_id"] == order && d["state"] == "dead")
        },
    );
    assert_eq!(
        (dead["attempts"].as_u64(), dead["last_status"].as_u64()),
        (Some(3), Some(500)),
        "{dead}"
    );
    assert_eq!(dead["last_error"], "HTTP 500");
    oms.host.wait_log("dead-lettered after 3 attempts");
    // Nothing more is sent once it is dead, however often the event comes back.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(down.hooks().len(), 3, "{:?}", down.hooks());
    let r = admin(
        &oms,
        "GET",
        &format!("/v1/webhooks/{sub}/deliveries?state=dead"),
        None,
    );
    assert_eq!(r.json()["deliveries"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_subscriptions_and_missing_tokens_are_refused() {
    let oms = Oms::start();
    let cases = [
        (
            json!({"url": "ftp://hooks.example.com", "events": ["order.*"]}),
            vec!["/url"],
        ),
        (
            json!({"url": "http://hooks.example.com/in", "events": ["order.*"]}),
            vec!["/url"],
        ),
        (
            json!({"url": "https://hooks.example.com/in", "events": ["order.routed", "order.teleported"]}),
            vec!["/events/1"],
        ),
        (
            json!({"url": "https://hooks.example.com/in", "events": []}),
            vec!["/events"],
        ),
        (
            json!({"url": "https://hooks.example.com/in", "events": ["*"], "secret": "hunter2"}),
            vec!["/secret"],
        ),
        (
            json!({"events": ["*"], "colour": "red"}),
            vec!["/colour", "/url"],
        ),
    ];
    for (body, fields) in cases {
        let r = admin(&oms, "POST", "/v1/webhooks", Some(body.clone()));
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(r.content_type, "application/problem+json");
        let named: Vec<String> = r.json()["invalid-params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(named, fields, "{body}");
    }
    let listed = admin(&oms, "GET", "/v1/webhooks", None);
    assert_eq!(
        (listed.status, listed.json()["webhooks"].clone()),
        (200, json!([])),
        "nothing was stored"
    );

    let good = json!({"url": "https://hooks.example.com/in", "events": ["*"]}).to_string();
    for auth in [None, Some("Bearer wrong-token"), Some(ADMIN_TOKEN)] {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
        for (method, path, body) in [
            ("POST", "/v1/webhooks", Some(good.as_bytes())),
            ("GET", "/v1/webhooks", None),
            ("GET", "/v1/webhooks/x/deliveries", None),
        ] {
            let r = send(method, &oms.url(path), body, &headers);
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.body);
            assert_eq!(r.json()["invalid-params"][0]["name"], "Authorization");
        }
    }
    assert_eq!(
        admin(&oms, "GET", "/v1/webhooks", None).json()["webhooks"],
        json!([])
    );
    assert_eq!(admin(&oms, "GET", "/v1/webhooks/nope", None).status, 404);
    assert_eq!(admin(&oms, "DELETE", "/v1/webhooks/nope", None).status, 404);
}
