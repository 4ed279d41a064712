//! admin (`functions/admin`, every route staff only): reference data, the reconciler, API
//! keys, customers' order-token secret and channel SKU aliases.
//!
//! Locations and backorder policies are domain types (their wire forms); the other bodies
//! are parsed by hand or answered with `json!` and are mirrored here (keys:
//! `functions/admin/src/keys.rs`, aliases: `functions/admin/src/aliases.rs`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use oms_domain::openapi::amount;
use oms_domain::{BackorderPolicy, ChannelId, Currency, Location, LocationId, Sku};
use serde::Serialize;
use serde_json::json;
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{OpenApi, PartialSchema, ToSchema};

/// The routes of the admin component.
#[derive(OpenApi)]
#[openapi(paths(
    put_prices,
    put_locations,
    put_stock,
    put_backorder_policy,
    put_routing_policy,
    reconcile,
    create_key,
    list_keys,
    rotate_key,
    revoke_key,
    rotate_order_tokens,
    put_alias,
    list_aliases,
    delete_alias
))]
pub struct Api;

/// `PUT /v1/admin/catalog/{sku}`: the SKU's price per currency (at least one).
pub struct Prices;

impl PartialSchema for Prices {
    /// One property per supported currency, its amount with at most the currency's decimals.
    fn schema() -> RefOr<Schema> {
        let codes = match Currency::schema() {
            RefOr::T(Schema::Object(o)) => o.enum_values.unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut prices = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("currency code → price"))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .min_properties(Some(1))
            .examples([json!({"USD": "19.99", "EUR": "18.50"})]);
        for code in codes.iter().filter_map(|c| c.as_str()) {
            let Ok(currency) = Currency::parse(code) else {
                continue;
            };
            let pattern = match currency.minor_units() {
                0 => r"^\d{1,15}$".to_string(),
                n => format!(r"^\d{{1,15}}(\.\d{{1,{n}}})?$"),
            };
            let amount = ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
                .build();
            prices = prices.property(code, amount);
        }
        RefOr::T(Schema::Object(prices.build()))
    }
}

impl ToSchema for Prices {}

/// A price: an exact decimal string with no more decimals than the currency has.
pub struct PriceAmount;

impl PartialSchema for PriceAmount {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::Object(amount()))
    }
}

impl ToSchema for PriceAmount {}

/// `PUT /v1/admin/backorder/{sku}`: a [`BackorderPolicy`] as sent — `"never"`, `"unlimited"` or
/// `{"up_to": N}` and nothing else in that object.
pub struct BackorderPolicyBody;

impl PartialSchema for BackorderPolicyBody {
    fn schema() -> RefOr<Schema> {
        let words = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["never", "unlimited"]))
            .build();
        let up_to = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "up_to",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(u32::MAX))
                    .description(Some("at most this many units outstanding on backorder")),
            )
            .required("up_to")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .build();
        RefOr::T(Schema::OneOf(
            utoipa::openapi::schema::OneOfBuilder::new()
                .item(words)
                .item(up_to)
                .description(Some(
                    "whether the SKU may be sold beyond stock: never, unlimited, or up to N units",
                ))
                .build(),
        ))
    }
}

impl ToSchema for BackorderPolicyBody {}

/// The stored prices of a SKU.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PricesStored {
    sku: Sku,
    /// Currency code → amount.
    prices: BTreeMap<String, PriceAmount>,
}

/// `PUT /v1/admin/stock/{sku}/{location}`: the count on hand (reservations are kept).
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct StockCount {
    on_hand: u32,
}

/// The stock level after a count.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StockStored {
    sku: Sku,
    location: LocationId,
    on_hand: u32,
    reserved: u32,
    allocated: u32,
    available: u32,
}

/// The policy stored for a SKU.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BackorderStored {
    sku: Sku,
    policy: BackorderPolicy,
}

/// `PUT /v1/admin/routing-policy` (also its answer: stored as given).
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RoutingPolicyBody {
    /// Most shipments one order may be split into.
    #[schema(minimum = 1, maximum = 10)]
    split_limit: u32,
    /// Cost per kilometre, a non-negative decimal string.
    #[schema(pattern = r"^\d{1,12}(\.\d{1,6})?$", example = "0.02")]
    cost_per_km: String,
}

/// What one reconciler pass did (`oms_edge::Reconciled`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Reconciled {
    /// Index entries looked at.
    examined: u64,
    /// Entries not yet due (younger than the grace period).
    waiting: u64,
    /// Owed events published.
    republished: u64,
    /// Orders whose next step was re-driven.
    redriven: Vec<String>,
    /// Orders whose owed stock moves were applied.
    stock_moved: Vec<String>,
    /// Entries dropped because their order rests or no longer names them.
    dropped: u64,
    /// Entries left for the next pass (over `limit`).
    remaining: u64,
    /// Keys in the owed store that are not owed-work entries.
    foreign: u64,
}

