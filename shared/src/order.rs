//! An accepted order: what was bought, how it is delivered and paid, and its exact totals.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::coordinates::Coordinates;
use crate::currency::Currency;
use crate::email::Email;
use crate::ids::{ChannelId, LocationId, OrderId, Sku};
use crate::money::{serialize_amount, Money, MoneyError};
use crate::quantity::Quantity;
use crate::violation::Violations;

/// Most lines one order may have.
pub const MAX_LINES: usize = 500;
/// Most order-level discounts one order may have.
pub const MAX_DISCOUNTS: usize = 20;

/// Who placed the order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Customer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<Email>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
}

impl Customer {
    /// Contact address for notifications. Always present on storefront orders; a
    /// marketplace order may have none (the marketplace keeps the buyer's contact: POS
    /// sales, privacy-protected buyers, `customer: null`).
    pub const fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    /// Display name, if given.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// A marketplace's own reference of a line: its variant and product ids (as strings: they
/// exceed 2^53) and the title the buyer saw. Kept on marketplace lines so staff can trace a
/// line back to the channel and map an unknown item to a SKU.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelItem {
    /// The channel's variant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
    /// The channel's product id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    /// The line's title on the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl ChannelItem {
    /// How the item is named in notes and problems: `variant 1, product 2 "Hat"`.
    pub fn describe(&self) -> String {
        let mut ids = Vec::new();
        if let Some(v) = &self.variant_id {
            ids.push(format!("variant {v}"));
        }
        if let Some(p) = &self.product_id {
            ids.push(format!("product {p}"));
        }
        if ids.is_empty() {
            ids.push("no variant or product id".into());
        }
        match &self.title {
            Some(t) => format!("{} {t:?}", ids.join(", ")),
            None => ids.join(", "),
        }
    }
}

/// One SKU at one price: `quantity × unit_price − discount`.
///
/// **Unmapped lines.** A marketplace line whose SKU could not be resolved (no SKU on the
/// channel, no alias for its variant or product) is kept, so the order is not lost: it is
/// `unmapped`, its [`ChannelItem`] says what was bought, and its `sku` is a *provisional*
/// SKU ([`OrderLine::provisional_sku`]: `unmapped-{variant id}`, else `unmapped-p{product
/// id}`, else `unmapped-line-{n}`) standing for it until staff map the item
/// ([`Order::map_line`]). An order with unmapped lines is stored on an `unmapped_item` hold,
/// which blocks reserving and routing; unmapped lines count in the totals but not in
/// [`Order::units_by_sku`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderLine {
    sku: Sku,
    quantity: Quantity,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::amount))]
    #[serde(serialize_with = "serialize_amount")]
    unit_price: Money,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::amount))]
    #[serde(serialize_with = "serialize_amount")]
    discount: Money,
    /// The channel's reference (marketplace lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<ChannelItem>,
    /// The SKU is provisional (see the type's docs).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unmapped: bool,
    /// `false` for goods that are never shipped (gift cards, downloads): no stock is
    /// reserved or routed for them.
    #[serde(skip_serializing_if = "is_true")]
    requires_shipping: bool,
    #[serde(skip)]
    gross: Money,
    #[serde(skip)]
    net: Money,
}

// serde's skip_serializing_if takes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_true(b: &bool) -> bool {
    *b
}

