//! notify: signed outbound webhooks for every order and return event.
//!
//! - **Subscriptions** (`/v1/webhooks`, admin token): a URL, event-type filters (`order.routed`,
//!   `order.*`, `*`) and a Standard Webhooks secret (`whsec_…`, generated when not given), kept
//!   in one document under `keys::SUBSCRIPTIONS`. See [`api`].
//! - **Deliveries** (a queue handler on every event channel): each matching subscriber gets the
//!   event envelope as JSON, POSTed with `webhook-id` (the event id, stable across retries),
//!   `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256>` (signed by
//!   `oms_edge::standard_webhooks`, the module intake verifies marketplace webhooks with). A 2xx answer
//!   delivers it; anything else is recorded and the handler fails, so the queue redelivers the
//!   message with exponential backoff. After `webhook_max_attempts` attempts the webhook is
//!   dead-lettered: logged, and shown as `dead` under `/v1/webhooks/{id}/deliveries`. Delivery
//!   records make redelivered messages skip what is already settled, so a subscriber is never
//!   notified twice by this component; receivers de-duplicate on `webhook-id` for the
//!   at-least-once cases (a crash between the answer and its record).
//!
//! - **Outcomes** (for the KPIs): each settled webhook is published as `webhook.delivered` or
//!   `webhook.dead_lettered` ([`outcome`]) to the app's Redis (`redis_address`); the insights
//!   component subscribes to those channels, notify does not.
//!
//! - **Re-drive** (staff, [`api`]): a dead webhook goes back to `pending` with a fresh attempt
//!   budget and its event is handed back to this handler on the `webhook.redrive` channel
//!   ([`dispatch::REDRIVE_CHANNEL`]) for that one subscriber, so it is attempted, retried with
//!   the queue's backoff and dead-lettered again exactly as the first time, same `webhook-id`.
//!
//! `webhook_max_attempts` should not exceed the queue's own redelivery limit (8 by default on
//! `oms up`): past it the host dead-letters the message while the webhook still shows
//! `pending`, until an operator re-drives the queue message (`oms queue retry`).

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

pub mod api;
pub mod delivery;
pub mod dispatch;
pub mod outcome;
pub mod subscription;
pub mod transport;

use std::rc::Rc;

use oms_domain::EventEnvelope;
use oms_edge::{new_id, now, Bus, FunctionError, KvError, SpinBus, SpinKv};
use spin_sdk::http::{Request, Response};
use spin_sdk::{http_component, redis_component};
use uuid::Uuid;

use crate::api::{Api, Fresh};
use crate::transport::WasiHttp;
use oms_edge::standard_webhooks::GENERATED_KEY_BYTES;

/// Why handling an event failed (the queue then redelivers it).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A variable is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),
    /// A webhook outcome could not be published (see [`outcome`]).
    #[error("publishing a webhook outcome: {0}")]
    Publish(String),
    /// The key-value store failed.
    #[error(transparent)]
    Store(#[from] KvError),
    /// Some subscribers have not had the event yet; it must come back.
    #[error("event {event}: {pending} webhook deliveries pending; retry later")]
    Pending {
        /// The event.
        event: Uuid,
        /// How many deliveries are left.
        pending: usize,
    },
}

#[http_component]
fn handle_webhooks(req: Request) -> Response {
    match open_api() {
        Ok(api) => api::handle(req, Rc::new(api)),
        Err(e) => e.response(),
    }
}

/// The subscription API's context for one request.
fn open_api() -> Result<Api<SpinKv>, FunctionError> {
    let admin_token = spin_sdk::variables::get("admin_token")
        .map_err(|e| FunctionError::Internal(format!("variable admin_token: {e}")))?;
    Ok(Api {
        kv: SpinKv::open_default()?,
        admin_token,
        now: now(),
        fresh: fresh()?,
        bus: Box::new(LazyBus::default()),
    })
}

#[redis_component]
fn on_event(message: bytes::Bytes) -> anyhow::Result<()> {
    // An event from a lifecycle channel goes to every subscriber that wants it; a re-driven
    // one (`webhook.redrive`, see [`api`]) to its one subscriber.
    let (event, only) = match serde_json::from_slice::<EventEnvelope>(&message) {
        Ok(event) => (event, None),
        Err(e) => match serde_json::from_slice::<dispatch::Redriven>(&message) {
            Ok(r) => (r.event, Some(r.redrive)),
            Err(_) => {
                // A message that is not an event envelope will never become one: failing
                // would only make the queue retry it until it is dead-lettered and hold up
                // nothing else. Acknowledge it and leave a trace instead.
                eprintln!(
                    "notify: dropping a message that is not an event envelope ({} bytes): {e}",
                    message.len()
                );
                return Ok(());
            }
        },
    };
    let max_attempts = max_attempts()?;
    let kv = SpinKv::open_default().map_err(Error::from)?;
    let mut subscriptions = subscription::load(&kv).map_err(Error::from)?;
    if let Some(only) = only {
        subscriptions.retain(|s| s.id == only);
    }
    let pass = dispatch::deliver(&kv, &WasiHttp, &subscriptions, &event, max_attempts, now)
        .map_err(Error::from)?;
    if !pass.settled.is_empty() {
        let bus = SpinBus::open().map_err(Error::Config)?;
        outcome::publish(&bus, &event, &pass.settled, now()).map_err(Error::Publish)?;
    }
    if pass.needs_retry() {
        return Err(Error::Pending {
            event: event.id(),
            pending: pass.failed + pass.deferred,
        }
        .into());
    }
    Ok(())
}

/// The app's Redis, connected on first use (most API requests publish nothing).
#[derive(Default)]
struct LazyBus(std::cell::OnceCell<SpinBus>);

impl Bus for LazyBus {
    fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), String> {
        if self.0.get().is_none() {
            // Set once: a component instance serves one request at a time.
            let _ = self.0.set(SpinBus::open()?);
        }
        match self.0.get() {
            Some(bus) => bus.publish(channel, payload),
            None => Err("no connection to the app's Redis".into()),
        }
    }
}

/// The `webhook_max_attempts` variable.
fn max_attempts() -> Result<u32, Error> {
    let text = spin_sdk::variables::get("webhook_max_attempts")
        .map_err(|e| Error::Config(format!("variable webhook_max_attempts: {e}")))?;
    match text.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(Error::Config(format!(
            "webhook_max_attempts must be a positive integer, got {text:?}"
        ))),
    }
}

/// A new subscription id and secret key from the host's randomness.
fn fresh() -> Result<Fresh, FunctionError> {
    let mut key = [0u8; GENERATED_KEY_BYTES];
    getrandom::fill(&mut key)
        .map_err(|e| FunctionError::Internal(format!("no randomness from the host: {e}")))?;
    Ok(Fresh { id: new_id(), key })
}
