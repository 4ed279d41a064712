//! What a handler needs from outside: the store, the event bus, the clock and fresh ids.
//! The Spin entry point wires the real ones; unit tests pass `MemKv`, `MemBus` and a fixed
//! clock and id sequence.

use chrono::{DateTime, Utc};
use oms_domain::EventEnvelope;
use oms_edge::{Bus, FunctionError, Kv, Problem};
use uuid::Uuid;

/// The world a handler runs in.
pub struct Ctx<'a, K: Kv, B: Bus> {
    /// The `default` key-value store.
    pub kv: &'a K,
    /// Where events are published (channel = event type).
    pub bus: &'a B,
    /// The current time (read again while waiting on a concurrent idempotent request).
    pub clock: &'a dyn Fn() -> DateTime<Utc>,
    /// A fresh id for events and returns.
    pub ids: &'a dyn Fn() -> Uuid,
}

impl<K: Kv, B: Bus> Ctx<'_, K, B> {
    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// A fresh id.
    pub fn id(&self) -> Uuid {
        (self.ids)()
    }

    /// Publishes events that are already saved on the order's timeline, in order.
    ///
    /// Every caller saves first and publishes second, and a repeated request publishes the
    /// saved events again (same event ids, which subscribers de-duplicate on): delivery is
    /// at-least-once and a crash or broker failure in between is repaired by a retry.
    ///
    /// # Errors
    /// A 503 problem when the broker refuses: the change is saved, so the client should
    /// retry the same request, which completes the publish.
    pub fn publish(&self, events: &[EventEnvelope]) -> Result<(), FunctionError> {
        for event in events {
            if let Err(e) = self.bus.publish_event(event) {
                eprintln!(
                    "refund: publishing {} {} failed: {e}",
                    event.event_type(),
                    event.id()
                );
                return Err(Problem::new(
                    503,
                    "publish-failed",
                    "Event not published",
                    "the change was saved but its event could not be published; retry the same request",
                )
                .into());
            }
        }
        Ok(())
    }
}