impl OrderLine {
    /// Builds a line, computing its gross (`quantity × unit_price`) and net (gross − discount).
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] when price and discount differ in currency,
    /// [`MoneyError::Arithmetic`] when the discount exceeds the gross amount,
    /// [`MoneyError::TooLarge`] when the gross is out of range.
    pub fn new(
        sku: Sku,
        quantity: Quantity,
        unit_price: Money,
        discount: Money,
    ) -> Result<Self, MoneyError> {
        let gross = unit_price.times(quantity.get())?;
        let net = gross.checked_sub(discount)?;
        Ok(Self {
            sku,
            quantity,
            unit_price,
            discount,
            item: None,
            unmapped: false,
            requires_shipping: true,
            gross,
            net,
        })
    }

    /// The provisional SKU of unmapped line `index` bought as `item` (see the type's docs).
    pub fn provisional_sku(item: &ChannelItem, index: usize) -> Sku {
        let token = |prefix: &str, id: &Option<String>| {
            id.as_deref()
                .and_then(|id| Sku::parse(&format!("unmapped-{prefix}{id}")).ok())
        };
        token("", &item.variant_id)
            .or_else(|| token("p", &item.product_id))
            .unwrap_or_else(|| {
                Sku::parse(&format!("unmapped-line-{index}")).expect("a valid token")
            })
    }

    /// The channel's reference of the line, on marketplace lines.
    pub const fn item(&self) -> Option<&ChannelItem> {
        self.item.as_ref()
    }

    /// Whether the SKU is provisional (the item is not mapped to a SKU yet).
    pub const fn is_unmapped(&self) -> bool {
        self.unmapped
    }

    /// Whether the goods are shipped (stock reserved, routed); `false` for digital goods.
    pub const fn requires_shipping(&self) -> bool {
        self.requires_shipping
    }

    pub(crate) fn with_channel(
        mut self,
        item: Option<ChannelItem>,
        unmapped: bool,
        requires_shipping: bool,
    ) -> Self {
        self.item = item;
        self.unmapped = unmapped;
        self.requires_shipping = requires_shipping;
        self
    }

    /// The SKU.
    pub const fn sku(&self) -> &Sku {
        &self.sku
    }

    /// Units ordered.
    pub const fn quantity(&self) -> Quantity {
        self.quantity
    }

    /// Price of one unit before discount.
    pub const fn unit_price(&self) -> Money {
        self.unit_price
    }

    /// Discount on the whole line.
    pub const fn discount(&self) -> Money {
        self.discount
    }

    /// `quantity × unit_price`.
    pub const fn gross(&self) -> Money {
        self.gross
    }

    /// Gross minus the line discount: what the customer pays for this line before
    /// order-level discounts, shipping and tax.
    pub const fn net(&self) -> Money {
        self.net
    }
}

/// How the order reaches the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ShippingMethod {
    /// Carrier delivery, standard speed.
    Standard,
    /// Carrier delivery, expedited.
    Express,
    /// Click-and-collect: the customer picks up at a store.
    Pickup,
    /// Nothing to deliver: every line is a digital good (no address, no store).
    Digital,
}

impl ShippingMethod {
    /// The method as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Express => "express",
            Self::Pickup => "pickup",
            Self::Digital => "digital",
        }
    }

    /// Parses the JSON spelling.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        [Self::Standard, Self::Express, Self::Pickup, Self::Digital]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

/// Delivery details. A pickup order names its store and needs no address; a digital order
/// has neither; a delivered order needs an address (a marketplace order may arrive without
/// one: it is then stored on an `address_needed` hold, see [`Order::needs_address`]) and has
/// no pickup location.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Shipping {
    pub(crate) method: ShippingMethod,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::amount))]
    #[serde(serialize_with = "serialize_amount")]
    pub(crate) amount: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) address: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pickup_location: Option<LocationId>,
}

impl Shipping {
    /// The method.
    pub const fn method(&self) -> ShippingMethod {
        self.method
    }

    /// What the customer pays for shipping.
    pub const fn amount(&self) -> Money {
        self.amount
    }

    /// The delivery address (present for delivered orders, except marketplace orders
    /// awaiting one).
    pub const fn address(&self) -> Option<&Address> {
        self.address.as_ref()
    }

    /// The store to collect from (present exactly when the method is pickup).
    pub const fn pickup_location(&self) -> Option<&LocationId> {
        self.pickup_location.as_ref()
    }
}

/// An order-level discount (a coupon or promotion).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Discount {
    pub(crate) code: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::amount))]
    #[serde(serialize_with = "serialize_amount")]
    pub(crate) amount: Money,
}

impl Discount {
    /// The promotion code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The amount taken off.
    pub const fn amount(&self) -> Money {
        self.amount
    }
}

/// Where the payment provider's funds stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PaymentStatus {
    /// Funds are held but not taken; nothing can be refunded yet.
    Authorized,
    /// Funds are taken; refunds draw against this.
    Captured,
    /// Nothing authorized yet (a marketplace order paid later: bank transfer, cash on
    /// delivery, payment terms); taken in on a `payment_pending` hold.
    Pending,
    /// Part of the amount is captured ([`Payment::captured`]), the rest is outstanding;
    /// taken in on a `payment_pending` hold.
    PartiallyPaid,
}

