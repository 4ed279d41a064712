//! One key-value conformance suite, run against every backend `oms up` offers: embedded SQLite
//! and a real `redis-server`. What a component can observe through `fermyon:spin/key-value`
//! and `wasi:keyvalue` must not depend on which one the runtime config picked.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oms_host::key_value::{KvBackend, KvStores};
use oms_host::runtime_config::{KvBackendConfig, RuntimeConfig};
use support::redis::RedisServer;

/// The stores `a` and `b` on one backend (same file or same server), plus what keeps it alive.
struct Backend {
    stores: KvStores,
    _keep: Box<dyn std::any::Any>,
}

impl Backend {
    fn of(config: KvBackendConfig, keep: Box<dyn std::any::Any>) -> Backend {
        let rc = RuntimeConfig {
            key_value_stores: BTreeMap::from([
                ("default".to_string(), config.clone()),
                ("a".to_string(), config.clone()),
                ("b".to_string(), config),
            ]),
        };
        Backend {
            stores: KvStores::open(&rc).expect("open backend"),
            _keep: keep,
        }
    }

    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        Self::of(
            KvBackendConfig::Sqlite(dir.path().join("kv.db")),
            Box::new(dir),
        )
    }

    fn redis() -> Backend {
        let server = RedisServer::start();
        Self::of(KvBackendConfig::Redis(server.url()), Box::new(server))
    }

    fn store(&self, label: &str) -> Arc<dyn KvBackend> {
        self.stores.get(label).unwrap()
    }
}

/// A runtime as the host's (two workers); Redis connections are made on it (lazily, on first
/// use), so callers enter it before opening a backend.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `check` on each backend, naming the backend in a failure.
fn on_every_backend<F, Fut>(check: F)
where
    F: Fn(Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let rt = runtime();
    let _in_runtime = rt.enter();
    for (name, make) in [
        ("sqlite", Backend::sqlite as fn() -> Backend),
        ("redis", Backend::redis),
    ] {
        eprintln!("-- backend: {name}");
        rt.block_on(check(make()));
    }
}

#[test]
fn get_set_delete_exists_and_ordered_key_pages() {
    on_every_backend(|b| async move {
        let s = b.store("a");
        assert_eq!(s.get("k").await.unwrap(), None);
        assert!(!s.exists("k").await.unwrap());
        s.set("k", b"\x00binary\xff").await.unwrap();
        assert_eq!(
            s.get("k").await.unwrap().as_deref(),
            Some(&b"\x00binary\xff"[..])
        );
        assert!(s.exists("k").await.unwrap());
        s.set("k", b"v2").await.unwrap();
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
        s.delete("k").await.unwrap();
        s.delete("never-there").await.unwrap();
        assert_eq!(s.get("k").await.unwrap(), None);
        for k in ["order:3", "order:1", "stock:*[x]", "order:2"] {
            s.set(k, b"x").await.unwrap();
        }
        assert_eq!(
            s.keys(None, 10).await.unwrap(),
            ["order:1", "order:2", "order:3", "stock:*[x]"]
        );
        assert_eq!(s.keys(None, 2).await.unwrap(), ["order:1", "order:2"]);
        assert_eq!(
            s.keys(Some("order:2"), 10).await.unwrap(),
            ["order:3", "stock:*[x]"]
        );
    });
}

#[test]
fn each_label_is_its_own_namespace() {
    on_every_backend(|b| async move {
        let (a, other) = (b.store("a"), b.store("b"));
        a.set("shared-name", b"from a").await.unwrap();
        assert_eq!(other.get("shared-name").await.unwrap(), None);
        assert!(other.keys(None, 10).await.unwrap().is_empty());
        other.set("shared-name", b"from b").await.unwrap();
        assert_eq!(
            a.get("shared-name").await.unwrap().as_deref(),
            Some(&b"from a"[..])
        );
        other.delete("shared-name").await.unwrap();
        assert!(a.exists("shared-name").await.unwrap());
        // The host's own namespace is apart from every component store too.
        let internal = b.stores.internal();
        assert_eq!(internal.get("shared-name").await.unwrap(), None);
    });
}

#[test]
fn batch_get_set_delete_many() {
    on_every_backend(|b| async move {
        let s = b.store("a");
        assert!(s.get_many(&[]).await.unwrap().is_empty());
        s.set_many(&[("x".into(), b"1".to_vec()), ("y".into(), b"2".to_vec())])
            .await
            .unwrap();
        let keys: Vec<String> = ["x", "missing", "y"].map(String::from).to_vec();
        assert_eq!(
            s.get_many(&keys).await.unwrap(),
            [Some(b"1".to_vec()), None, Some(b"2".to_vec())]
        );
        s.delete_many(&["x".into(), "missing".into()])
            .await
            .unwrap();
        assert_eq!(
            s.get_many(&keys).await.unwrap(),
            [None, None, Some(b"2".to_vec())]
        );
        // A batch write moves the compare-and-swap token like any write.
        let (_, token) = s.get_with_token("y").await.unwrap().unwrap();
        s.set_many(&[("y".into(), b"2".to_vec())]).await.unwrap();
        assert!(!s.swap("y", Some(&token), b"3").await.unwrap());
    });
}

