//! Publishing events to the app's queue channels (Spin's Redis pub/sub; the embedded queue
//! under `oms up`). The channel is the event type, e.g. `order.validated`.

use std::cell::RefCell;

use oms_domain::EventEnvelope;

/// Where events go.
pub trait Bus {
    /// Publishes a payload to a channel.
    ///
    /// # Errors
    /// A message when the broker refuses or is unreachable.
    fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), String>;

    /// Publishes an event on the channel named by its type.
    ///
    /// # Errors
    /// As [`Bus::publish`].
    fn publish_event(&self, event: &EventEnvelope) -> Result<(), String> {
        let payload = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        self.publish(event.event_type().as_str(), &payload)
    }
}

/// The Spin Redis connection at the component's `redis_address` variable.
pub struct SpinBus {
    conn: spin_sdk::redis::Connection,
}

impl SpinBus {
    /// Connects to the address in the `redis_address` variable.
    ///
    /// # Errors
    /// A message when the variable is missing or the connection is refused.
    pub fn open() -> Result<SpinBus, String> {
        let address = spin_sdk::variables::get("redis_address")
            .map_err(|e| format!("variable redis_address: {e}"))?;
        let conn = spin_sdk::redis::Connection::open(&address)
            .map_err(|e| format!("redis {address}: {e}"))?;
        Ok(SpinBus { conn })
    }
}

impl Bus for SpinBus {
    fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), String> {
        self.conn
            .publish(channel, payload)
            .map_err(|e| format!("publish to {channel}: {e}"))
    }
}

/// Records publishes, for native tests.
#[derive(Default)]
pub struct MemBus {
    /// (channel, payload) in order.
    pub sent: RefCell<Vec<(String, Vec<u8>)>>,
}

impl Bus for MemBus {
    fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), String> {
        self.sent
            .borrow_mut()
            .push((channel.to_string(), payload.to_vec()));
        Ok(())
    }
}