impl PaymentStatus {
    /// The status as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorized => "authorized",
            Self::Captured => "captured",
            Self::Pending => "pending",
            Self::PartiallyPaid => "partially_paid",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        [
            Self::Authorized,
            Self::Captured,
            Self::Pending,
            Self::PartiallyPaid,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The payment backing the order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Payment {
    pub(crate) reference: String,
    pub(crate) status: PaymentStatus,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::amount))]
    #[serde(serialize_with = "serialize_amount")]
    pub(crate) amount: Money,
    /// What is captured of a partially paid amount (present exactly then).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_optional_amount"
    )]
    pub(crate) captured: Option<Money>,
}

// serde's serialize_with takes a reference.
#[allow(clippy::ref_option)]
fn serialize_optional_amount<S: serde::Serializer>(
    m: &Option<Money>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => serialize_amount(m, s),
        None => s.serialize_none(),
    }
}

impl Payment {
    /// The provider's reference (e.g. a payment-intent id).
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Authorized, captured, pending or partially paid.
    pub const fn status(&self) -> PaymentStatus {
        self.status
    }

    /// The amount authorized, captured or due; always equal to the grand total.
    pub const fn amount(&self) -> Money {
        self.amount
    }

    /// What has been captured: the amount when captured, the captured part when partially
    /// paid, zero when only authorized or pending.
    pub fn captured(&self) -> Money {
        match self.status {
            PaymentStatus::Captured => self.amount,
            PaymentStatus::PartiallyPaid => self
                .captured
                .unwrap_or_else(|| Money::zero(self.amount.currency())),
            PaymentStatus::Authorized | PaymentStatus::Pending => {
                Money::zero(self.amount.currency())
            }
        }
    }
}

/// The order's totals, always recomputed from its parts:
/// `grand_total = subtotal − discount + shipping + tax`, or, when prices include tax
/// ([`Order::taxes_included`]), `subtotal − discount + shipping` with `tax` the part of it
/// that is tax.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Totals {
    /// Σ line gross (`quantity × unit_price`).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::amount))]
    #[serde(serialize_with = "serialize_amount")]
    pub subtotal: Money,
    /// Σ line discounts + Σ order-level discounts.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::amount))]
    #[serde(serialize_with = "serialize_amount")]
    pub discount: Money,
    /// The shipping amount.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::amount))]
    #[serde(serialize_with = "serialize_amount")]
    pub shipping: Money,
    /// The tax amount (computed by the storefront's tax engine, carried as given; included
    /// in the prices when the order says so).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::amount))]
    #[serde(serialize_with = "serialize_amount")]
    pub tax: Money,
    /// What the customer pays.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::amount))]
    #[serde(serialize_with = "serialize_amount")]
    pub grand_total: Money,
}

/// Why totals could not be computed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TotalsError {
    /// Order-level discounts exceed what the lines are worth after their own discounts.
    DiscountExceedsLines,
    /// A sum left the supported range.
    OutOfRange,
}

impl Totals {
    /// Recomputes the totals of an order's parts.
    pub(crate) fn compute(
        currency: Currency,
        lines: &[OrderLine],
        discounts: &[Discount],
        shipping: Money,
        tax: Money,
        taxes_included: bool,
    ) -> Result<Totals, TotalsError> {
        let range = |_: MoneyError| TotalsError::OutOfRange;
        let subtotal = Money::sum(currency, lines.iter().map(OrderLine::gross)).map_err(range)?;
        let line_net = Money::sum(currency, lines.iter().map(OrderLine::net)).map_err(range)?;
        let order_discount =
            Money::sum(currency, discounts.iter().map(Discount::amount)).map_err(range)?;
        let after_discounts = line_net
            .checked_sub(order_discount)
            .map_err(|_| TotalsError::DiscountExceedsLines)?;
        let discount = subtotal.checked_sub(after_discounts).map_err(range)?;
        let added_tax = if taxes_included {
            Money::zero(currency)
        } else {
            tax
        };
        let grand_total = after_discounts
            .checked_add(shipping)
            .and_then(|t| t.checked_add(added_tax))
            .map_err(range)?;
        Ok(Totals {
            subtotal,
            discount,
            shipping,
            tax,
            grand_total,
        })
    }
}

