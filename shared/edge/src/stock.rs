//! Stock documents in the store: a (SKU, location)'s [`StockDoc`] (the domain's per-order
//! stock ledger: counts plus a short journal of the latest per-order changes) under
//! `keys::stock`, each order's [`Commitment`] beside it once it leaves the journal
//! ([`commitment_key`]), changed one order at a time by one compare-and-swap of the document
//! ([`update_commitment`]; the argument why that keeps every guarantee is in
//! `oms_domain::StockDoc`'s module), and a SKU's backorder promises ([`BackorderDoc`]).

use std::collections::BTreeMap;

use oms_domain::{BackorderPolicy, StockError};
pub use oms_domain::{Commitment, StockDoc};
use serde::{Deserialize, Serialize};

use crate::kv::{update_json, Change, Kv, KvError};
use crate::problem::FunctionError;
use crate::record::keys;

/// How many orders a stock document journals at most: the document stays this small
/// (a few hundred bytes) whatever the number of open orders.
pub const JOURNAL_KEEP: usize = 8;

/// Most compare-and-swap rounds of [`update_commitment`] before giving up with contention.
const MAX_ROUNDS: usize = 500;

/// Where `order`'s commitment at (SKU, location) is stored once it leaves the document's
/// journal: `stock-commit:{sku}:{location}:{order}`.
pub fn commitment_key(sku: &str, location: &str, order: &str) -> String {
    format!("stock-commit:{sku}:{location}:{order}")
}

/// Changes `order`'s commitment at one (SKU, location) by compare-and-swap: `f` sees the
/// document as the order sees it ([`StockDoc::view`]: the counts and that order's holds and
/// allocations only; a missing document is empty stock) and may run several times, so it must
/// not have side effects. Entries the change pushes out of the journal are stored beside the
/// document first (never over a newer one).
///
/// # Errors
/// `f`'s error; storage errors; contention after many rounds.
pub fn update_commitment<K: Kv, R>(
    kv: &K,
    sku: &str,
    location: &str,
    order: &str,
    mut f: impl FnMut(&StockDoc) -> Result<Change<StockDoc, R>, FunctionError>,
) -> Result<R, FunctionError> {
    let key = keys::stock(sku, location);
    for _ in 0..MAX_ROUNDS {
        // The document first, the record beside it second (see the domain's argument).
        let (raw, cas) = kv.read(&key)?;
        let doc: StockDoc = match raw {
            Some(bytes) => serde_json::from_slice(&bytes)?,
            None => StockDoc::default(),
        };
        let stored = if doc.journaled(order) {
            None
        } else {
            kv.get_json::<Commitment>(&commitment_key(sku, location, order))?
        };
        let view = doc.view(order, stored);
        let (next, r) = match f(&view)? {
            Change::Keep(r) => return Ok(r),
            Change::Write(next, r) if next == view => return Ok(r),
            Change::Write(next, r) => (next, r),
        };
        let (doc_next, evicted) = doc.absorb(order, &next, JOURNAL_KEEP);
        for (who, commitment) in &evicted {
            store_commitment(kv, sku, location, who, *commitment)?;
        }
        let bytes = serde_json::to_vec(&doc_next).map_err(|e| KvError::Encode(e.to_string()))?;
        if kv.swap(cas, &bytes)? {
            crate::purge::wrote(&key);
            return Ok(r);
        }
    }
    Err(KvError::Contention(key).into())
}

/// Stores an evicted commitment beside the document unless a newer one is there already.
fn store_commitment<K: Kv>(
    kv: &K,
    sku: &str,
    location: &str,
    order: &str,
    commitment: Commitment,
) -> Result<(), FunctionError> {
    update_json(
        kv,
        &commitment_key(sku, location, order),
        |cur: Option<Commitment>| {
            Ok::<_, FunctionError>(match cur {
                Some(c) if c.seq >= commitment.seq => Change::Keep(()),
                _ => Change::Write(commitment, ()),
            })
        },
    )
}

/// `order`'s commitment at each (SKU, location) as `(document, the order's view)`, in two
/// batch reads (the documents first, then the records beside them where the document does
/// not journal the order); `None` where there is no document.
///
/// # Errors
/// Storage errors or an unreadable document.
pub fn views<K: Kv>(
    kv: &K,
    order: &str,
    pairs: &[(String, String)],
) -> Result<Vec<Option<StockDoc>>, FunctionError> {
    let docs = kv.get_many(
        &pairs
            .iter()
            .map(|(s, l)| keys::stock(s, l))
            .collect::<Vec<_>>(),
    )?;
    let docs: Vec<Option<StockDoc>> = docs
        .into_iter()
        .map(|raw| raw.map(|b| serde_json::from_slice(&b)).transpose())
        .collect::<Result<_, _>>()?;
    let beside: Vec<(usize, String)> = docs
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match d {
            Some(d) if !d.journaled(order) => {
                Some((i, commitment_key(&pairs[i].0, &pairs[i].1, order)))
            }
            _ => None,
        })
        .collect();
    let mut stored: BTreeMap<usize, Commitment> = BTreeMap::new();
    if !beside.is_empty() {
        let keys: Vec<String> = beside.iter().map(|(_, k)| k.clone()).collect();
        for ((i, _), raw) in beside.iter().zip(kv.get_many(&keys)?) {
            if let Some(raw) = raw {
                stored.insert(*i, serde_json::from_slice(&raw)?);
            }
        }
    }
    Ok(docs
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.map(|d| d.view(order, stored.get(&i).copied())))
        .collect())
}

