//! OpenAPI schemas (feature `openapi`, native only) of the value types whose JSON form is not
//! their Rust structure: newtypes written as strings (`#[serde(try_from = "String")]`), money
//! as a decimal string, coordinates through their wire form. The structs and enums built from
//! them derive `utoipa::ToSchema` where they are defined; the OpenAPI document is assembled in
//! `api/` (`oms-api`).
//!
//! Every schema here states what the type's parser accepts, so a client (or a fuzzer) that
//! follows the schema sends values the server takes.

use std::borrow::Cow;

use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, Object, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::{
    ChannelId, CountryCode, Currency, Email, EventType, LocationId, Money, OrderId, PostalCode,
    Quantity, ReturnId, ShipmentId, ShipmentLabel, Sku,
};

/// `schema_with` of a `Money` written as its amount only (`serialize_amount`): an exact
/// decimal string in the order's currency.
pub fn amount() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^\d{1,15}(\.\d{1,3})?$"))
        .description(Some(
            "exact decimal amount in the order's currency, no more decimals than it has",
        ))
        .examples(["19.99"])
        .build()
}

/// A string schema.
fn string(description: &str, pattern: Option<&str>, max: Option<usize>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(pattern)
        .min_length(Some(1))
        .max_length(max)
        .build()
}

/// `impl ToSchema` for a type whose JSON form is the schema `$schema` (named `$name`).
macro_rules! schema {
    ($ty:ty, $name:literal, $schema:expr) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                RefOr::T(Schema::Object($schema))
            }
        }
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

/// `impl ToSchema` for a type serialized through a wire form (`#[serde(into = "Repr")]`)
/// that derives the schema; used beside the type, where its private `Repr` is visible.
macro_rules! schema_via {
    ($ty:ty, $name:literal, $repr:ty) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
                <$repr as utoipa::PartialSchema>::schema()
            }
        }
        impl utoipa::ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
            fn schemas(
                schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>,
            ) {
                <$repr as utoipa::ToSchema>::schemas(schemas)
            }
        }
    };
}
pub(crate) use schema_via;

const TOKEN: &str = r"^[A-Za-z0-9._-]{1,64}$";

fn uuid(description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .description(Some(description))
        .build()
}

schema!(
    OrderId,
    "OrderId",
    uuid("order id (UUID, lowercase hyphenated)")
);
schema!(
    ReturnId,
    "ReturnId",
    uuid("return id (UUID, lowercase hyphenated)")
);
schema!(
    Sku,
    "Sku",
    string(
        "stock-keeping unit: 1-64 of [A-Za-z0-9._-]",
        Some(TOKEN),
        Some(64)
    )
);
schema!(
    LocationId,
    "LocationId",
    string(
        "fulfilment location: 1-64 of [A-Za-z0-9._-]",
        Some(TOKEN),
        Some(64)
    )
);
schema!(
    ChannelId,
    "ChannelId",
    string(
        "sales channel: 1-64 of [A-Za-z0-9._-]",
        Some(TOKEN),
        Some(64)
    )
);
schema!(
    ShipmentId,
    "ShipmentId",
    string(
        "shipment id: {order id}-{n}, n from 1",
        Some(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-[1-9][0-9]{0,8}$"),
        None
    )
);
schema!(
    ShipmentLabel,
    "ShipmentLabel",
    string(
        "carrier or tracking number: 1-128 characters, not blank",
        Some(r"\S"),
        Some(128)
    )
);
schema!(
    Email,
    "Email",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(254))
        .build()
);
schema!(
    CountryCode,
    "CountryCode",
    string(
        "ISO 3166-1 alpha-2 country code",
        Some("^[A-Z]{2}$"),
        Some(2)
    )
);
schema!(
    PostalCode,
    "PostalCode",
    string("postal code, in the country's format", None, Some(10))
);
schema!(
    Quantity,
    "Quantity",
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(Quantity::MAX))
        .build()
);
schema!(
    Currency,
    "Currency",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("ISO 4217 code of a supported currency"))
        .enum_values(Some(currency_codes()))
        .build()
);
schema!(
    Money,
    "Money",
    ObjectBuilder::new()
        .property("amount", amount())
        .required("amount")
        .property("currency", Currency::schema())
        .required("currency")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build()
);
schema!(
    crate::Coordinates,
    "Coordinates",
    ObjectBuilder::new()
        .property("lat", degrees(90))
        .required("lat")
        .property("lon", degrees(180))
        .required("lon")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build()
);
schema!(
    EventType,
    "EventType",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(EventType::ALL.iter().map(|t| t.as_str())))
        .build()
);

fn degrees(max: i32) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(-max))
        .maximum(Some(max))
        .build()
}

/// Every code [`Currency::parse`] accepts (the parser is the one list).
fn currency_codes() -> Vec<String> {
    let letters = || b'A'..=b'Z';
    letters()
        .flat_map(|a| letters().flat_map(move |b| letters().map(move |c| [a, b, c])))
        .filter_map(|code| {
            let code = String::from_utf8(code.to_vec()).ok()?;
            Currency::parse(&code).ok().map(|_| code)
        })
        .collect()
}
