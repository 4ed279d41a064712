//! What a client sees of an order: the order as accepted and everything that happened to it,
//! with its three status dimensions side by side — `status` (the lifecycle),
//! `fulfillment_status` (from the shipments) and `payment_status` (from the refund ledger),
//! each derived by the domain, never stored — and without the step runner's bookkeeping
//! (`outbox`, `version`, `marker`), which says nothing to a client and would change the ETag
//! on writes that change nothing it can see.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use oms_domain::{
    ChannelId, Currency, Customer, Discount, FulfilmentPlan, FulfilmentStatus, Hold, Money,
    OrderId, OrderLine, Payment, PaymentState, Refund, Reservation, ReturnId, Shipping, Totals,
};
use oms_edge::{OrderRecord, ShipmentRecord};
use serde::Serialize;

/// `GET /v1/orders/{id}` (schema `OrderView` in `openapi.json`).
#[derive(Debug, Serialize)]
pub struct OrderView<'a> {
    id: OrderId,
    /// The order's status (the lifecycle dimension).
    status: &'static str,
    /// Where its shipments are (its own dimension: a refund never moves it).
    fulfillment_status: FulfilmentStatus,
    /// Where its money is (its own dimension: shipping never moves it).
    payment_status: PaymentState,
    placed_at: DateTime<Utc>,
    channel: &'a ChannelId,
    customer: &'a Customer,
    currency: Currency,
    lines: &'a [OrderLine],
    shipping: &'a Shipping,
    discounts: &'a [Discount],
    totals: &'a Totals,
    payment: &'a Payment,
    metadata: &'a BTreeMap<String, String>,
    reservation: Option<&'a Reservation>,
    plan: Option<&'a FulfilmentPlan>,
    shipments: &'a [ShipmentRecord],
    refunds: &'a [Refund],
    refunded_total: Money,
    refundable: Money,
    returns: &'a [ReturnId],
    reason: Option<&'a str>,
    /// Its active holds (reason, note, placed_at): while any is, it is not routed.
    holds: &'a [Hold],
    links: Links,
}

/// Where the order's other resources are.
#[derive(Debug, Serialize)]
struct Links {
    events: String,
}

impl<'a> OrderView<'a> {
    /// The view of a stored order.
    pub fn of(r: &'a OrderRecord) -> OrderView<'a> {
        let o = r.order();
        OrderView {
            id: o.id(),
            status: r.status().as_str(),
            fulfillment_status: r.fulfilment_status(),
            payment_status: r.payment_status(),
            placed_at: o.placed_at(),
            channel: o.channel(),
            customer: o.customer(),
            currency: o.currency(),
            lines: o.lines(),
            shipping: o.shipping(),
            discounts: o.discounts(),
            totals: o.totals(),
            payment: o.payment(),
            metadata: o.metadata(),
            reservation: r.reservation(),
            plan: r.plan(),
            shipments: r.shipments(),
            refunds: r.refunds(),
            refunded_total: r.ledger().refunded(),
            refundable: r.ledger().refundable(),
            returns: r.returns(),
            reason: r.reason(),
            holds: r.holds(),
            links: Links {
                events: format!("/v1/orders/{}/events", o.id()),
            },
        }
    }
}
