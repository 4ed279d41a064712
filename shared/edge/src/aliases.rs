//! Per-channel SKU aliases: which of our SKUs a marketplace's variant or product is, for
//! lines that arrive without a SKU (Shopify sends `sku: ""` for items nobody gave one).
//!
//! Staff manage them (admin component, `/v1/admin/channels/{channel}/aliases/...`); each is
//! one key of the `default` store, `alias:{channel}:{kind}:{external id}` →
//! `{"sku": "…", "updated_at": "…"}`. A line resolves by its variant first, then its product
//! ([`resolve`]). An order taken in with unresolved lines (on an `unmapped_item` hold) is
//! re-resolved by [`map_unmapped_lines`] once the aliases exist, before the hold is released.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use oms_domain::{ChannelId, ChannelItem, OrderRecord, Sku};
use serde::{Deserialize, Serialize};

use crate::kv::{Kv, KvError};
use crate::problem::{FunctionError, Problem};

/// What an alias maps: a channel's variant or product id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AliasKind {
    /// A variant id (one size/colour of a product): the precise mapping, tried first.
    Variant,
    /// A product id: for products with one SKU whatever the variant.
    Product,
}

impl AliasKind {
    /// The path and key spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Variant => "variant",
            Self::Product => "product",
        }
    }
}

impl fmt::Display for AliasKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AliasKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "variant" => Ok(Self::Variant),
            "product" => Ok(Self::Product),
            other => Err(format!(
                "{:?} is not an alias kind (variant, product)",
                other.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// The longest external id accepted (Shopify's are 64-bit numbers; other channels use
/// strings).
pub const MAX_EXTERNAL_ID: usize = 64;

/// Checks an external id: 1 to 64 characters of `[A-Za-z0-9._-]` (key-safe, no `:`).
///
/// # Errors
/// A message saying why.
pub fn check_external_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_EXTERNAL_ID {
        return Err(format!("must be 1 to {MAX_EXTERNAL_ID} characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "may only contain A-Z, a-z, 0-9, '.', '_' and '-' (found {c:?})"
        ));
    }
    Ok(())
}

/// The key of an alias: `alias:{channel}:{kind}:{id}`.
pub fn alias_key(channel: &ChannelId, kind: AliasKind, id: &str) -> String {
    format!("alias:{channel}:{kind}:{id}")
}

/// The stored value of an alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasDoc {
    /// Our SKU.
    pub sku: Sku,
    /// When staff last set it.
    pub updated_at: DateTime<Utc>,
}

/// One alias as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    /// Variant or product.
    pub kind: AliasKind,
    /// The channel's id.
    pub external_id: String,
    /// Our SKU.
    pub sku: Sku,
    /// When staff last set it.
    pub updated_at: DateTime<Utc>,
}

/// The SKU an alias maps to, if any.
///
/// # Errors
/// Storage errors.
pub fn lookup(
    kv: &impl Kv,
    channel: &ChannelId,
    kind: AliasKind,
    id: &str,
) -> Result<Option<Sku>, KvError> {
    if check_external_id(id).is_err() {
        return Ok(None);
    }
    Ok(kv
        .get_json::<AliasDoc>(&alias_key(channel, kind, id))?
        .map(|d| d.sku))
}

/// The SKU of a channel item: its variant's alias, else its product's.
///
/// # Errors
/// Storage errors.
pub fn resolve(
    kv: &impl Kv,
    channel: &ChannelId,
    item: &ChannelItem,
) -> Result<Option<Sku>, KvError> {
    for (kind, id) in [
        (AliasKind::Variant, &item.variant_id),
        (AliasKind::Product, &item.product_id),
    ] {
        if let Some(id) = id {
            if let Some(sku) = lookup(kv, channel, kind, id)? {
                return Ok(Some(sku));
            }
        }
    }
    Ok(None)
}

/// Sets an alias (replacing any).
///
/// # Errors
/// Storage errors.
pub fn put(
    kv: &impl Kv,
    channel: &ChannelId,
    kind: AliasKind,
    id: &str,
    sku: Sku,
    now: DateTime<Utc>,
) -> Result<Alias, KvError> {
    let doc = AliasDoc {
        sku,
        updated_at: now,
    };
    kv.set_json(&alias_key(channel, kind, id), &doc)?;
    Ok(Alias {
        kind,
        external_id: id.to_string(),
        sku: doc.sku,
        updated_at: now,
    })
}

/// Deletes an alias; whether it existed.
///
/// # Errors
/// Storage errors.
pub fn remove(
    kv: &impl Kv,
    channel: &ChannelId,
    kind: AliasKind,
    id: &str,
) -> Result<bool, KvError> {
    let key = alias_key(channel, kind, id);
    let existed = kv.get(&key)?.is_some();
    if existed {
        kv.delete(&key)?;
    }
    Ok(existed)
}

