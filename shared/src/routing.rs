//! Fulfilment routing: which locations ship which units of an order.
//!
//! The plan is chosen by, in order: fewest shipments (a single location whenever one can
//! serve the whole order), lowest cost, then location priority and id. Cost of a shipment is
//! `cost_per_shipment + cost_per_unit × units + distance_km × cost_per_km`, with the haversine
//! distance from the location to the destination. Everything is deterministic: the same
//! inputs, in any order, give the same plan.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::coordinates::Coordinates;
use crate::ids::{LocationId, Sku};
use crate::order::Order;
use crate::stock::{Inventory, Shortfall};

/// Above this many candidate locations the search no longer tries every combination: it
/// still finds the best single location among all of them, but multi-location plans are
/// searched among the 16 locations that can cover the most units (then priority, id). 2^16
/// subsets keep a plan well under a millisecond for typical orders.
pub const EXHAUSTIVE_SEARCH_LIMIT: usize = 16;

/// The most shipments a policy may allow; bounds the search.
const MAX_SPLIT_LIMIT: usize = 10;

/// Why no plan could be made — each variant says what the caller can tell the customer or
/// operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// The request has no units.
    #[error("nothing to route: the request has no units")]
    NothingToRoute,
    /// Two locations share an id.
    #[error("location {0} is listed twice")]
    DuplicateLocation(LocationId),
    /// A location or policy cost is negative or not a decimal.
    #[error("invalid cost: {0}")]
    InvalidCost(String),
    /// The split limit is 0 or above 10.
    #[error("split limit must be between 1 and {MAX_SPLIT_LIMIT} (got {0})")]
    InvalidSplitLimit(usize),
    /// The pickup location is not a known location.
    #[error("pickup location {0} is not a known location")]
    UnknownPickupLocation(LocationId),
    /// The pickup location does not offer click-and-collect.
    #[error("location {0} does not offer pickup")]
    PickupNotOffered(LocationId),
    /// The pickup store lacks stock; pickup orders are only served from their store.
    #[error("pickup location {location} lacks stock: {}", describe(.shortfalls))]
    PickupShortfall {
        /// The store.
        location: LocationId,
        /// What it lacks.
        shortfalls: Vec<Shortfall>,
    },
    /// The shipping network as a whole lacks stock.
    #[error("not enough stock across shipping locations: {}", describe(.shortfalls))]
    InsufficientStock {
        /// What is missing.
        shortfalls: Vec<Shortfall>,
    },
    /// Stock exists but only spread over more locations than the split limit allows.
    #[error("order needs {} shipments but at most {limit} are allowed", .required.map_or_else(|| "more".to_owned(), |r| r.to_string()))]
    SplitLimitExceeded {
        /// The policy's limit.
        limit: usize,
        /// The fewest shipments that would work, when known.
        required: Option<usize>,
    },
}