/// Applies a per-order stock operation to `order`'s view of one (SKU, location)
/// ([`update_commitment`]), writing only when it changes something; the view after.
///
/// # Errors
/// Storage errors; a [`StockError`] (an operation that does not fit the stock) as an internal
/// error — callers use this for operations that are valid by construction (releases,
/// deallocations, shipping an existing allocation).
pub fn update_order_stock<K: Kv>(
    kv: &K,
    sku: &str,
    location: &str,
    order: &str,
    op: impl Fn(&StockDoc) -> Result<StockDoc, StockError>,
) -> Result<StockDoc, FunctionError> {
    update_commitment(kv, sku, location, order, |view| {
        let next = op(view)
            .map_err(|e| FunctionError::Internal(format!("stock {sku}@{location}: {e}")))?;
        Ok(Change::Write(next.clone(), next))
    })
}

/// Applies an operation on the counts alone (a restock receipt, a count; never a per-order
/// operation: use [`update_order_stock`]) to the whole document by compare-and-swap, writing only when it changes something; the document after.
///
/// # Errors
/// Storage errors; a [`StockError`] as an internal error.
pub fn update_stock<K: Kv>(
    kv: &K,
    sku: &str,
    location: &str,
    op: impl Fn(&StockDoc) -> Result<StockDoc, StockError>,
) -> Result<StockDoc, FunctionError> {
    update_json(kv, &keys::stock(sku, location), |cur: Option<StockDoc>| {
        let doc = cur.unwrap_or_default();
        let next = op(&doc)
            .map_err(|e| FunctionError::Internal(format!("stock {sku}@{location}: {e}")))?;
        if next == doc {
            Ok(Change::Keep(next))
        } else {
            Ok(Change::Write(next.clone(), next))
        }
    })
}

/// The units of one SKU promised beyond stock (backorders), per order
/// (`backorder-promises:{sku}`): the SKU's backorder limit ([`BackorderPolicy::UpTo`]) is
/// checked against and counted in this one document, so a promise is one compare-and-swap —
/// concurrent orders cannot exceed the limit, and a redelivery finds its own promise instead
/// of counting twice. A promise is given back when the order ends up reserved in full,
/// rejected or cancelled ([`BackorderDoc::release`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BackorderDoc {
    /// Units promised per order id.
    #[serde(default)]
    pub promised: BTreeMap<String, u32>,
}

impl BackorderDoc {
    /// The key of a SKU's promises.
    pub fn key(sku: &str) -> String {
        format!("backorder-promises:{sku}")
    }

    /// Units promised to all orders.
    pub fn outstanding(&self) -> u32 {
        self.promised
            .values()
            .fold(0u32, |sum, n| sum.saturating_add(*n))
    }

    /// Units promised to `order`.
    pub fn promised_to(&self, order: &str) -> u32 {
        self.promised.get(order).copied().unwrap_or(0)
    }

    /// Promises `order` exactly `units` under `policy`: the document after, or `None` when
    /// the limit does not allow it (counting every other order's promise). Idempotent: an
    /// order already promised `units` gets the document unchanged.
    pub fn promise(
        &self,
        order: &str,
        units: u32,
        policy: BackorderPolicy,
    ) -> Option<BackorderDoc> {
        if self.promised_to(order) == units {
            return Some(self.clone());
        }
        let others = self.outstanding() - self.promised_to(order);
        if !policy.allows(others, units) {
            return None;
        }
        let mut next = self.clone();
        if units == 0 {
            next.promised.remove(order);
        } else {
            next.promised.insert(order.to_string(), units);
        }
        Some(next)
    }

    /// Gives back what was promised to `order` (no-op when nothing was).
    pub fn release(&self, order: &str) -> BackorderDoc {
        let mut next = self.clone();
        next.promised.remove(order);
        next
    }
}

/// Applies `op` to a SKU's [`BackorderDoc`] by compare-and-swap, writing only when it changes
/// something; `op`'s verdict (`None`: refused, nothing written).
///
/// # Errors
/// Storage errors.
pub fn update_backorders<K: Kv>(
    kv: &K,
    sku: &str,
    op: impl Fn(&BackorderDoc) -> Option<BackorderDoc>,
) -> Result<Option<BackorderDoc>, FunctionError> {
    update_json(kv, &BackorderDoc::key(sku), |cur: Option<BackorderDoc>| {
        let doc = cur.unwrap_or_default();
        match op(&doc) {
            Some(next) if next != doc => {
                Ok::<_, FunctionError>(Change::Write(next.clone(), Some(next)))
            }
            verdict => Ok(Change::Keep(verdict)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backorder_promises_count_once_per_order_within_the_limit() {
        let limit = BackorderPolicy::UpTo(3);
        let d = BackorderDoc::default().promise("o1", 2, limit).unwrap();
        assert_eq!(
            d.promise("o1", 2, limit).unwrap(),
            d,
            "a redelivery counts once"
        );
        assert!(d.promise("o2", 2, limit).is_none(), "only one unit is left");
        let d = d.promise("o2", 1, limit).unwrap();
        assert_eq!(d.outstanding(), 3);
        let d = d.release("o1");
        assert_eq!((d.outstanding(), d.release("o1")), (1, d.clone()));
        assert!(d.promise("o3", 1, BackorderPolicy::Never).is_none());
        assert!(d.promise("o3", 9, BackorderPolicy::Unlimited).is_some());
    }
}
