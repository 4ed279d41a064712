//! The OMS rules in pure Rust.
//!
//! Everything an order goes through — intake validation, the status lifecycle, stock
//! reservation, fulfilment routing, refunds and returns, its event timeline and request
//! idempotency — as plain data and functions. The crate does no I/O, reads no clock and draws
//! no random numbers: the current time and fresh identifiers are passed in by the caller, so
//! every rule is deterministic, testable natively and usable from WebAssembly components.
//!
//! Values are parsed at the boundary (`Sku::parse`, `Money::parse`, [`Order::from_request`] …)
//! into newtypes that cannot hold an invalid value, and deserializing them re-runs the same
//! checks. Requests are validated as a whole: [`Order::from_request`] reports every problem
//! with its JSON Pointer, ready for an RFC 9457 `invalid-params` list.
#![deny(missing_docs)]

mod address;
mod catalog;
mod coordinates;
mod currency;
mod email;
mod event;
mod idempotency;
mod ids;
mod money;
#[cfg(feature = "openapi")]
pub mod openapi;
mod order;
mod order_intake;
mod order_record;
mod order_state;
mod problem;
mod quantity;
mod refund;
mod refundable;
mod reservation;
mod returns;
mod routing;
mod stock;
mod stock_ledger;
pub mod storefront;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
mod timeline;
mod violation;

pub use address::{Address, AddressError, CountryCode, PostalCode, PostalCodeRule};
pub use catalog::{Catalog, CatalogError};
pub use coordinates::{Coordinates, CoordinatesError};
pub use currency::{Currency, CurrencyError};
pub use email::{Email, EmailError};
pub use event::{EventEnvelope, EventError, EventType, EVENT_VERSION};
pub use idempotency::{Fingerprint, IdempotencyError, IdempotencyKey, IdempotencyRecord};
pub use ids::{ChannelId, IdError, LocationId, OrderId, ReturnId, Sku};
pub use money::{Money, MoneyError};
pub use order::{
    ChannelItem, Customer, Discount, Order, OrderLine, Payment, PaymentStatus, Shipping,
    ShippingMethod, Totals, MAX_DISCOUNTS, MAX_LINES,
};
pub use order_record::{
    DeliveredEvent, FulfilmentError, FulfilmentStatus, Hold, HoldError, HoldNote, HoldReason,
    MappingError, OrderHeld, OrderHoldReleased, OrderRecord, RoutedEvent, ShipmentId,
    ShipmentLabel, ShipmentRecord, ShipmentStatus, ShippedEvent, StockMove, UnroutableEvent,
    MAX_HOLD_NOTE_LEN,
};
pub use order_state::{IllegalTransition, OrderCancelled, OrderStatus};
pub use problem::{InvalidParam, ProblemDocument};
pub use quantity::{Quantity, QuantityError};
pub use refund::{
    refund_allowed, PaymentError, PaymentState, Refund, RefundCause, RefundError, RefundItem,
    RefundLedger, RefundRecorded,
};
pub use refundable::{refundable, Refundable, RefundableLine, RefundableShipping};
pub use reservation::{Reservation, ReservationError, ReservedLine};
pub use returns::{
    Inspection, LineRestock, RestockPlacement, ReturnAuthorization, ReturnError, ReturnInspected,
    ReturnLine, ReturnReceived, ReturnRefunded, ReturnRequested, ReturnState, ReturnedItem,
};
pub use routing::{
    plan, FulfilmentPlan, Location, LocationKind, RoutingError, RoutingPolicy, RoutingRequest,
    Shipment, ShipmentLine, EXHAUSTIVE_SEARCH_LIMIT,
};
pub use stock::{BackorderPolicy, Inventory, Shortfall, StockError, StockLevel};
pub use stock_ledger::{Commitment, StockDoc};
pub use timeline::{Timeline, TimelineError};
pub use violation::{Violation, ViolationCode, Violations};

/// Every way a domain rule can refuse, one variant per concept; handlers map these to
/// problem documents.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An identifier (order id, SKU, location, channel) was malformed.
    #[error(transparent)]
    Id(#[from] IdError),
    /// A quantity was zero or above the bound.
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    /// A currency code is not a supported ISO 4217 code.
    #[error(transparent)]
    Currency(#[from] CurrencyError),
    /// A money amount was malformed, too precise, negative, or mixed currencies.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// An e-mail address was malformed.
    #[error(transparent)]
    Email(#[from] EmailError),
    /// An address (country, postal code, lines) was malformed.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// Coordinates were out of range.
    #[error(transparent)]
    Coordinates(#[from] CoordinatesError),
    /// An order document broke one or more rules; each violation names its field.
    #[error(transparent)]
    Order(#[from] Violations),
    /// An order status change that the lifecycle does not allow.
    #[error(transparent)]
    Transition(#[from] IllegalTransition),
    /// A catalog could not be built.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A stock operation would break the stock invariants.
    #[error(transparent)]
    Stock(#[from] StockError),
    /// A reservation was malformed.
    #[error(transparent)]
    Reservation(#[from] ReservationError),
    /// No fulfilment plan satisfies the order.
    #[error(transparent)]
    Routing(#[from] RoutingError),
    /// A refund was refused.
    #[error(transparent)]
    Refund(#[from] RefundError),
    /// A return authorisation step was refused.
    #[error(transparent)]
    Return(#[from] ReturnError),
    /// An event envelope was malformed.
    #[error(transparent)]
    Event(#[from] EventError),
    /// An event does not fit the order's timeline.
    #[error(transparent)]
    Timeline(#[from] TimelineError),
    /// An idempotency key was malformed or reused with a different request.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// A hold could not be placed or released, or its reason or note was malformed.
    #[error(transparent)]
    Hold(#[from] HoldError),
}
