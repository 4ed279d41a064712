//! Purge on write: how a write tells the caches in front of the reads (the host's response
//! cache, a CDN) which cached responses it made stale, before it answers.
//!
//! Reads carry **tags** (surrogate keys) naming what they show ([`tag`]): `order-<id>` on an
//! order and its timeline, `sku-<sku>` and `availability` on a SKU's availability,
//! `credentials` on every response that needs one. A write purges the tags of what it changed
//! with one request, `POST /.well-known/oms/purge` with `Surrogate-Key: <tag> <tag> ...` and
//! an empty body, sent to the app itself (a Spin self-request: [`PURGE_URL`], granted by
//! `allowed_outbound_hosts = ["http://self"]`). `oms up` answers it in its outbound HTTP
//! handler (purging its cache, and every host's when they share Redis); on plain Spin nothing
//! is routed there (a 404), and a deployer may route a small component there that forwards to
//! a CDN's purge-by-tag API (infra/cdn/README.md).
//!
//! # One mechanism: writes touch tags, the outermost write scope purges them
//!
//! - What a write changed is derived from the store key it wrote ([`tags_for_key`], called by
//!   `update_json` after a successful swap and by the step runner after an order's swap) or,
//!   for writes that change who may read rather than what is read (a key revoked, the order
//!   token secret rotated), touched by hand ([`touch`] with [`tag::CREDENTIALS`]).
//! - Touched tags wait in a per-instance set while a [`batch`] is open (the step runner opens
//!   one around each round — decide, stock writes, the order's swap — so a step purges once,
//!   after its swap and before its events go out); when the outermost batch ends they go out
//!   in one request. A tag touched with no batch open is purged at once.
//! - A purge never fails the write: the write already stands. A refused or failed purge is
//!   logged and the write answers as usual (a 404 — plain Spin — is expected and not logged).
//!   What a failed purge leaves stale stays so until the next write of the same tags or the
//!   entry's `max-age`.
//!
//! Native builds (unit tests) send nothing: every purge is recorded per thread, and
//! [`take_sent`] lets a test assert which tags a write purged.

use std::cell::RefCell;
use std::collections::BTreeSet;

/// Where a component sends its purges: the app itself (Spin's `self.alt` pseudo-host for
/// self-requests, Spin 3.2+), at the path `oms up` answers.
pub const PURGE_URL: &str = "http://self.alt/.well-known/oms/purge";
/// The path of [`PURGE_URL`].
pub const PURGE_PATH: &str = "/.well-known/oms/purge";

/// The tags (surrogate keys) reads carry and writes purge: one place, so both sides agree.
pub mod tag {
    /// Every availability response (a location change alters all of them).
    pub const AVAILABILITY: &str = "availability";
    /// Every response that needs a credential (a revoked key or rotated secret purges them).
    pub const CREDENTIALS: &str = "credentials";
    /// The API description (changes only with a deployment).
    pub const OPENAPI: &str = "openapi";
    /// An order's view and timeline: `order-<id>`.
    pub fn order(id: &str) -> String {
        format!("order-{id}")
    }
    /// A SKU's availability: `sku-<sku>`.
    pub fn sku(sku: &str) -> String {
        format!("sku-{sku}")
    }
}

/// The tags a write of the `default` store's `key` makes stale: an order record its order's
/// reads, a stock document its SKU's availability, the locations every availability; other
/// keys (idempotency entries, indexes, catalog) are read by no cached response.
pub fn tags_for_key(key: &str) -> Vec<String> {
    if let Some(id) = key.strip_prefix("order:") {
        vec![tag::order(id)]
    } else if let Some(rest) = key.strip_prefix("stock:") {
        // `stock:{sku}:{location}`; a SKU never contains ':'.
        let sku = rest.split(':').next().unwrap_or(rest);
        vec![tag::sku(sku)]
    } else if key == crate::record::keys::LOCATIONS {
        vec![tag::AVAILABILITY.to_string()]
    } else {
        Vec::new()
    }
}

#[derive(Default)]
struct Pending {
    /// Open [`batch`]es.
    depth: u32,
    tags: BTreeSet<String>,
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

/// Records that a write of `key` succeeded: touches its [`tags_for_key`].
pub fn wrote(key: &str) {
    for t in tags_for_key(key) {
        touch(t);
    }
}

/// Records a stale tag: purged when the outermost open [`batch`] ends, or now when none is
/// open.
pub fn touch(tag: impl Into<String>) {
    let tag = tag.into();
    let now = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if p.depth == 0 {
            true
        } else {
            p.tags.insert(tag.clone());
            false
        }
    });
    if now {
        purge(&[tag]);
    }
}

/// Runs `f` with a batch open: tags touched meanwhile are purged together in one request when
/// the outermost batch ends — after `f` returns, whatever it returned (its writes stand even
/// when it fails), and also when it panics.
pub fn batch<R>(f: impl FnOnce() -> R) -> R {
    /// Closes the batch on every way out of `f`.
    struct Open;
    impl Drop for Open {
        fn drop(&mut self) {
            let due = PENDING.with(|p| {
                let mut p = p.borrow_mut();
                p.depth = p.depth.saturating_sub(1);
                if p.depth == 0 {
                    std::mem::take(&mut p.tags)
                } else {
                    BTreeSet::new()
                }
            });
            if !due.is_empty() {
                purge(&due.into_iter().collect::<Vec<_>>());
            }
        }
    }
    PENDING.with(|p| p.borrow_mut().depth += 1);
    let _open = Open;
    f()
}