/// An order that passed intake: every value parsed, every total recomputed and matching what
/// the client sent, the payment covering the grand total.
///
/// Built only by [`Order::from_request`] (or deserializing a stored order, which re-runs the
/// same checks). Serializes to the request shape plus `id`, `placed_at` and the computed
/// `totals`; money amounts are strings in the order's currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct Order {
    pub(crate) id: OrderId,
    pub(crate) placed_at: DateTime<Utc>,
    pub(crate) channel: ChannelId,
    pub(crate) customer: Customer,
    pub(crate) currency: Currency,
    pub(crate) lines: Vec<OrderLine>,
    pub(crate) shipping: Shipping,
    pub(crate) discounts: Vec<Discount>,
    #[serde(serialize_with = "serialize_amount")]
    pub(crate) tax: Money,
    /// Prices (lines, shipping) include `tax` (EU/UK/AU-style pricing).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) taxes_included: bool,
    pub(crate) totals: Totals,
    pub(crate) payment: Payment,
    pub(crate) metadata: BTreeMap<String, String>,
}

impl Order {
    /// Parses and validates a storefront order request body, collecting every problem.
    ///
    /// `id` and `placed_at` come from the caller (this crate has no clock or randomness).
    /// See the crate's `tests/fixtures` for the accepted shape and the reported problems.
    ///
    /// # Errors
    /// [`Violations`] listing each problem with its JSON Pointer and a stable code.
    pub fn from_request(
        body: &serde_json::Value,
        id: OrderId,
        placed_at: DateTime<Utc>,
    ) -> Result<Order, Violations> {
        crate::order_intake::parse(body, Some((id, placed_at)))
    }

    /// The order's id.
    pub const fn id(&self) -> OrderId {
        self.id
    }

    /// When the order was accepted.
    pub const fn placed_at(&self) -> DateTime<Utc> {
        self.placed_at
    }

    /// The sales channel.
    pub const fn channel(&self) -> &ChannelId {
        &self.channel
    }

    /// The customer.
    pub const fn customer(&self) -> &Customer {
        &self.customer
    }

    /// The currency of every amount in the order.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// The lines, in request order (line indexes are stable and used by refunds and returns).
    pub fn lines(&self) -> &[OrderLine] {
        &self.lines
    }

    /// Delivery details.
    pub const fn shipping(&self) -> &Shipping {
        &self.shipping
    }

    /// Order-level discounts.
    pub fn discounts(&self) -> &[Discount] {
        &self.discounts
    }

    /// The tax amount.
    pub const fn tax(&self) -> Money {
        self.tax
    }

    /// Whether the prices include the tax (then the grand total does not add it again).
    pub const fn taxes_included(&self) -> bool {
        self.taxes_included
    }

    /// The recomputed totals.
    pub const fn totals(&self) -> &Totals {
        &self.totals
    }

    /// The payment.
    pub const fn payment(&self) -> &Payment {
        &self.payment
    }

    /// Free-form string metadata from the channel.
    pub const fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Units per SKU across the lines to ship (a SKU may appear on several lines): what is
    /// reserved and routed. Unmapped lines (their SKU is not known) and digital goods are
    /// not counted.
    pub fn units_by_sku(&self) -> BTreeMap<Sku, u32> {
        let mut units = BTreeMap::new();
        for line in self
            .lines
            .iter()
            .filter(|l| !l.unmapped && l.requires_shipping)
        {
            *units.entry(line.sku.clone()).or_insert(0) += line.quantity.get();
        }
        units
    }

    /// The lines whose SKU is provisional, with their index.
    pub fn unmapped_lines(&self) -> impl Iterator<Item = (usize, &OrderLine)> {
        self.lines.iter().enumerate().filter(|(_, l)| l.unmapped)
    }

    /// Whether the order is to be delivered but has no address yet (a marketplace order
    /// taken in on an `address_needed` hold).
    pub fn needs_address(&self) -> bool {
        matches!(
            self.shipping.method,
            ShippingMethod::Standard | ShippingMethod::Express
        ) && self.shipping.address.is_none()
    }