fn describe(shortfalls: &[Shortfall]) -> String {
    shortfalls
        .iter()
        .map(|s| format!("{} needs {}, {} available", s.sku, s.requested, s.available))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What sort of place a location is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LocationKind {
    /// A distribution centre.
    #[serde(rename = "warehouse")]
    Warehouse,
    /// A retail store (ship-from-store and click-and-collect).
    #[serde(rename = "store")]
    Store,
    /// A third-party logistics provider.
    #[serde(rename = "3pl")]
    ThirdPartyLogistics,
    /// A supplier shipping directly to the customer.
    #[serde(rename = "dropship")]
    Dropship,
}

/// A fulfilment location and what using it costs.
///
/// JSON: `{"id", "kind", "coordinates": {"lat", "lon"}, "cost_per_shipment": "4.00",
/// "cost_per_unit": "0.25", "ships": true, "pickup": false, "priority": 0}`; costs are decimal
/// strings in any consistent unit, `priority` breaks ties (lower first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LocationRepr", into = "LocationRepr")]
pub struct Location {
    id: LocationId,
    kind: LocationKind,
    coordinates: Coordinates,
    cost_per_shipment: Decimal,
    cost_per_unit: Decimal,
    ships: bool,
    pickup: bool,
    priority: u32,
}

impl Location {
    /// A location with zero costs and priority 0. Every kind ships; only stores offer pickup.
    pub fn new(id: LocationId, kind: LocationKind, coordinates: Coordinates) -> Self {
        Self {
            id,
            kind,
            coordinates,
            cost_per_shipment: Decimal::ZERO,
            cost_per_unit: Decimal::ZERO,
            ships: true,
            pickup: kind == LocationKind::Store,
            priority: 0,
        }
    }

    /// Sets the costs.
    ///
    /// # Errors
    /// [`RoutingError::InvalidCost`] when either is negative.
    pub fn with_costs(
        self,
        per_shipment: Decimal,
        per_unit: Decimal,
    ) -> Result<Self, RoutingError> {
        if per_shipment < Decimal::ZERO || per_unit < Decimal::ZERO {
            return Err(RoutingError::InvalidCost(format!(
                "location {} has a negative cost",
                self.id
            )));
        }
        Ok(Self {
            cost_per_shipment: per_shipment,
            cost_per_unit: per_unit,
            ..self
        })
    }

    /// Sets whether it ships to customers and whether customers can collect there.
    pub fn with_capabilities(self, ships: bool, pickup: bool) -> Self {
        Self {
            ships,
            pickup,
            ..self
        }
    }

    /// Sets the tie-break priority (lower is preferred).
    pub fn with_priority(self, priority: u32) -> Self {
        Self { priority, ..self }
    }

    /// The id.
    pub const fn id(&self) -> &LocationId {
        &self.id
    }

    /// The kind.
    pub const fn kind(&self) -> LocationKind {
        self.kind
    }

    /// Where it is.
    pub const fn coordinates(&self) -> Coordinates {
        self.coordinates
    }

    /// Fixed cost of one shipment.
    pub const fn cost_per_shipment(&self) -> Decimal {
        self.cost_per_shipment
    }

    /// Cost per unit picked.
    pub const fn cost_per_unit(&self) -> Decimal {
        self.cost_per_unit
    }

    /// Whether it ships to customers.
    pub const fn ships(&self) -> bool {
        self.ships
    }

    /// Whether customers can collect there.
    pub const fn pickup(&self) -> bool {
        self.pickup
    }

    /// Tie-break priority (lower first).
    pub const fn priority(&self) -> u32 {
        self.priority
    }

    fn rank(&self) -> (u32, &LocationId) {
        (self.priority, &self.id)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct LocationRepr {
    id: LocationId,
    kind: LocationKind,
    coordinates: Coordinates,
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[0-9]{1,15}(\.[0-9]{1,12})?$")
    )]
    #[serde(default = "zero_text")]
    cost_per_shipment: String,
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[0-9]{1,15}(\.[0-9]{1,12})?$")
    )]
    #[serde(default = "zero_text")]
    cost_per_unit: String,
    #[serde(default = "yes")]
    ships: bool,
    #[serde(default)]
    pickup: bool,
    #[serde(default)]
    priority: u32,
}

#[cfg(feature = "openapi")]
crate::openapi::schema_via!(Location, "Location", LocationRepr);

fn zero_text() -> String {
    "0".to_owned()
}

const fn yes() -> bool {
    true
}

fn parse_cost(text: &str, what: &str) -> Result<Decimal, RoutingError> {
    let d = Decimal::from_str_exact(text)
        .map_err(|_| RoutingError::InvalidCost(format!("{what} {text:?} is not a decimal")))?;
    if d < Decimal::ZERO {
        return Err(RoutingError::InvalidCost(format!("{what} is negative")));
    }
    Ok(d)
}

impl TryFrom<LocationRepr> for Location {
    type Error = RoutingError;
    fn try_from(r: LocationRepr) -> Result<Self, RoutingError> {
        let per_shipment = parse_cost(&r.cost_per_shipment, "cost_per_shipment")?;
        let per_unit = parse_cost(&r.cost_per_unit, "cost_per_unit")?;
        Ok(Location::new(r.id, r.kind, r.coordinates)
            .with_costs(per_shipment, per_unit)?
            .with_capabilities(r.ships, r.pickup)
            .with_priority(r.priority))
    }
}

impl From<Location> for LocationRepr {
    fn from(l: Location) -> Self {
        LocationRepr {
            id: l.id,
            kind: l.kind,
            coordinates: l.coordinates,
            cost_per_shipment: l.cost_per_shipment.to_string(),
            cost_per_unit: l.cost_per_unit.to_string(),
            ships: l.ships,
            pickup: l.pickup,
            priority: l.priority,
        }
    }
}