/// Who an API key acts as.
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum KeyRole {
    /// Staff: everything.
    Staff,
    /// Fulfilment: shipment updates of its location.
    Fulfilment,
}

/// `POST /v1/admin/keys`: a staff key (no location) or a fulfilment key (its location).
#[derive(ToSchema, Serialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum NewKeyRequest {
    /// A staff key.
    Staff(NewStaffKey),
    /// A fulfilment key.
    Fulfilment(NewFulfilmentKey),
}

/// `POST /v1/admin/keys` for a staff key: not bound to a location.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct NewStaffKey {
    #[schema(schema_with = staff_role)]
    role: String,
    /// Absent or null: a staff key has no location.
    #[schema(required = false, schema_with = no_location)]
    location: Option<()>,
    /// What the key is for (1-100 characters, not blank).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    name: String,
}

/// `POST /v1/admin/keys` for a fulfilment key: the location it may update.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct NewFulfilmentKey {
    #[schema(schema_with = fulfilment_role)]
    role: String,
    location: LocationId,
    /// What the key is for (1-100 characters, not blank).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    name: String,
}

/// A key request's `role`: the one value `name`.
fn role(name: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([name]))
        .build()
}

fn staff_role() -> Object {
    role("staff")
}

fn fulfilment_role() -> Object {
    role("fulfilment")
}

/// A staff key request's `location`: null when given.
fn no_location() -> Object {
    ObjectBuilder::new().schema_type(Type::Null).build()
}

/// One secret of a key (its digest is never shown).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KeySecretView {
    created_at: DateTime<Utc>,
    /// When a rotated-out secret stops working.
    expires_at: Option<DateTime<Utc>>,
}

/// An API key as listed: no secrets.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KeyView {
    id: String,
    role: KeyRole,
    location: Option<String>,
    name: String,
    created_at: DateTime<Utc>,
    /// The actor that created it (`staff:root`, `staff:<keyid>`).
    created_by: String,
    revoked_at: Option<DateTime<Utc>>,
    secrets: Vec<KeySecretView>,
}

/// A key with its token, shown this once (creation, rotation): the listed form and `token`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KeyWithToken {
    id: String,
    role: KeyRole,
    location: Option<String>,
    name: String,
    created_at: DateTime<Utc>,
    created_by: String,
    revoked_at: Option<DateTime<Utc>>,
    secrets: Vec<KeySecretView>,
    /// `oms_sk_<keyid>_<secret>` or `oms_fk_<keyid>_<secret>`: the bearer credential.
    token: String,
}

/// `GET /v1/admin/keys`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Keys {
    keys: Vec<KeyView>,
}

/// `POST /v1/admin/keys/{id}/rotate`.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RotateRequest {
    /// How long the old secrets keep working (default 86400 when absent or null).
    #[schema(required = false, minimum = 0, maximum = 2592000)]
    grace_seconds: Option<u32>,
}

/// What an external id names.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum AliasKind {
    /// A marketplace variant id (Shopify `variant_id`).
    Variant,
    /// A marketplace product id (Shopify `product_id`).
    Product,
}

/// `PUT /v1/admin/channels/{channel}/aliases/{kind}/{external_id}`.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct AliasRequest {
    sku: Sku,
}

/// A channel's external id mapped to a SKU (`functions/admin/src/aliases.rs`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Alias {
    channel: ChannelId,
    kind: AliasKind,
    external_id: String,
    sku: Sku,
    updated_at: DateTime<Utc>,
}

/// `GET /v1/admin/channels/{channel}/aliases`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Aliases {
    channel: ChannelId,
    aliases: Vec<Alias>,
}

