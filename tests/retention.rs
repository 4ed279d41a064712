//! What the store keeps, through the real components on `oms up` (embedded store): stock
//! documents stay small however many orders hold stock (the journal keeps the newest few; the
//! rest of the orders' commitments sit beside the document), and idempotency entries replay
//! within the retention window and are pruned after it by the expiry sweeper
//! (`retention_seconds`, shortened here to 2 s; `oms_edge::retention`).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::oms::{Oms, OrderSpec};

/// (keys, bytes of keys and values) in the `default` store whose key starts with `prefix`.
fn stored(oms: &Oms, prefix: &str) -> (u64, u64) {
    let db = rusqlite::Connection::open(oms.host.state.path().join("kv.db")).unwrap();
    db.query_row(
        "SELECT count(*), coalesce(sum(length(key) + length(value)), 0) FROM kv \
         WHERE store = 'default' AND substr(key, 1, length(?1)) = ?1",
        [prefix],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
    .unwrap()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn stock_documents_stay_small_and_idempotency_entries_are_pruned_after_the_window() {
    let oms = Oms::start_with(&[], &[("SPIN_VARIABLE_RETENTION_SECONDS", "2")]);
    oms.seed();
    oms.stock("SKU-1", "wh-east", 100);
    oms.stock("SKU-1", "wh-west", 100);

    // 24 orders hold and then allocate SKU-1: the stock documents journal only the newest.
    let body = OrderSpec::default().body();
    let first = oms.place(&body, "retained-0");
    assert_eq!(first.status, 202, "{}", first.body);
    let mut ids = vec![first.json()["id"].as_str().unwrap().to_string()];
    for n in 1..24 {
        let r = oms.place(&body, &format!("retained-{n}"));
        assert_eq!(r.status, 202, "{}", r.body);
        ids.push(r.json()["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        oms.wait_status(id, "routed");
    }
    for l in ["wh-east", "wh-west"] {
        let (_, bytes) = stored(&oms, &format!("stock:SKU-1:{l}"));
        assert!(bytes < 1024, "stock document {l} is {bytes} bytes");
    }
    let (beside, _) = stored(&oms, "stock-commit:SKU-1:");
    assert!(
        beside >= 24 - 2 * 8,
        "orders beyond the journals are beside the documents: {beside}"
    );
    let total = &oms.availability("SKU-1");
    assert_eq!(
        (total["available"].as_u64(), total["allocated"].as_u64()),
        (Some(200 - 24), Some(24)),
        "{total}"
    );

    // Within the window, the same key and body replay the first answer.
    let again = oms.place(&body, "retained-0");
    assert_eq!(
        (again.status, again.body.clone()),
        (first.status, first.body.clone())
    );
    let (entries, bytes_before) = stored(&oms, "idem:");
    assert_eq!(entries, 24);
    assert!(stored(&oms, "prune:").0 > 1, "the entries are indexed");

    // After the window (2 s past the end of the last entry's 10 s bucket) one sweep prunes
    // them and the index documents.
    let bucket_end = ((unix_now() / 10.0).floor() + 1.0) * 10.0;
    std::thread::sleep(Duration::from_secs_f64(bucket_end + 3.0 - unix_now()));
    let swept = oms.staff_post("/v1/reservations/expire", "");
    assert_eq!(swept.status, 200, "{}", swept.body);
    assert_eq!(
        stored(&oms, "idem:"),
        (0, 0),
        "before: {bytes_before} bytes"
    );
    assert_eq!(
        stored(&oms, "prune:").0,
        1,
        "only the sweeper's cursor is left"
    );
    assert_eq!(
        oms.order(&ids[0])["status"],
        "routed",
        "orders themselves are kept"
    );
}
