//! What a step finds when it runs: the store's contents and the clock, as part of its input
//! document, loaded into an [`oms_edge::MemEnv`] for the run; and the store after a run, as
//! the next step's input.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use oms_edge::{keys, Kv, MemEnv, OrderRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;

/// The store (key → JSON value) and the time of a step's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct World {
    /// The clock during the run.
    pub now: DateTime<Utc>,
    /// The `default` store's documents.
    #[serde(default)]
    pub store: BTreeMap<String, Value>,
}

impl World {
    /// A fresh in-memory environment holding this world.
    pub fn env(&self) -> Result<MemEnv, Error> {
        let env = MemEnv::new();
        env.set_now(self.now);
        for (key, value) in &self.store {
            env.kv.set_json(key, value)?;
        }
        Ok(env)
    }

    /// The world an environment was left in (its `default` store), at `now`.
    pub fn after(env: &MemEnv, now: DateTime<Utc>) -> Result<World, Error> {
        let mut store = BTreeMap::new();
        for key in env.kv.keys()? {
            if let Some(value) = env.kv.get_json::<Value>(&key)? {
                store.insert(key, value);
            }
        }
        Ok(World { now, store })
    }
}

/// The stored order `id`.
///
/// # Errors
/// [`Error::Step`] when it is not there.
pub(crate) fn order(env: &MemEnv, id: &str) -> Result<OrderRecord, Error> {
    env.kv
        .get_json(&keys::order(id))?
        .ok_or_else(|| Error::Step(format!("no order {id}")))
}

/// Every stock document in the store (`stock:{sku}:{location}` → document).
pub(crate) fn stock(env: &MemEnv) -> Result<BTreeMap<String, Value>, Error> {
    let mut docs = BTreeMap::new();
    for key in env
        .kv
        .keys()?
        .into_iter()
        .filter(|k| k.starts_with("stock:"))
    {
        if let Some(doc) = env.kv.get_json::<Value>(&key)? {
            docs.insert(key, doc);
        }
    }
    Ok(docs)
}