/// Set a SKU's catalog prices (staff).
#[utoipa::path(
    put,
    path = "/v1/admin/catalog/{sku}",
    operation_id = "putPrices",
    tag = "admin",
    security(("staff" = [])),
    params(("sku" = Sku, Path, description = "the SKU")),
    request_body(content = Prices, content_type = "application/json"),
    responses(
        (status = 200, description = "Prices stored", body = PricesStored),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn put_prices() {}

/// Replace the fulfilment network (staff).
#[utoipa::path(
    put,
    path = "/v1/admin/locations",
    operation_id = "putLocations",
    tag = "admin",
    security(("staff" = [])),
    request_body(content = Vec<Location>, content_type = "application/json",
        description = "every location (ids unique)"),
    responses(
        (status = 200, description = "The network as stored", body = Vec<Location>),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn put_locations() {}

/// Count a SKU's stock at a location (staff); reservations and allocations are kept.
#[utoipa::path(
    put,
    path = "/v1/admin/stock/{sku}/{location}",
    operation_id = "putStock",
    tag = "admin",
    security(("staff" = [])),
    params(
        ("sku" = Sku, Path, description = "the SKU"),
        ("location" = LocationId, Path, description = "a location of the network"),
    ),
    request_body(content = StockCount, content_type = "application/json"),
    responses(
        (status = 200, description = "The stock level", body = StockStored),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 409, response = crate::problem::Conflict),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn put_stock() {}

/// Set a SKU's backorder policy (staff).
#[utoipa::path(
    put,
    path = "/v1/admin/backorder/{sku}",
    operation_id = "putBackorderPolicy",
    tag = "admin",
    security(("staff" = [])),
    params(("sku" = Sku, Path, description = "the SKU")),
    request_body(content = BackorderPolicyBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Policy stored", body = BackorderStored),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn put_backorder_policy() {}

/// Set the routing policy (staff).
#[utoipa::path(
    put,
    path = "/v1/admin/routing-policy",
    operation_id = "putRoutingPolicy",
    tag = "admin",
    security(("staff" = [])),
    request_body(content = RoutingPolicyBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Policy stored", body = RoutingPolicyBody),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn put_routing_policy() {}

/// Run one reconciler pass now (staff).
///
/// Re-publishes events still owed by orders, re-drives an order whose next step never ran
/// and drops entries of orders at rest. Safe at any time; the `reconciler` cron component
/// runs the same pass every minute.
#[utoipa::path(
    post,
    path = "/v1/admin/reconcile",
    operation_id = "reconcile",
    tag = "admin",
    security(("staff" = [])),
    params(
        ("grace_seconds" = Option<u32>, Query, minimum = 0, maximum = 604800,
            description = "seconds an entry may stand before the pass acts on it (default 60)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000,
            description = "entries acted on (default 500)"),
    ),
    responses(
        (status = 200, description = "What the pass did", body = Reconciled),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn reconcile() {}

/// Create an API key (staff); its token is shown this once.
#[utoipa::path(
    post,
    path = "/v1/admin/keys",
    operation_id = "createKey",
    tag = "admin",
    security(("staff" = [])),
    request_body(content = NewKeyRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The key with its token", body = KeyWithToken,
            links(
                ("rotateKey" = (operation_id = "rotateKey", parameters(("id" = "$response.body#/id")))),
                ("revokeKey" = (operation_id = "revokeKey", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn create_key() {}

/// List the API keys, without secrets (staff).
#[utoipa::path(
    get,
    path = "/v1/admin/keys",
    operation_id = "listKeys",
    tag = "admin",
    security(("staff" = [])),
    responses(
        (status = 200, description = "The keys", body = Keys),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn list_keys() {}

/// Rotate an API key (staff): a new token; the old secrets keep working for the grace.
#[utoipa::path(
    post,
    path = "/v1/admin/keys/{id}/rotate",
    operation_id = "rotateKey",
    tag = "admin",
    security(("staff" = [])),
    params(("id" = String, Path, description = "the key id")),
    request_body(content = Option<RotateRequest>, content_type = "application/json",
        description = "optional"),
    responses(
        (status = 200, description = "The key with its new token", body = KeyWithToken),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 409, response = crate::problem::Conflict),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn rotate_key() {}

/// Give customers' order tokens a new secret (staff); tokens of the previous secret keep
/// working until the next rotation.
#[utoipa::path(
    post,
    path = "/v1/admin/order-tokens/rotate",
    operation_id = "rotateOrderTokens",
    tag = "admin",
    security(("staff" = [])),
    responses(
        (status = 204, description = "Rotated"),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn rotate_order_tokens() {}

/// Revoke an API key (staff): every secret stops working (again: no error).
#[utoipa::path(
    delete,
    path = "/v1/admin/keys/{id}",
    operation_id = "revokeKey",
    tag = "admin",
    security(("staff" = [])),
    params(("id" = String, Path, description = "the key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn revoke_key() {}

/// Map a channel's variant or product id to a SKU (staff).
#[utoipa::path(
    put,
    path = "/v1/admin/channels/{channel}/aliases/{kind}/{external_id}",
    operation_id = "putAlias",
    tag = "admin",
    security(("staff" = [])),
    params(
        ("channel" = ChannelId, Path, description = "the channel"),
        ("kind" = AliasKind, Path, description = "what the external id names"),
        ("external_id" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,64}$", description = "the channel's id"),
    ),
    request_body(content = AliasRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The alias", body = Alias),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn put_alias() {}

/// A channel's SKU aliases (staff).
#[utoipa::path(
    get,
    path = "/v1/admin/channels/{channel}/aliases",
    operation_id = "listAliases",
    tag = "admin",
    security(("staff" = [])),
    params(("channel" = ChannelId, Path, description = "the channel")),
    responses(
        (status = 200, description = "The aliases", body = Aliases),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn list_aliases() {}

/// Remove a SKU alias (staff).
#[utoipa::path(
    delete,
    path = "/v1/admin/channels/{channel}/aliases/{kind}/{external_id}",
    operation_id = "deleteAlias",
    tag = "admin",
    security(("staff" = [])),
    params(
        ("channel" = ChannelId, Path, description = "the channel"),
        ("kind" = AliasKind, Path, description = "what the external id names"),
        ("external_id" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,64}$", description = "the channel's id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn delete_alias() {}
