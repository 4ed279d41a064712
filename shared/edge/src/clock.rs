//! The current time and fresh ids, which the domain takes as inputs.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Now, from the host's wall clock.
pub fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}

/// A random (v4) UUID from the host's random source.
///
/// # Panics
/// When the host provides no randomness at all (a broken runtime).
pub fn new_id() -> Uuid {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the host provides randomness");
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}