#[test]
fn increment_is_numeric_and_atomic() {
    on_every_backend(|b| async move {
        let s = b.store("a");
        assert_eq!(s.increment("n", 5).await.unwrap(), 5);
        assert_eq!(s.increment("n", -7).await.unwrap(), -2);
        assert_eq!(s.get("n").await.unwrap().as_deref(), Some(&b"-2"[..]));
        s.set("text", b"abc").await.unwrap();
        assert!(s.increment("text", 1).await.is_err());
        assert_eq!(s.get("text").await.unwrap().as_deref(), Some(&b"abc"[..]));
        s.set("big", i64::MAX.to_string().as_bytes()).await.unwrap();
        assert!(s.increment("big", 1).await.is_err(), "overflow is an error");
        // 64 concurrent increments: none lost.
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.increment("hits", 1).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.get("hits").await.unwrap().as_deref(), Some(&b"64"[..]));
        // An increment moves the token.
        let (_, token) = s.get_with_token("hits").await.unwrap().unwrap();
        s.increment("hits", 0).await.unwrap();
        assert!(!s.swap("hits", Some(&token), b"0").await.unwrap());
    });
}

#[test]
fn compare_and_swap_refuses_every_intervening_change() {
    on_every_backend(|b| async move {
        let s = b.store("a");
        assert!(s.swap("k", None, b"a").await.unwrap(), "absent: created");
        assert!(!s.swap("k", None, b"b").await.unwrap(), "no longer absent");
        // A→B→A: same value, different history.
        let (v, token) = s.get_with_token("k").await.unwrap().unwrap();
        assert_eq!(v, b"a");
        s.set("k", b"b").await.unwrap();
        s.set("k", b"a").await.unwrap();
        assert!(!s.swap("k", Some(&token), b"c").await.unwrap(), "A->B->A");
        // Delete, then re-create with the very same value: the old token must not win.
        let (_, token) = s.get_with_token("k").await.unwrap().unwrap();
        s.delete("k").await.unwrap();
        assert!(!s.swap("k", Some(&token), b"c").await.unwrap(), "deleted");
        s.set("k", b"a").await.unwrap();
        assert!(
            !s.swap("k", Some(&token), b"c").await.unwrap(),
            "deleted and re-created"
        );
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"a"[..]));
        // A fresh token wins, once.
        let (_, token) = s.get_with_token("k").await.unwrap().unwrap();
        assert!(s.swap("k", Some(&token), b"d").await.unwrap());
        assert!(
            !s.swap("k", Some(&token), b"e").await.unwrap(),
            "used token"
        );
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"d"[..]));
    });
}

#[test]
fn sixty_four_racing_writers_lose_no_update_and_do_conflict() {
    on_every_backend(|b| async move {
        let s = b.store("a");
        s.set("counter", b"0").await.unwrap();
        let conflicts = Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = (0..64)
            .map(|_| {
                let (s, conflicts) = (s.clone(), conflicts.clone());
                tokio::spawn(async move {
                    loop {
                        let (v, token) = s.get_with_token("counter").await.unwrap().unwrap();
                        let n: u64 = std::str::from_utf8(&v).unwrap().parse().unwrap();
                        // Let the other writers read the same value before this one writes.
                        tokio::task::yield_now().await;
                        let next = (n + 1).to_string();
                        if s.swap("counter", Some(&token), next.as_bytes())
                            .await
                            .unwrap()
                        {
                            return;
                        }
                        conflicts.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        assert_eq!(s.get("counter").await.unwrap().as_deref(), Some(&b"64"[..]));
        let conflicts = conflicts.load(Ordering::Relaxed);
        eprintln!("conflicts observed: {conflicts}");
        assert!(conflicts > 0, "the race never raced: no conflict observed");
    });
}

#[test]
fn a_redis_outage_is_an_error_and_the_store_recovers_when_redis_returns() {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let server = RedisServer::start();
    let url = server.url();
    let b = Backend::of(KvBackendConfig::Redis(url), Box::new(()));
    let s = b.store("a");
    rt.block_on(async {
        s.set("k", b"before").await.unwrap();
    });
    let port = server.stop();
    rt.block_on(async {
        let started = Instant::now();
        let err = s.get("k").await.expect_err("redis is down");
        assert!(err.to_string().contains("redis"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "an outage must fail fast, not hang the request"
        );
        assert!(s.set("k", b"during").await.is_err());
    });
    let _server = RedisServer::try_start(port).expect("redis again on the same port");
    rt.block_on(async {
        support::eventually_async(Duration::from_secs(15), "the store to recover", || async {
            s.set("k", b"after").await.ok()
        })
        .await;
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"after"[..]));
    });
}

#[test]
fn a_redis_value_written_without_a_token_can_be_swapped_once() {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let server = RedisServer::start();
    let b = Backend::of(KvBackendConfig::Redis(server.url()), Box::new(()));
    let s = b.store("a");
    // Written by another client (or its token evicted): no token beside the value.
    assert_eq!(
        server.command("SET oms:kv:a:v:k raw").as_deref(),
        Some("+OK")
    );
    rt.block_on(async {
        let (v, token) = s.get_with_token("k").await.unwrap().unwrap();
        assert_eq!(v, b"raw");
        assert!(
            s.swap("k", Some(&token), b"mine").await.unwrap(),
            "not stuck forever"
        );
        assert!(!s.swap("k", Some(&token), b"again").await.unwrap(), "once");
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"mine"[..]));
    });
}