    /// Maps unmapped line `index` to `sku` (staff resolved the item): the line keeps its
    /// channel reference and is reserved and routed like any other from then on. `false`
    /// when the line does not exist or is mapped already (nothing changes).
    pub fn map_line(&mut self, index: usize, sku: Sku) -> bool {
        match self.lines.get_mut(index) {
            Some(line) if line.unmapped => {
                line.sku = sku;
                line.unmapped = false;
                true
            }
            _ => false,
        }
    }

    /// Where a delivered order goes, if geocoded; `None` for pickup orders.
    pub fn destination(&self) -> Option<Coordinates> {
        self.shipping
            .address
            .as_ref()
            .and_then(Address::coordinates)
    }
}

impl TryFrom<serde_json::Value> for Order {
    type Error = Violations;
    /// Re-validates a stored order (request shape plus `id` and `placed_at`).
    fn try_from(value: serde_json::Value) -> Result<Self, Violations> {
        crate::order_intake::parse(&value, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Money {
        Money::parse(s, Currency::USD).unwrap()
    }

    fn line(price: &str, qty: u64, discount: &str) -> OrderLine {
        OrderLine::new(
            Sku::parse("SKU-1").unwrap(),
            Quantity::new(qty).unwrap(),
            usd(price),
            usd(discount),
        )
        .unwrap()
    }

    #[test]
    fn line_amounts_are_exact() {
        let l = line("19.99", 3, "2.00");
        assert_eq!(l.gross(), usd("59.97"));
        assert_eq!(l.net(), usd("57.97"));
        assert!(OrderLine::new(
            Sku::parse("S").unwrap(),
            Quantity::ONE,
            usd("1.00"),
            usd("1.01")
        )
        .is_err());
    }

    #[test]
    fn totals_add_up() {
        let lines = [line("19.99", 2, "1.00"), line("0.10", 3, "0.00")];
        let discounts = [Discount {
            code: "WELCOME".into(),
            amount: usd("5.00"),
        }];
        let t = Totals::compute(
            Currency::USD,
            &lines,
            &discounts,
            usd("4.95"),
            usd("3.20"),
            false,
        )
        .unwrap();
        assert_eq!(t.subtotal, usd("40.28"));
        assert_eq!(t.discount, usd("6.00"));
        assert_eq!(t.grand_total, usd("42.43"));
        let too_much = [Discount {
            code: "ALL".into(),
            amount: usd("39.29"),
        }];
        assert_eq!(
            Totals::compute(Currency::USD, &lines, &too_much, usd("0"), usd("0"), false),
            Err(TotalsError::DiscountExceedsLines)
        );
    }

    #[test]
    fn captured_is_zero_until_capture() {
        let mut p = Payment {
            reference: "pi_1".into(),
            status: PaymentStatus::Authorized,
            amount: usd("10.00"),
            captured: None,
        };
        assert!(p.captured().is_zero());
        p.status = PaymentStatus::Captured;
        assert_eq!(p.captured(), usd("10.00"));
        p.status = PaymentStatus::Pending;
        assert!(p.captured().is_zero());
        p.status = PaymentStatus::PartiallyPaid;
        p.captured = Some(usd("4.00"));
        assert_eq!(p.captured(), usd("4.00"));
    }

    #[test]
    fn taxes_included_are_not_added_again() {
        let lines = [line("12.00", 1, "0.00")];
        let t = Totals::compute(Currency::USD, &lines, &[], usd("0"), usd("2.00"), true).unwrap();
        assert_eq!((t.tax, t.grand_total), (usd("2.00"), usd("12.00")));
    }

    #[test]
    fn provisional_skus_name_the_channel_item() {
        let item = |v: Option<&str>, p: Option<&str>| ChannelItem {
            variant_id: v.map(Into::into),
            product_id: p.map(Into::into),
            title: Some("Hat".into()),
        };
        let sku = |i: &ChannelItem| OrderLine::provisional_sku(i, 3).as_str().to_string();
        assert_eq!(
            sku(&item(Some("9007199254740993"), Some("7"))),
            "unmapped-9007199254740993"
        );
        assert_eq!(sku(&item(None, Some("7"))), "unmapped-p7");
        assert_eq!(sku(&item(None, None)), "unmapped-line-3");
        assert_eq!(
            item(Some("1"), Some("2")).describe(),
            "variant 1, product 2 \"Hat\""
        );
    }
}