/// Every alias of a channel, by kind then id.
///
/// # Errors
/// Storage errors; a stored alias that does not decode.
pub fn list(kv: &impl Kv, channel: &ChannelId) -> Result<Vec<Alias>, KvError> {
    let prefix = format!("alias:{channel}:");
    let mut keys: Vec<String> = kv
        .keys()?
        .into_iter()
        .filter(|k| k.starts_with(&prefix))
        .collect();
    keys.sort();
    let values = kv.get_many(&keys)?;
    let mut out = Vec::new();
    for (key, raw) in keys.iter().zip(values) {
        let Some(raw) = raw else { continue };
        let Some((kind, id)) = key[prefix.len()..].split_once(':') else {
            continue;
        };
        let Ok(kind) = kind.parse::<AliasKind>() else {
            continue;
        };
        let doc: AliasDoc = serde_json::from_slice(&raw).map_err(|e| KvError::Corrupt {
            key: key.clone(),
            message: e.to_string(),
        })?;
        out.push(Alias {
            kind,
            external_id: id.to_string(),
            sku: doc.sku,
            updated_at: doc.updated_at,
        });
    }
    out.sort_by(|a, b| (a.kind, &a.external_id).cmp(&(b.kind, &b.external_id)));
    Ok(out)
}

/// What [`map_unmapped_lines`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Remapped {
    /// Lines mapped now: (line index, SKU).
    pub mapped: Vec<(usize, Sku)>,
    /// Lines still without an alias: (line index, the channel item).
    pub unmapped: Vec<(usize, ChannelItem)>,
}

impl Remapped {
    /// Whether every line of the order has its SKU now (the `unmapped_item` hold may go).
    pub fn complete(&self) -> bool {
        self.unmapped.is_empty()
    }

    /// A note for the hold release: `line 0 → SKU-1; line 2 → SKU-9`.
    pub fn note(&self) -> String {
        let mapped: Vec<String> = self
            .mapped
            .iter()
            .map(|(i, sku)| format!("line {i} → {sku}"))
            .collect();
        if mapped.is_empty() {
            "no line needed mapping".into()
        } else {
            format!("mapped {}", mapped.join("; "))
        }
    }

    /// The 409 problem for lines still unmapped, naming each (`/lines/{i}`) and its item.
    pub fn problem(&self) -> Problem {
        let detail = self
            .unmapped
            .iter()
            .map(|(i, item)| format!("line {i} ({})", item.describe()))
            .collect::<Vec<_>>()
            .join("; ");
        let (field, _) = self.unmapped.first().cloned().unwrap_or_default();
        Problem::field(
            409,
            "unmapped-item",
            "Items without a SKU",
            &format!("/lines/{field}"),
            "unmapped",
            format!("add a channel SKU alias first: {detail}"),
        )
    }
}

/// Re-resolves the order's unmapped lines against the channel's aliases and maps those that
/// resolve ([`OrderRecord::map_lines`]), inside a step's decision: the hold-release handler
/// calls it on the record it is about to release the `unmapped_item` hold of, and releases
/// the hold only when [`Remapped::complete`]. Lines the order has mapped already are left
/// alone; an order without unmapped lines is [`Remapped::complete`] with nothing mapped.
///
/// # Errors
/// Storage errors; 409 when the order is past `validated` (its lines can no longer change).
pub fn map_unmapped_lines(
    kv: &impl Kv,
    record: &mut OrderRecord,
) -> Result<Remapped, FunctionError> {
    let channel = record.order().channel().clone();
    let mut out = Remapped::default();
    for (i, line) in record.order().unmapped_lines() {
        let item = line.item().cloned().unwrap_or_default();
        match resolve(kv, &channel, &item)? {
            Some(sku) => out.mapped.push((i, sku)),
            None => out.unmapped.push((i, item)),
        }
    }
    if !out.mapped.is_empty() {
        record
            .map_lines(&out.mapped)
            .map_err(|e| Problem::conflict(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemKv;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap()
    }

    #[test]
    fn variants_win_over_products_and_channels_do_not_share() {
        let kv = MemKv::new();
        let shop = ChannelId::parse("shop").unwrap();
        let other = ChannelId::parse("other").unwrap();
        let sku = |s: &str| Sku::parse(s).unwrap();
        put(&kv, &shop, AliasKind::Product, "7", sku("HAT"), at()).unwrap();
        put(
            &kv,
            &shop,
            AliasKind::Variant,
            "9007199254740993",
            sku("HAT-L"),
            at(),
        )
        .unwrap();
        let item = |v: Option<&str>| ChannelItem {
            variant_id: v.map(Into::into),
            product_id: Some("7".into()),
            title: None,
        };
        assert_eq!(
            resolve(&kv, &shop, &item(Some("9007199254740993"))).unwrap(),
            Some(sku("HAT-L"))
        );
        assert_eq!(
            resolve(&kv, &shop, &item(Some("1"))).unwrap(),
            Some(sku("HAT"))
        );
        assert_eq!(resolve(&kv, &other, &item(None)).unwrap(), None);
        let listed = list(&kv, &shop).unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|a| (a.kind, a.external_id.as_str(), a.sku.as_str()))
                .collect::<Vec<_>>(),
            [
                (AliasKind::Variant, "9007199254740993", "HAT-L"),
                (AliasKind::Product, "7", "HAT")
            ]
        );
        assert!(remove(&kv, &shop, AliasKind::Product, "7").unwrap());
        assert!(!remove(&kv, &shop, AliasKind::Product, "7").unwrap());
        assert_eq!(resolve(&kv, &shop, &item(Some("1"))).unwrap(), None);
        assert!(check_external_id("a:b").is_err() && check_external_id("").is_err());
        assert_eq!(lookup(&kv, &shop, AliasKind::Variant, "a:b").unwrap(), None);
    }
}