/// How plans are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingPolicy {
    split_limit: usize,
    cost_per_km: Decimal,
}

impl RoutingPolicy {
    /// At most `split_limit` shipments per order (1..=10); `cost_per_km` weighs distance
    /// against the locations' own costs.
    ///
    /// # Errors
    /// [`RoutingError::InvalidSplitLimit`] or [`RoutingError::InvalidCost`].
    pub fn new(split_limit: usize, cost_per_km: Decimal) -> Result<Self, RoutingError> {
        if !(1..=MAX_SPLIT_LIMIT).contains(&split_limit) {
            return Err(RoutingError::InvalidSplitLimit(split_limit));
        }
        if cost_per_km < Decimal::ZERO {
            return Err(RoutingError::InvalidCost(
                "cost_per_km is negative".to_owned(),
            ));
        }
        Ok(Self {
            split_limit,
            cost_per_km,
        })
    }

    /// The most shipments allowed.
    pub const fn split_limit(&self) -> usize {
        self.split_limit
    }

    /// Cost per kilometre of distance.
    pub const fn cost_per_km(&self) -> Decimal {
        self.cost_per_km
    }
}

/// What to route: units per SKU and where they go.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingRequest {
    /// Units needed per SKU.
    pub units: BTreeMap<Sku, u32>,
    /// Delivery point, if geocoded (distance costs are zero without one).
    pub destination: Option<Coordinates>,
    /// For click-and-collect: the only store allowed to serve the order.
    pub pickup: Option<LocationId>,
}

impl RoutingRequest {
    /// The request for an order: its units, its address's coordinates, its pickup store.
    pub fn for_order(order: &Order) -> Self {
        Self {
            units: order.units_by_sku(),
            destination: order.destination(),
            pickup: order.shipping().pickup_location().cloned(),
        }
    }
}

/// Units of one SKU in a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShipmentLine {
    /// The SKU.
    pub sku: Sku,
    /// Units (at least 1).
    pub units: u32,
}

/// One parcel from one location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Shipment {
    /// Where it ships from.
    pub location: LocationId,
    /// What kind of location that is.
    pub kind: LocationKind,
    /// What it contains, by SKU.
    pub lines: Vec<ShipmentLine>,
    /// Distance to the destination in km (3 decimals, a JSON string), when both points are
    /// known.
    pub distance_km: Option<Decimal>,
    /// This shipment's cost.
    pub cost: Decimal,
}

/// The chosen way to fulfil an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FulfilmentPlan {
    /// Shipments in location priority order.
    pub shipments: Vec<Shipment>,
    /// Sum of the shipments' costs.
    pub total_cost: Decimal,
}

impl FulfilmentPlan {
    /// Units per (SKU, location) the plan takes.
    pub fn units_at(&self) -> BTreeMap<(Sku, LocationId), u32> {
        let mut out = BTreeMap::new();
        for s in &self.shipments {
            for l in &s.lines {
                *out.entry((l.sku.clone(), s.location.clone())).or_insert(0) += l.units;
            }
        }
        out
    }
}

/// Distance rounded to metres, so plans do not hinge on the last bits of a float (which may
/// differ between native and Wasm math libraries).
fn distance_km(from: Coordinates, to: Option<Coordinates>) -> Option<Decimal> {
    let km = from.distance_km(&to?);
    Decimal::from_f64_retain(km).map(|d| d.round_dp(3))
}

struct Candidate<'a> {
    location: &'a Location,
    /// Available units per requested SKU, in `skus` order.
    available: Vec<u32>,
    distance: Option<Decimal>,
}

fn candidate<'a>(
    location: &'a Location,
    skus: &[&Sku],
    inventory: &Inventory,
    destination: Option<Coordinates>,
) -> Candidate<'a> {
    Candidate {
        location,
        available: skus
            .iter()
            .map(|s| inventory.available(s, &location.id))
            .collect(),
        distance: distance_km(location.coordinates, destination),
    }
}