/// Purges `tags` now: one `POST` to [`PURGE_URL`] with `Surrogate-Key: <tags, space
/// separated>`, waiting for the answer (so the caches dropped them before the caller goes
/// on). Never fails: a failure is logged (see the module docs).
pub fn purge(tags: &[String]) {
    if tags.is_empty() {
        return;
    }
    let keys = tags.join(" ");
    send(&keys);
}

#[cfg(target_arch = "wasm32")]
fn send(keys: &str) {
    match wasi::post(keys) {
        Ok(status) if (200..300).contains(&status) || status == 404 => {}
        Ok(status) => eprintln!("purge: {keys}: answered {status}; cached reads may be stale"),
        Err(e) => eprintln!("purge: {keys}: {e}; cached reads may be stale"),
    }
}

#[cfg(target_arch = "wasm32")]
mod wasi {
    //! The purge request over `wasi:http/outgoing-handler` (as notify's webhook transport).
    use spin_sdk::wit::wasi::http0_2_0::{outgoing_handler, types};

    /// The host answers a self-request at once; anything slower is a misconfiguration and
    /// must not eat the write's deadline.
    const TIMEOUT_NS: u64 = 500_000_000;

    pub(super) fn post(keys: &str) -> Result<u16, String> {
        let fields = types::Fields::from_list(&[
            ("surrogate-key".to_string(), keys.as_bytes().to_vec()),
            ("content-length".to_string(), b"0".to_vec()),
        ])
        .map_err(|e| format!("invalid header: {e:?}"))?;
        let request = types::OutgoingRequest::new(fields);
        let refused = |what: &str| format!("the host refused the request's {what}");
        request
            .set_method(&types::Method::Post)
            .map_err(|()| refused("method"))?;
        request
            .set_scheme(Some(&types::Scheme::Http))
            .map_err(|()| refused("scheme"))?;
        request
            .set_authority(Some("self.alt"))
            .map_err(|()| refused("authority"))?;
        request
            .set_path_with_query(Some(super::PURGE_PATH))
            .map_err(|()| refused("path"))?;
        let body = request.body().map_err(|()| refused("body"))?;
        let options = types::RequestOptions::new();
        let _ = options.set_connect_timeout(Some(TIMEOUT_NS));
        let _ = options.set_first_byte_timeout(Some(TIMEOUT_NS));
        let response = outgoing_handler::handle(request, Some(options)).map_err(|e| match e {
            types::ErrorCode::HttpRequestDenied => {
                "denied: allowed_outbound_hosts lacks \"http://self\"".to_string()
            }
            other => format!("request failed: {other:?}"),
        })?;
        types::OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
        response.subscribe().block();
        match response.get() {
            Some(Ok(Ok(answer))) => Ok(answer.status()),
            Some(Ok(Err(code))) => Err(format!("request failed: {code:?}")),
            Some(Err(())) | None => Err("no response from the host".into()),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    static SENT: RefCell<Vec<Vec<String>>> = const { RefCell::new(Vec::new()) };
}

#[cfg(not(target_arch = "wasm32"))]
fn send(keys: &str) {
    SENT.with(|s| {
        s.borrow_mut()
            .push(keys.split(' ').map(str::to_string).collect())
    });
}

/// Native builds only: the purges this thread sent since the last call, oldest first, one
/// entry per request (its tags, sorted when it came from a [`batch`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn take_sent() -> Vec<Vec<String>> {
    SENT.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

/// Native builds only: every tag this thread purged since the last call, sorted, once each.
#[cfg(not(target_arch = "wasm32"))]
pub fn take_purged() -> BTreeSet<String> {
    take_sent().into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_map_to_the_tags_of_the_reads_that_show_them() {
        assert_eq!(tags_for_key("order:42"), ["order-42"]);
        assert_eq!(tags_for_key("stock:SKU-1:wh-1"), ["sku-SKU-1"]);
        assert_eq!(tags_for_key("locations"), ["availability"]);
        for unseen in [
            "idem:x:y",
            "catalog:SKU-1",
            "backorder:SKU-1",
            "subscriptions",
        ] {
            assert!(tags_for_key(unseen).is_empty(), "{unseen}");
        }
    }

    #[test]
    fn a_batch_purges_once_when_the_outermost_one_ends() {
        take_sent();
        batch(|| {
            wrote("stock:B:wh");
            batch(|| wrote("order:1"));
            assert!(
                take_sent().is_empty(),
                "nothing goes out while a batch is open"
            );
            wrote("stock:A:wh");
            wrote("order:1");
            wrote("idem:a:b");
        });
        assert_eq!(take_sent(), [["order-1", "sku-A", "sku-B"]]);
        touch(tag::CREDENTIALS);
        assert_eq!(take_sent(), [["credentials"]], "no batch open: at once");
        batch(|| wrote("catalog:X"));
        assert!(take_sent().is_empty(), "nothing touched, nothing sent");
    }

    #[test]
    fn a_batch_that_fails_or_panics_still_purges_what_it_wrote() {
        take_sent();
        let r: Result<(), &str> = batch(|| {
            wrote("order:2");
            Err("decide failed after a write")
        });
        assert!(r.is_err());
        assert_eq!(take_purged(), BTreeSet::from(["order-2".to_string()]));
        let caught = std::panic::catch_unwind(|| {
            batch(|| -> () {
                wrote("order:3");
                panic!("aborted mid-step")
            })
        });
        assert!(caught.is_err());
        assert_eq!(take_purged(), BTreeSet::from(["order-3".to_string()]));
        touch("x");
        assert_eq!(take_sent(), [["x"]], "the batch depth is back to zero");
    }
}
