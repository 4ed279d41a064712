//! Typed key-value access with compare-and-swap, over Spin's `wasi:keyvalue` or in memory.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The store refused or failed the operation (unreachable, I/O error): worth a retry.
    #[error("key-value store: {0}")]
    Store(String),
    /// A value could not be encoded for storage (a bug, not an outage).
    #[error("cannot encode a value for the store: {0}")]
    Encode(String),
    /// A stored value is not the JSON its reader expects (corruption or a schema mismatch).
    #[error("stored value under {key:?} is unreadable: {message}")]
    Corrupt {
        /// The key.
        key: String,
        /// The decode error.
        message: String,
    },
    /// Compare-and-swap kept losing to concurrent writers.
    #[error("too much contention on {0:?}; retry")]
    Contention(String),
}

/// The storage operations the components need.
pub trait Kv {
    /// A compare-and-swap handle: the value as read, and what a swap checks against.
    type Cas;
    /// Reads a value.
    ///
    /// # Errors
    /// [`KvError::Store`].
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Writes a value unconditionally.
    ///
    /// # Errors
    /// [`KvError::Store`].
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    /// Deletes a key.
    ///
    /// # Errors
    /// [`KvError::Store`].
    fn delete(&self, key: &str) -> Result<(), KvError>;
    /// Reads several values at once.
    ///
    /// # Errors
    /// [`KvError::Store`].
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError>;
    /// Reads a value for a later [`Kv::swap`].
    ///
    /// # Errors
    /// [`KvError::Store`].
    fn read(&self, key: &str) -> Result<(Option<Vec<u8>>, Self::Cas), KvError>;
    /// Writes `value` only if nobody wrote the key since `cas` was read; `false` on conflict.
    ///
    /// # Errors
    /// [`KvError::Store`].
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<bool, KvError>;
    /// Every key in the store (for small, dedicated stores such as the owed-work index).
    ///
    /// # Errors
    /// [`KvError::Store`].
    fn keys(&self) -> Result<Vec<String>, KvError>;

    /// Reads and decodes JSON.
    ///
    /// # Errors
    /// [`KvError::Store`] or [`KvError::Corrupt`].
    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, KvError> {
        self.get(key)?.map(|b| decode(key, &b)).transpose()
    }