/// Builds the cheapest allocation over a set of candidates that can cover `needs`, or `None`.
fn allocate(
    skus: &[&Sku],
    needs: &[u32],
    set: &[&Candidate<'_>],
    policy: &RoutingPolicy,
) -> Option<FulfilmentPlan> {
    for (i, &need) in needs.iter().enumerate() {
        let supply: u64 = set.iter().map(|c| u64::from(c.available[i])).sum();
        if supply < u64::from(need) {
            return None;
        }
    }
    let mut lines: Vec<Vec<ShipmentLine>> = vec![Vec::new(); set.len()];
    for (i, &need) in needs.iter().enumerate() {
        // Cheapest units first; ties by priority and id keep the result deterministic.
        let mut order: Vec<usize> = (0..set.len()).collect();
        order.sort_by(|&a, &b| {
            let (la, lb) = (set[a].location, set[b].location);
            la.cost_per_unit
                .cmp(&lb.cost_per_unit)
                .then_with(|| la.rank().cmp(&lb.rank()))
        });
        let mut remaining = need;
        for j in order {
            let take = remaining.min(set[j].available[i]);
            if take > 0 {
                lines[j].push(ShipmentLine {
                    sku: skus[i].clone(),
                    units: take,
                });
                remaining -= take;
            }
        }
    }
    let mut shipments = Vec::new();
    let mut total_cost = Decimal::ZERO;
    for (c, lines) in set.iter().zip(lines) {
        if lines.is_empty() {
            continue;
        }
        let units: u64 = lines.iter().map(|l| u64::from(l.units)).sum();
        let loc = c.location;
        let cost = loc.cost_per_shipment
            + loc.cost_per_unit * Decimal::from(units)
            + c.distance.unwrap_or_default() * policy.cost_per_km;
        total_cost += cost;
        shipments.push(Shipment {
            location: loc.id.clone(),
            kind: loc.kind,
            lines,
            distance_km: c.distance,
            cost,
        });
    }
    Some(FulfilmentPlan {
        shipments,
        total_cost,
    })
}

/// Calls `visit` with every `k`-subset of `0..n` in lexicographic order.
fn for_each_combination(n: usize, k: usize, visit: &mut impl FnMut(&[usize])) {
    if k > n {
        return;
    }
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        visit(&idx);
        let Some(i) = (0..k).rev().find(|&i| idx[i] != i + n - k) else {
            return;
        };
        idx[i] += 1;
        for j in i + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// The best plan using exactly `k` of `candidates`, if any subset of that size covers the
/// order. Strictly lower cost wins; on equal cost the first subset in (priority, id) order.
fn best_of_size(
    skus: &[&Sku],
    needs: &[u32],
    candidates: &[Candidate<'_>],
    k: usize,
    policy: &RoutingPolicy,
) -> Option<FulfilmentPlan> {
    let mut best: Option<FulfilmentPlan> = None;
    for_each_combination(candidates.len(), k, &mut |idx| {
        let set: Vec<&Candidate<'_>> = idx.iter().map(|&i| &candidates[i]).collect();
        if let Some(plan) = allocate(skus, needs, &set, policy) {
            if best.as_ref().is_none_or(|b| plan.total_cost < b.total_cost) {
                best = Some(plan);
            }
        }
    });
    best
}

/// Plans the fulfilment of `request` from `locations` using the available-to-promise units
/// in `inventory`.
///
/// Pickup orders are served only by their store, in one shipment. Delivered orders use
/// shipping locations: the fewest shipments that cover every unit (up to the policy's split
/// limit), then the lowest cost, then the lowest (priority, id) locations. The plan never
/// takes more units of a SKU at a location than are available there. To route an order whose
/// own units are already reserved, release its reservation on a copy of the inventory first.
///
/// # Errors
/// [`RoutingError`] explaining why no plan exists: nothing to route, duplicate locations,
/// unknown or unsuitable pickup store, per-SKU shortfalls, or a split limit too small.
pub fn plan(
    request: &RoutingRequest,
    locations: &[Location],
    inventory: &Inventory,
    policy: &RoutingPolicy,
) -> Result<FulfilmentPlan, RoutingError> {
    let wanted: Vec<(&Sku, u32)> = request
        .units
        .iter()
        .filter(|(_, &u)| u > 0)
        .map(|(s, &u)| (s, u))
        .collect();
    if wanted.is_empty() {
        return Err(RoutingError::NothingToRoute);
    }
    let mut sorted: Vec<&Location> = locations.iter().collect();
    sorted.sort_by(|a, b| a.rank().cmp(&b.rank()));
    let mut ids: Vec<&LocationId> = sorted.iter().map(|l| &l.id).collect();
    ids.sort();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(RoutingError::DuplicateLocation(w[0].clone()));
    }
    let skus: Vec<&Sku> = wanted.iter().map(|(s, _)| *s).collect();
    let needs: Vec<u32> = wanted.iter().map(|(_, u)| *u).collect();
    let candidate = |loc| candidate(loc, &skus, inventory, request.destination);
    let shortfalls = |cands: &[Candidate<'_>]| -> Vec<Shortfall> {
        wanted
            .iter()
            .enumerate()
            .filter_map(|(i, (sku, need))| {
                let have: u64 = cands.iter().map(|c| u64::from(c.available[i])).sum();
                (have < u64::from(*need)).then(|| Shortfall {
                    sku: (*sku).clone(),
                    requested: *need,
                    available: u32::try_from(have).unwrap_or(u32::MAX),
                })
            })
            .collect()
    };

    if let Some(store) = &request.pickup {
        let loc = sorted
            .iter()
            .find(|l| &l.id == store)
            .ok_or_else(|| RoutingError::UnknownPickupLocation(store.clone()))?;
        if !loc.pickup {
            return Err(RoutingError::PickupNotOffered(store.clone()));
        }
        // The customer comes to the store: no carrier distance.
        let c = Candidate {
            distance: None,
            ..candidate(loc)
        };
        let missing = shortfalls(std::slice::from_ref(&c));
        if !missing.is_empty() {
            return Err(RoutingError::PickupShortfall {
                location: store.clone(),
                shortfalls: missing,
            });
        }
        return allocate(&skus, &needs, &[&c], policy).ok_or(RoutingError::PickupShortfall {
            location: store.clone(),
            shortfalls: Vec::new(),
        });
    }

    let mut candidates: Vec<Candidate<'_>> = sorted
        .iter()
        .filter(|l| l.ships)
        .map(|l| candidate(l))
        .filter(|c| c.available.iter().any(|&a| a > 0))
        .collect();
    let missing = shortfalls(&candidates);
    if !missing.is_empty() {
        return Err(RoutingError::InsufficientStock {
            shortfalls: missing,
        });
    }
    let limit = policy.split_limit;
    let mut exhaustive = true;
    if candidates.len() > EXHAUSTIVE_SEARCH_LIMIT {
        if let Some(single) = best_of_size(&skus, &needs, &candidates, 1, policy) {
            return Ok(single);
        }
        // Keep the locations covering the most requested units; stable sort keeps
        // (priority, id) order among equals.
        candidates.sort_by_key(|c| {
            let covered: u64 = c
                .available
                .iter()
                .zip(&needs)
                .map(|(&a, &n)| u64::from(a.min(n)))
                .sum();
            std::cmp::Reverse(covered)
        });
        candidates.truncate(EXHAUSTIVE_SEARCH_LIMIT);
        candidates.sort_by(|a, b| a.location.rank().cmp(&b.location.rank()));
        exhaustive = false;
    }
    for k in 1..=limit.min(candidates.len()) {
        if let Some(plan) = best_of_size(&skus, &needs, &candidates, k, policy) {
            return Ok(plan);
        }
    }
    // Explain how many shipments it would take (the full network can cover the order, so
    // with an exhaustive search some size up to the candidate count works).
    let required = (limit + 1..=candidates.len())
        .find(|&k| best_of_size(&skus, &needs, &candidates, k, policy).is_some());
    Err(RoutingError::SplitLimitExceeded {
        limit,
        required: if exhaustive { required } else { None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stock::StockLevel;
    use proptest::prelude::*;

    fn loc(id: &str, kind: LocationKind, lat: f64, lon: f64) -> Location {
        Location::new(
            LocationId::parse(id).unwrap(),
            kind,
            Coordinates::new(lat, lon).unwrap(),
        )
    }

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    fn lid(s: &str) -> LocationId {
        LocationId::parse(s).unwrap()
    }

    fn stock(entries: &[(&str, &str, u32)]) -> Inventory {
        let mut inv = Inventory::new();
        for &(s, l, n) in entries {
            inv.set(sku(s), lid(l), StockLevel::with_on_hand(n));
        }
        inv
    }

    fn request(units: &[(&str, u32)], dest: Option<(f64, f64)>) -> RoutingRequest {
        RoutingRequest {
            units: units.iter().map(|&(s, u)| (sku(s), u)).collect(),
            destination: dest.map(|(a, b)| Coordinates::new(a, b).unwrap()),
            pickup: None,
        }
    }

    fn policy(limit: usize, per_km: &str) -> RoutingPolicy {
        RoutingPolicy::new(limit, per_km.parse().unwrap()).unwrap()
    }

    fn network() -> Vec<Location> {
        vec![
            loc("wh-east", LocationKind::Warehouse, 40.7, -74.0),
            loc("wh-west", LocationKind::Warehouse, 37.4, -122.0),
            loc("store-sf", LocationKind::Store, 37.77, -122.42),
        ]
    }

    #[test]
    fn prefers_one_location_then_distance() {
        let inv = stock(&[
            ("A", "wh-east", 5),
            ("A", "wh-west", 5),
            ("B", "wh-west", 1),
            ("B", "wh-east", 1),
        ]);
        // Destination in San Francisco: the west coast wins on distance.
        let p = plan(
            &request(&[("A", 2), ("B", 1)], Some((37.77, -122.41))),
            &network(),
            &inv,
            &policy(2, "0.01"),
        )
        .unwrap();
        assert_eq!(p.shipments.len(), 1);
        assert_eq!(p.shipments[0].location.as_str(), "wh-west");
        // Destination in New York: the east coast wins.
        let p = plan(
            &request(&[("A", 2), ("B", 1)], Some((40.71, -74.0))),
            &network(),
            &inv,
            &policy(2, "0.01"),
        )
        .unwrap();
        assert_eq!(p.shipments[0].location.as_str(), "wh-east");
    }

    #[test]
    fn fewer_shipments_beat_cheaper_ones() {
        let inv = stock(&[
            ("A", "wh-west", 1),
            ("B", "store-sf", 1),
            ("A", "wh-east", 1),
            ("B", "wh-east", 1),
        ]);
        let p = plan(
            &request(&[("A", 1), ("B", 1)], Some((37.77, -122.42))),
            &network(),
            &inv,
            &policy(3, "1"),
        )
        .unwrap();
        assert_eq!(p.shipments.len(), 1);
        assert_eq!(p.shipments[0].location.as_str(), "wh-east");
    }

    #[test]
    fn splits_within_the_limit_and_explains_when_it_cannot() {
        let inv = stock(&[
            ("A", "wh-east", 1),
            ("B", "wh-west", 1),
            ("C", "store-sf", 1),
        ]);
        let req = request(&[("A", 1), ("B", 1), ("C", 1)], None);
        let p = plan(&req, &network(), &inv, &policy(3, "0")).unwrap();
        assert_eq!(p.shipments.len(), 3);
        assert_eq!(
            plan(&req, &network(), &inv, &policy(2, "0")),
            Err(RoutingError::SplitLimitExceeded {
                limit: 2,
                required: Some(3)
            })
        );
    }

    #[test]
    fn cost_decides_between_equal_splits_and_ties_go_to_priority() {
        let locations = vec![
            loc("a", LocationKind::Warehouse, 0.0, 0.0)
                .with_costs(Decimal::new(500, 2), Decimal::ONE)
                .unwrap(),
            loc("b", LocationKind::Warehouse, 0.0, 0.0)
                .with_costs(Decimal::new(400, 2), Decimal::ONE)
                .unwrap(),
            loc("c", LocationKind::ThirdPartyLogistics, 0.0, 0.0)
                .with_costs(Decimal::new(400, 2), Decimal::ONE)
                .unwrap()
                .with_priority(1),
        ];
        let inv = stock(&[("A", "a", 3), ("A", "b", 3), ("A", "c", 3)]);
        let p = plan(
            &request(&[("A", 2)], None),
            &locations,
            &inv,
            &policy(1, "0"),
        )
        .unwrap();
        assert_eq!(p.shipments[0].location.as_str(), "b");
        assert_eq!(p.total_cost, Decimal::new(600, 2));
        // Equal cost and priority: the id decides, whatever the input order.
        let mut reversed = locations.clone();
        reversed[1] = reversed[1].clone().with_priority(1);
        reversed.reverse();
        let p = plan(
            &request(&[("A", 2)], None),
            &reversed,
            &inv,
            &policy(1, "0"),
        )
        .unwrap();
        assert_eq!(p.shipments[0].location.as_str(), "b");
    }

    #[test]
    fn pickup_orders_only_use_their_store() {
        let inv = stock(&[("A", "wh-west", 10), ("A", "store-sf", 1)]);
        let mut req = request(&[("A", 1)], Some((37.0, -122.0)));
        req.pickup = Some(lid("store-sf"));
        let p = plan(&req, &network(), &inv, &policy(1, "1")).unwrap();
        assert_eq!(p.shipments[0].location.as_str(), "store-sf");
        assert_eq!(p.shipments[0].distance_km, None);
        req.units.insert(sku("A"), 2);
        assert!(matches!(
            plan(&req, &network(), &inv, &policy(1, "1")),
            Err(RoutingError::PickupShortfall { ref shortfalls, .. }) if shortfalls[0].available == 1
        ));
        req.pickup = Some(lid("wh-west"));
        assert_eq!(
            plan(&req, &network(), &inv, &policy(1, "1")),
            Err(RoutingError::PickupNotOffered(lid("wh-west")))
        );
        req.pickup = Some(lid("nowhere"));
        assert_eq!(
            plan(&req, &network(), &inv, &policy(1, "1")),
            Err(RoutingError::UnknownPickupLocation(lid("nowhere")))
        );
    }

    #[test]
    fn impossible_plans_say_why() {
        let inv = stock(&[("A", "wh-west", 1), ("A", "store-sf", 1)]);
        let err = plan(
            &request(&[("A", 3), ("B", 1)], None),
            &network(),
            &inv,
            &policy(3, "0"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "not enough stock across shipping locations: A needs 3, 2 available; B needs 1, 0 available"
        );
        assert_eq!(
            plan(&request(&[], None), &network(), &inv, &policy(3, "0")),
            Err(RoutingError::NothingToRoute)
        );
        let mut dup = network();
        dup.push(dup[0].clone());
        assert!(matches!(
            plan(&request(&[("A", 1)], None), &dup, &inv, &policy(3, "0")),
            Err(RoutingError::DuplicateLocation(_))
        ));
        // Stores that do not ship are not candidates for delivery.
        let mut no_ship = network();
        no_ship[2] = no_ship[2].clone().with_capabilities(false, true);
        assert!(plan(&request(&[("A", 2)], None), &no_ship, &inv, &policy(3, "0")).is_err());
        assert!(RoutingPolicy::new(0, Decimal::ZERO).is_err());
        assert!(RoutingPolicy::new(11, Decimal::ZERO).is_err());
    }

    #[test]
    fn large_networks_fall_back_to_a_bounded_search() {
        let locations: Vec<Location> = (0..40)
            .map(|i| loc(&format!("l{i:02}"), LocationKind::Store, 0.0, f64::from(i)))
            .collect();
        let mut inv = Inventory::new();
        for i in 0..40 {
            inv.set(
                sku("A"),
                lid(&format!("l{i:02}")),
                StockLevel::with_on_hand(1),
            );
        }
        let p = plan(
            &request(&[("A", 3)], Some((0.0, 39.0))),
            &locations,
            &inv,
            &policy(3, "1"),
        )
        .unwrap();
        assert_eq!(p.shipments.len(), 3);
        let p = plan(
            &request(&[("A", 1)], Some((0.0, 39.0))),
            &locations,
            &inv,
            &policy(3, "1"),
        )
        .unwrap();
        assert_eq!(p.shipments[0].location.as_str(), "l39");
    }

    #[test]
    fn locations_and_plans_serialize() {
        let json = r#"{"id":"wh-1","kind":"3pl","coordinates":{"lat":1.0,"lon":2.0},"cost_per_shipment":"4.50","cost_per_unit":"0.2","ships":true,"pickup":false,"priority":2}"#;
        let l: Location = serde_json::from_str(json).unwrap();
        assert_eq!(l.kind(), LocationKind::ThirdPartyLogistics);
        assert_eq!(serde_json::to_string(&l).unwrap(), json);
        assert!(serde_json::from_str::<Location>(&json.replace("\"4.50\"", "\"-1\"")).is_err());
        let inv = stock(&[("A", "wh-west", 1)]);
        let p = plan(
            &request(&[("A", 1)], Some((37.0, -122.0))),
            &network(),
            &inv,
            &policy(1, "0.5"),
        )
        .unwrap();
        let back: FulfilmentPlan =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    const LOCS: [&str; 5] = ["l0", "l1", "l2", "l3", "l4"];
    const SKUS: [&str; 3] = ["A", "B", "C"];

    fn scenario() -> impl Strategy<Value = (Vec<Location>, Inventory, RoutingRequest, usize)> {
        (
            proptest::collection::vec((0u32..3, 0u32..5, -10i32..10, -10i32..10, any::<bool>()), 5),
            proptest::collection::vec(0u32..4, 15),
            proptest::collection::vec(0u32..5, 3),
            1usize..4,
        )
            .prop_map(|(locs, levels, units, limit)| {
                let locations = LOCS
                    .iter()
                    .zip(locs)
                    .map(|(id, (prio, per_unit, lat, lon, ships))| {
                        loc(id, LocationKind::Warehouse, f64::from(lat), f64::from(lon))
                            .with_costs(Decimal::from(prio), Decimal::from(per_unit))
                            .unwrap()
                            .with_priority(prio)
                            .with_capabilities(ships, false)
                    })
                    .collect();
                let mut inv = Inventory::new();
                for (i, n) in levels.into_iter().enumerate() {
                    inv.set(
                        sku(SKUS[i % 3]),
                        lid(LOCS[i / 3]),
                        StockLevel::with_on_hand(n),
                    );
                }
                let req = RoutingRequest {
                    units: SKUS.iter().zip(units).map(|(s, u)| (sku(s), u)).collect(),
                    destination: Some(Coordinates::new(0.0, 0.0).unwrap()),
                    pickup: None,
                };
                (locations, inv, req, limit)
            })
    }

    /// Smallest number of shipping locations that can cover the request, by brute force.
    fn fewest(locations: &[Location], inv: &Inventory, req: &RoutingRequest) -> Option<usize> {
        let shipping: Vec<&Location> = locations.iter().filter(|l| l.ships()).collect();
        (0u32..1 << shipping.len())
            .filter(|mask| {
                req.units.iter().all(|(s, &u)| {
                    let have: u32 = shipping
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, l)| inv.available(s, l.id()))
                        .sum();
                    have >= u
                })
            })
            .map(|mask| mask.count_ones() as usize)
            .min()
    }

    proptest! {
        #[test]
        fn plans_are_deterministic_feasible_and_minimal((locations, inv, req, limit) in scenario()) {
            let pol = policy(limit, "0.01");
            let first = plan(&req, &locations, &inv, &pol);
            let mut reordered = locations.clone();
            reordered.reverse();
            prop_assert_eq!(&plan(&req, &reordered, &inv, &pol), &first);
            let needed = req.units.values().any(|&u| u > 0);
            match first {
                Ok(p) => {
                    prop_assert!(p.shipments.len() <= limit);
                    prop_assert_eq!(Some(p.shipments.len()), fewest(&locations, &inv, &req));
                    let taken = p.units_at();
                    for ((s, l), units) in &taken {
                        prop_assert!(*units > 0);
                        prop_assert!(*units <= inv.available(s, l));
                    }
                    for (s, &u) in &req.units {
                        let got: u32 = taken.iter().filter(|((ts, _), _)| ts == s).map(|(_, n)| n).sum();
                        prop_assert_eq!(got, u);
                    }
                }
                Err(RoutingError::NothingToRoute) => prop_assert!(!needed),
                Err(RoutingError::InsufficientStock { .. }) => prop_assert_eq!(fewest(&locations, &inv, &req), None),
                Err(RoutingError::SplitLimitExceeded { required, .. }) => {
                    prop_assert_eq!(required, fewest(&locations, &inv, &req));
                    prop_assert!(required.is_some_and(|r| r > limit));
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }
    }
}
