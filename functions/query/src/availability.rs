//! `GET /v1/availability/{sku}`: a SKU's stock at every location and in total, read from the
//! per-location stock documents in one batch.

use oms_domain::{Location, LocationId, LocationKind, Sku};
use oms_edge::{keys, FunctionError, Kv, Problem, StockDoc};
use serde::Serialize;

/// Stock of one SKU across the network (schema `Availability` in `openapi.json`).
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Availability {
    sku: String,
    #[serde(flatten)]
    total: Units,
    locations: Vec<AtLocation>,
}

/// Unit counts of a stock level.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
struct Units {
    on_hand: u64,
    reserved: u64,
    allocated: u64,
    available: u64,
}

/// Stock at one location.
#[derive(Debug, PartialEq, Serialize)]
struct AtLocation {
    location: LocationId,
    kind: LocationKind,
    #[serde(flatten)]
    units: Units,
    pickup: bool,
}

impl Availability {
    /// The SKU, as parsed.
    pub fn sku(&self) -> &str {
        &self.sku
    }
}

/// The availability of the SKU named `raw`; locations without a stock document are left out.
///
/// # Errors
/// 400 naming `sku` when it is not a SKU; a store error or an unreadable stock document.
pub fn of(kv: &impl Kv, raw: &str) -> Result<Availability, FunctionError> {
    let sku = Sku::parse(raw).map_err(|e| {
        Problem::field(
            400,
            "malformed",
            "Malformed request",
            "sku",
            "invalid_format",
            e.to_string(),
        )
    })?;
    let locations: Vec<Location> = kv.get_json(keys::LOCATIONS)?.unwrap_or_default();
    let stock_keys: Vec<String> = locations
        .iter()
        .map(|l| keys::stock(sku.as_str(), l.id().as_str()))
        .collect();
    let mut view = Availability {
        sku: sku.as_str().to_string(),
        ..Availability::default()
    };
    for (loc, raw) in locations.iter().zip(kv.get_many(&stock_keys)?) {
        let Some(bytes) = raw else { continue };
        let l = serde_json::from_slice::<StockDoc>(&bytes)?.level;
        let units = Units {
            on_hand: l.on_hand().into(),
            reserved: l.reserved().into(),
            allocated: l.allocated().into(),
            available: l.available().into(),
        };
        view.total.on_hand += units.on_hand;
        view.total.reserved += units.reserved;
        view.total.allocated += units.allocated;
        view.total.available += units.available;
        view.locations.push(AtLocation {
            location: loc.id().clone(),
            kind: loc.kind(),
            units,
            pickup: loc.pickup(),
        });
    }
    Ok(view)
}