    /// Reads and decodes JSON under each of `keys` in one batch read, in order.
    ///
    /// # Errors
    /// [`KvError::Store`] or [`KvError::Corrupt`] (naming the key).
    fn get_many_json<T: DeserializeOwned>(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<T>>, KvError> {
        keys.iter()
            .zip(self.get_many(keys)?)
            .map(|(key, value)| value.map(|b| decode(key, &b)).transpose())
            .collect()
    }

    /// Encodes and writes JSON.
    ///
    /// # Errors
    /// [`KvError::Store`].
    fn set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), KvError> {
        self.set(key, &encode(value)?)
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, KvError> {
    serde_json::from_slice(bytes).map_err(|e| KvError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, KvError> {
    serde_json::to_vec(value).map_err(|e| KvError::Encode(e.to_string()))
}

/// What an [`update_json`] step decided.
pub enum Change<T, R> {
    /// Write this value, then return `R`.
    Write(T, R),
    /// Leave the value as it is and return `R`.
    Keep(R),
}

/// Most compare-and-swap rounds before giving up with [`KvError::Contention`].
const MAX_ROUNDS: usize = 500;

/// Read-modify-write of one JSON value with compare-and-swap, retried on conflict: `f` sees
/// the current value and may run several times, so it must not have side effects. A write
/// touches the purge tags of `key` ([`crate::purge::wrote`]).
///
/// # Errors
/// `f`'s error, or a [`KvError`] (converted into `E`).
pub fn update_json<K, T, R, E>(
    kv: &K,
    key: &str,
    mut f: impl FnMut(Option<T>) -> Result<Change<T, R>, E>,
) -> Result<R, E>
where
    K: Kv,
    T: Serialize + DeserializeOwned,
    E: From<KvError>,
{
    for _ in 0..MAX_ROUNDS {
        let (current, cas) = kv.read(key)?;
        let current = current.map(|b| decode(key, &b)).transpose()?;
        match f(current)? {
            Change::Keep(r) => return Ok(r),
            Change::Write(value, r) => {
                if kv.swap(cas, &encode(&value)?)? {
                    crate::purge::wrote(key);
                    return Ok(r);
                }
            }
        }
    }
    Err(KvError::Contention(key.to_string()).into())
}

/// The Spin store (`wasi:keyvalue`), opened by label.
pub struct SpinKv {
    bucket: store::Bucket,
}

impl SpinKv {
    /// Opens a store the manifest grants (`key_value_stores`).
    ///
    /// # Errors
    /// [`KvError::Store`] when the store is not granted or missing.
    pub fn open(label: &str) -> Result<SpinKv, KvError> {
        Ok(SpinKv {
            bucket: store::open(label).map_err(store_err)?,
        })
    }

    /// The app's `default` store.
    ///
    /// # Errors
    /// As [`SpinKv::open`].
    pub fn open_default() -> Result<SpinKv, KvError> {
        Self::open("default")
    }
}

fn store_err(e: store::Error) -> KvError {
    KvError::Store(format!("{e:?}"))
}

impl Kv for SpinKv {
    type Cas = atomics::Cas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.bucket.get(key).map_err(store_err)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.bucket.set(key, value).map_err(store_err)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.bucket.delete(key).map_err(store_err)
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let got = batch::get_many(&self.bucket, keys).map_err(store_err)?;
        let mut by_key: HashMap<String, Option<Vec<u8>>> = got.into_iter().collect();
        Ok(keys.iter().map(|k| by_key.remove(k).flatten()).collect())
    }

    fn read(&self, key: &str) -> Result<(Option<Vec<u8>>, atomics::Cas), KvError> {
        let cas = atomics::Cas::new(&self.bucket, key).map_err(store_err)?;
        let current = cas.current().map_err(store_err)?;
        Ok((current, cas))
    }

    fn swap(&self, cas: atomics::Cas, value: &[u8]) -> Result<bool, KvError> {
        match atomics::swap(cas, value) {
            Ok(()) => Ok(true),
            Err(atomics::CasError::CasFailed(_)) => Ok(false),
            Err(atomics::CasError::StoreError(e)) => Err(store_err(e)),
        }
    }

    fn keys(&self) -> Result<Vec<String>, KvError> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .bucket
                .list_keys(cursor.as_deref())
                .map_err(store_err)?;
            keys.extend(page.keys);
            match page.cursor {
                Some(c) if !c.is_empty() => cursor = Some(c),
                _ => return Ok(keys),
            }
        }
    }
}

/// An in-memory store for native unit tests, with versioned compare-and-swap.
#[derive(Default)]
pub struct MemKv {
    data: RefCell<HashMap<String, (Vec<u8>, u64)>>,
}

impl MemKv {
    /// An empty store.
    pub fn new() -> MemKv {
        MemKv::default()
    }
}

impl Kv for MemKv {
    type Cas = (String, Option<u64>);

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.data.borrow().get(key).map(|(v, _)| v.clone()))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let mut data = self.data.borrow_mut();
        let version = data.get(key).map_or(1, |(_, v)| v + 1);
        data.insert(key.to_string(), (value.to_vec(), version));
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.data.borrow_mut().remove(key);
        Ok(())
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    fn read(&self, key: &str) -> Result<(Option<Vec<u8>>, Self::Cas), KvError> {
        let data = self.data.borrow();
        let entry = data.get(key);
        Ok((
            entry.map(|(v, _)| v.clone()),
            (key.to_string(), entry.map(|(_, ver)| *ver)),
        ))
    }

    fn swap(&self, (key, expected): Self::Cas, value: &[u8]) -> Result<bool, KvError> {
        let current = self.data.borrow().get(&key).map(|(_, v)| *v);
        if current != expected {
            return Ok(false);
        }
        self.set(&key, value)?;
        Ok(true)
    }

    fn keys(&self) -> Result<Vec<String>, KvError> {
        let mut keys: Vec<String> = self.data.borrow().keys().cloned().collect();
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_retries_on_conflict_and_keeps_without_writing() {
        let kv = MemKv::new();
        let mut interfered = false;
        let n: u32 = update_json(&kv, "n", |cur: Option<u32>| {
            if !interfered {
                interfered = true;
                kv.set("n", b"10").unwrap();
            }
            Ok::<_, KvError>(Change::Write(cur.unwrap_or(0) + 1, cur.unwrap_or(0) + 1))
        })
        .unwrap();
        assert_eq!(
            n, 11,
            "the write that lost the race was redone on the new value"
        );
        let kept: u32 = update_json(&kv, "n", |cur: Option<u32>| {
            Ok::<_, KvError>(Change::Keep(cur.unwrap()))
        })
        .unwrap();
        assert_eq!(kept, 11);
    }
}
