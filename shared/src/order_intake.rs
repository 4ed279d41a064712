//! Order intake: turns a raw JSON request body into an [`Order`], reporting every problem with
//! its JSON Pointer instead of stopping at the first (serde's derive would).

use std::collections::BTreeMap;
use std::fmt::Display;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::address::{check_line, Address, AddressError, CountryCode, PostalCode, PostalCodeRule};
use crate::coordinates::{Coordinates, CoordinatesError};
use crate::currency::Currency;
use crate::email::Email;
use crate::idempotency::IdempotencyKey;
use crate::ids::{ChannelId, LocationId, OrderId, Sku};
use crate::money::{Money, MoneyError};
use crate::order::{
    ChannelItem, Customer, Discount, Order, OrderLine, Payment, PaymentStatus, Shipping,
    ShippingMethod, Totals, TotalsError, MAX_DISCOUNTS, MAX_LINES,
};
use crate::quantity::{Quantity, QuantityError};
use crate::violation::{escape_token, Violation, ViolationCode, Violations};

/// The fields an order request may carry (an order view carries them too).
pub(crate) const REQUEST_FIELDS: &[&str] = &[
    "channel",
    "customer",
    "currency",
    "lines",
    "shipping",
    "discounts",
    "tax",
    "taxes_included",
    "totals",
    "payment",
    "metadata",
];
/// A stored order also carries what the system assigned at intake.
pub(crate) const ASSIGNED_FIELDS: &[&str] = &["id", "placed_at"];
const MAX_METADATA_ENTRIES: usize = 50;
const MAX_METADATA_KEY: usize = 40;
const MAX_METADATA_VALUE: usize = 500;
const MAX_NAME: usize = 200;
const MAX_DISCOUNT_CODE: usize = 64;
const MAX_PAYMENT_REFERENCE: usize = 255;
const MAX_CHANNEL_ITEM_FIELD: usize = 255;

fn child(path: &str, key: &str) -> String {
    format!("{path}/{}", escape_token(key))
}

fn money_code(e: &MoneyError) -> ViolationCode {
    match e {
        MoneyError::TooManyDecimals { .. } => ViolationCode::DecimalPlaces,
        MoneyError::Negative(_) => ViolationCode::NegativeAmount,
        MoneyError::TooLarge => ViolationCode::OutOfRange,
        MoneyError::Malformed(_)
        | MoneyError::CurrencyMismatch { .. }
        | MoneyError::Arithmetic(_) => ViolationCode::InvalidFormat,
    }
}

/// Collects violations while walking the document.
#[derive(Default)]
struct Reader {
    out: Vec<Violation>,
    /// Marketplace rules (and stored orders, which may be marketplace orders): e-mail
    /// optional, lines may carry their channel reference (`item`, `unmapped`,
    /// `requires_shipping`), a delivered order may lack its address (taken in on an
    /// `address_needed` hold), `digital` delivery, `pending` and `partially_paid` payments.
    marketplace: bool,
}

impl Reader {
    fn report(&mut self, path: &str, code: ViolationCode, detail: impl Into<String>) {
        self.out.push(Violation::new(path, code, detail));
    }

    /// The value as an object, reporting keys outside `allowed` (sorted, so the report does
    /// not depend on serde_json's map ordering feature).
    fn object<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        allowed: &[&[&str]],
    ) -> Option<&'v Map<String, Value>> {
        let Some(map) = value.as_object() else {
            self.report(path, ViolationCode::InvalidType, "must be a JSON object");
            return None;
        };
        let mut unknown: Vec<&String> = map
            .keys()
            .filter(|k| !allowed.iter().any(|set| set.contains(&k.as_str())))
            .collect();
        unknown.sort();
        for key in unknown {
            self.report(
                &child(path, key),
                ViolationCode::UnknownField,
                format!("unknown field {key:?}"),
            );
        }
        Some(map)
    }

    fn required<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'v Value> {
        match map.get(key) {
            None | Some(Value::Null) => {
                self.report(
                    &child(path, key),
                    ViolationCode::Missing,
                    format!("{key} is required"),
                );
                None
            }
            Some(v) => Some(v),
        }
    }

    /// Absent and `null` both mean "not given".
    fn optional<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
        map.get(key).filter(|v| !v.is_null())
    }

    fn string<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v str> {
        let s = value.as_str();
        if s.is_none() {
            self.report(path, ViolationCode::InvalidType, "must be a string");
        }
        s
    }

    fn parsed<T, E: Display>(
        &mut self,
        value: &Value,
        path: &str,
        code: impl Fn(&E) -> ViolationCode,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let text = self.string(value, path)?;
        parse(text)
            .map_err(|e| self.report(path, code(&e), e.to_string()))
            .ok()
    }

    /// Free text of 1..=max characters without control characters.
    fn text(&mut self, value: &Value, path: &str, max: usize) -> Option<String> {
        let text = self.string(value, path)?;
        if text.trim().is_empty() || text.chars().count() > max {
            self.report(
                path,
                ViolationCode::OutOfRange,
                format!("must be 1 to {max} characters"),
            );
            return None;
        }
        if text.chars().any(char::is_control) {
            self.report(
                path,
                ViolationCode::InvalidFormat,
                "must not contain control characters",
            );
            return None;
        }
        Some(text.to_owned())
    }

    /// A money amount. Without a known currency the text is still checked for shape and
    /// sign, so one bad currency code does not hide every other problem.
    fn money(&mut self, value: &Value, path: &str, currency: Option<Currency>) -> Option<Money> {
        let text = match value {
            Value::String(s) => s,
            Value::Number(_) => {
                self.report(
                    path,
                    ViolationCode::InvalidType,
                    "money amounts must be JSON strings such as \"19.99\", not numbers, so they stay exact",
                );
                return None;
            }
            _ => {
                self.report(
                    path,
                    ViolationCode::InvalidType,
                    "must be a decimal string such as \"19.99\"",
                );
                return None;
            }
        };
        match currency {
            Some(c) => Money::parse(text, c)
                .map_err(|e| self.report(path, money_code(&e), e.to_string()))
                .ok(),
            None => {
                // Highest scale in the table: only shape, sign and range can fail here.
                if let Err(e) = Money::parse(text, Currency::KWD) {
                    if !matches!(e, MoneyError::TooManyDecimals { .. }) {
                        self.report(path, money_code(&e), e.to_string());
                    }
                }
                None
            }
        }
    }

    /// The recomputed totals ([`Totals::compute`]), reporting why they cannot be computed.
    fn totals(
        &mut self,
        currency: Currency,
        lines: &[OrderLine],
        discounts: &[Discount],
        shipping: Money,
        tax: Money,
        taxes_included: bool,
    ) -> Option<Totals> {
        match Totals::compute(currency, lines, discounts, shipping, tax, taxes_included) {
            Ok(t) => Some(t),
            Err(TotalsError::DiscountExceedsLines) => {
                self.report(
                    "/discounts",
                    ViolationCode::DiscountExceedsAmount,
                    "order discounts exceed the lines' value after line discounts",
                );
                None
            }
            Err(TotalsError::OutOfRange) => {
                self.report(
                    "/totals",
                    ViolationCode::OutOfRange,
                    "totals are out of range",
                );
                None
            }
        }
    }

    fn quantity(&mut self, value: &Value, path: &str) -> Option<Quantity> {
        let Value::Number(n) = value else {
            self.report(path, ViolationCode::InvalidType, "must be a whole number");
            return None;
        };
        let result = match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Quantity::new(u),
            (None, Some(_)) => Err(QuantityError::Zero),
            (None, None) => {
                self.report(path, ViolationCode::InvalidType, "must be a whole number");
                return None;
            }
        };
        result
            .map_err(|e| self.report(path, ViolationCode::OutOfRange, e.to_string()))
            .ok()
    }

    fn array<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        min: usize,
        max: usize,
    ) -> Option<&'v [Value]> {
        let Some(items) = value.as_array() else {
            self.report(path, ViolationCode::InvalidType, "must be an array");
            return None;
        };
        if items.len() < min {
            self.report(path, ViolationCode::Empty, "must not be empty");
        } else if items.len() > max {
            self.report(
                path,
                ViolationCode::TooMany,
                format!("at most {max} entries are allowed"),
            );
            return None;
        }
        Some(items)
    }
}

/// Parses an order document. With `assigned`, it is a storefront request body (no
/// `id`/`placed_at` allowed, those are given); without, it is a stored order carrying them.
pub(crate) fn parse(
    body: &Value,
    assigned: Option<(OrderId, DateTime<Utc>)>,
) -> Result<Order, Violations> {
    parse_with(body, assigned, assigned.is_none())
}

/// [`parse`] with the marketplace rules on or off (see [`Reader::marketplace`]).
pub(crate) fn parse_with(
    body: &Value,
    assigned: Option<(OrderId, DateTime<Utc>)>,
    marketplace: bool,
) -> Result<Order, Violations> {
    let mut r = Reader {
        out: Vec::new(),
        marketplace,
    };
    let allowed: &[&[&str]] = match assigned {
        Some(_) => &[REQUEST_FIELDS],
        None => &[REQUEST_FIELDS, ASSIGNED_FIELDS],
    };
    let Some(doc) = r.object(body, "", allowed) else {
        return Err(Violations(r.out));
    };

    let (id, placed_at) = match assigned {
        Some((id, at)) => (Some(id), Some(at)),
        None => {
            let id = r
                .required(doc, "", "id")
                .and_then(|v| r.parsed(v, "/id", |_| ViolationCode::InvalidFormat, OrderId::parse));
            let at = r.required(doc, "", "placed_at").and_then(|v| {
                r.parsed(
                    v,
                    "/placed_at",
                    |_| ViolationCode::InvalidFormat,
                    DateTime::parse_from_rfc3339,
                )
            });
            (id, at.map(|t| t.with_timezone(&Utc)))
        }
    };

    let channel = r.required(doc, "", "channel").and_then(|v| {
        r.parsed(
            v,
            "/channel",
            |_| ViolationCode::InvalidFormat,
            ChannelId::parse,
        )
    });
    let customer = r
        .required(doc, "", "customer")
        .and_then(|v| customer(&mut r, v));
    let currency = r.required(doc, "", "currency").and_then(|v| {
        r.parsed(
            v,
            "/currency",
            |_| ViolationCode::UnknownCurrency,
            Currency::parse,
        )
    });
    let lines = r
        .required(doc, "", "lines")
        .and_then(|v| lines(&mut r, v, currency));
    let shipping = r
        .required(doc, "", "shipping")
        .and_then(|v| shipping(&mut r, v, currency));
    let discounts = match Reader::optional(doc, "discounts") {
        None => Some(Vec::new()),
        Some(v) => discounts(&mut r, v, currency),
    };
    let tax = r
        .required(doc, "", "tax")
        .and_then(|v| r.money(v, "/tax", currency));
    let taxes_included = match Reader::optional(doc, "taxes_included") {
        None => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            r.report(
                "/taxes_included",
                ViolationCode::InvalidType,
                "must be true or false",
            );
            None
        }
    };
    if let (Some(shipping), Some(lines)) = (&shipping, &lines) {
        let shipped = lines.iter().filter(|l| l.requires_shipping()).count();
        if shipping.method == ShippingMethod::Digital && shipped > 0 {
            r.report(
                "/shipping/method",
                ViolationCode::NotAllowed,
                "digital delivery is only for orders where no line requires shipping",
            );
        }
    }
    let claimed = r
        .required(doc, "", "totals")
        .and_then(|v| claimed_totals(&mut r, v, currency));
    let payment = r
        .required(doc, "", "payment")
        .and_then(|v| payment(&mut r, v, currency));
    let metadata = match Reader::optional(doc, "metadata") {
        None => Some(BTreeMap::new()),
        Some(v) => metadata(&mut r, v),
    };

    // Cross-field rules only once every input they need parsed; otherwise they would echo
    // the field-level problems already reported.
    let totals = match (currency, &lines, &discounts, &shipping, tax, taxes_included) {
        (Some(c), Some(lines), Some(discounts), Some(shipping), Some(tax), Some(included)) => {
            r.totals(c, lines, discounts, shipping.amount, tax, included)
        }
        _ => None,
    };
    if let (Some(t), Some(claimed)) = (&totals, &claimed) {
        for (name, computed) in [
            ("subtotal", t.subtotal),
            ("discount", t.discount),
            ("shipping", t.shipping),
            ("tax", t.tax),
            ("grand_total", t.grand_total),
        ] {
            if let Some(given) = claimed.get(name) {
                if *given != computed {
                    r.report(
                        &format!("/totals/{name}"),
                        ViolationCode::TotalMismatch,
                        format!("expected {}, got {}", computed.amount(), given.amount()),
                    );
                }
            }
        }
    }
    if let (Some(t), Some(p)) = (&totals, &payment) {
        if p.amount != t.grand_total {
            r.report(
                "/payment/amount",
                ViolationCode::PaymentMismatch,
                format!(
                    "payment of {} does not equal the grand total {}",
                    p.amount.amount(),
                    t.grand_total.amount()
                ),
            );
        }
    }

    match (
        id,
        placed_at,
        channel,
        customer,
        currency,
        lines,
        shipping,
        discounts,
        (tax, taxes_included),
        totals,
        claimed,
        payment,
        metadata,
    ) {
        (
            Some(id),
            Some(placed_at),
            Some(channel),
            Some(customer),
            Some(currency),
            Some(lines),
            Some(shipping),
            Some(discounts),
            (Some(tax), Some(taxes_included)),
            Some(totals),
            Some(claimed),
            Some(payment),
            Some(metadata),
        ) if r.out.is_empty() && claimed.len() == 5 => Ok(Order {
            id,
            placed_at,
            channel,
            customer,
            currency,
            lines,
            shipping,
            discounts,
            tax,
            taxes_included,
            totals,
            payment,
            metadata,
        }),
        _ => {
            // Every path that yields `None` reports first; this only guards that invariant.
            if r.out.is_empty() {
                r.report("", ViolationCode::InvalidFormat, "order is incomplete");
            }
            Err(Violations(r.out))
        }
    }
}

/// The totals of a cart: the parts of a storefront order that make its totals (`currency`,
/// `lines`, `discounts`, `shipping.amount`, `tax`, `taxes_included`), parsed by the same rules
/// as an order and summed by the same [`Totals::compute`]. The other order fields may be
/// present (a draft order is a cart) and are not read; `shipping`, `tax` and `discounts` are
/// optional (zero, none).
pub(crate) fn quote(body: &Value) -> Result<(Currency, Totals), Violations> {
    let mut r = Reader::default();
    let Some(doc) = r.object(body, "", &[REQUEST_FIELDS]) else {
        return Err(Violations(r.out));
    };
    let currency = r.required(doc, "", "currency").and_then(|v| {
        r.parsed(
            v,
            "/currency",
            |_| ViolationCode::UnknownCurrency,
            Currency::parse,
        )
    });
    let lines = r
        .required(doc, "", "lines")
        .and_then(|v| lines(&mut r, v, currency));
    let discounts = match Reader::optional(doc, "discounts") {
        None => Some(Vec::new()),
        Some(v) => discounts(&mut r, v, currency),
    };
    let shipping = match Reader::optional(doc, "shipping") {
        None => currency.map(Money::zero),
        Some(v) => r
            .object(
                v,
                "/shipping",
                &[&["method", "amount", "address", "pickup_location"]],
            )
            .and_then(|map| match Reader::optional(map, "amount") {
                None => currency.map(Money::zero),
                Some(a) => r.money(a, "/shipping/amount", currency),
            }),
    };
    let tax = match Reader::optional(doc, "tax") {
        None => currency.map(Money::zero),
        Some(v) => r.money(v, "/tax", currency),
    };
    let taxes_included = match Reader::optional(doc, "taxes_included") {
        None => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            r.report(
                "/taxes_included",
                ViolationCode::InvalidType,
                "must be true or false",
            );
            None
        }
    };
    if let (Some(c), Some(lines), Some(discounts), Some(shipping), Some(tax), Some(included)) =
        (currency, &lines, &discounts, shipping, tax, taxes_included)
    {
        if let Some(t) = r.totals(c, lines, discounts, shipping, tax, included) {
            if r.out.is_empty() {
                return Ok((c, t));
            }
        }
    }
    if r.out.is_empty() {
        r.report("", ViolationCode::InvalidFormat, "cart is incomplete");
    }
    Err(Violations(r.out))
}

fn customer(r: &mut Reader, value: &Value) -> Option<Customer> {
    let map = r.object(value, "/customer", &[&["email", "name"]])?;
    let given = if r.marketplace {
        Reader::optional(map, "email")
    } else {
        r.required(map, "/customer", "email")
    };
    let email = match given {
        None if r.marketplace => Some(None),
        None => None,
        Some(v) => r
            .parsed(
                v,
                "/customer/email",
                |_| ViolationCode::InvalidFormat,
                Email::parse,
            )
            .map(Some),
    };
    let name = match Reader::optional(map, "name") {
        None => Some(None),
        Some(v) => r.text(v, "/customer/name", MAX_NAME).map(Some),
    };
    Some(Customer {
        email: email?,
        name: name?,
    })
}

fn lines(r: &mut Reader, value: &Value, currency: Option<Currency>) -> Option<Vec<OrderLine>> {
    let items = r.array(value, "/lines", 1, MAX_LINES)?;
    let parsed: Vec<Option<OrderLine>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| line(r, item, &format!("/lines/{i}"), currency))
        .collect();
    if items.is_empty() {
        return None;
    }
    parsed.into_iter().collect()
}

fn line(
    r: &mut Reader,
    value: &Value,
    path: &str,
    currency: Option<Currency>,
) -> Option<OrderLine> {
    const CHANNEL_FIELDS: &[&str] = &["item", "unmapped", "requires_shipping"];
    let allowed: &[&[&str]] = if r.marketplace {
        &[
            &["sku", "quantity", "unit_price", "discount"],
            CHANNEL_FIELDS,
        ]
    } else {
        &[&["sku", "quantity", "unit_price", "discount"]]
    };
    let map = r.object(value, path, allowed)?;
    let sku = r.required(map, path, "sku").and_then(|v| {
        r.parsed(
            v,
            &child(path, "sku"),
            |_| ViolationCode::InvalidFormat,
            Sku::parse,
        )
    });
    let quantity = r
        .required(map, path, "quantity")
        .and_then(|v| r.quantity(v, &child(path, "quantity")));
    let unit_price = r
        .required(map, path, "unit_price")
        .and_then(|v| r.money(v, &child(path, "unit_price"), currency));
    let discount = match Reader::optional(map, "discount") {
        None => currency.map(Money::zero),
        Some(v) => r.money(v, &child(path, "discount"), currency),
    };
    let item = match Reader::optional(map, "item") {
        None => Some(None),
        Some(v) => channel_item(r, v, &child(path, "item")).map(Some),
    };
    let flag = |r: &mut Reader, key: &str, default: bool| match Reader::optional(map, key) {
        None => Some(default),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            r.report(
                &child(path, key),
                ViolationCode::InvalidType,
                "must be true or false",
            );
            None
        }
    };
    let unmapped = flag(r, "unmapped", false);
    let requires_shipping = flag(r, "requires_shipping", true);
    if unmapped == Some(true) && map.get("item").is_none_or(Value::is_null) {
        r.report(
            &child(path, "item"),
            ViolationCode::Missing,
            "an unmapped line must say which channel item it is",
        );
        return None;
    }
    let (sku, quantity, unit_price, discount) = (sku?, quantity?, unit_price?, discount?);
    let (item, unmapped, requires_shipping) = (item?, unmapped?, requires_shipping?);
    match OrderLine::new(sku, quantity, unit_price, discount) {
        Ok(line) => Some(line.with_channel(item, unmapped, requires_shipping)),
        Err(MoneyError::Arithmetic(_)) => {
            r.report(
                &child(path, "discount"),
                ViolationCode::DiscountExceedsAmount,
                "line discount exceeds quantity × unit_price",
            );
            None
        }
        Err(e) => {
            r.report(path, ViolationCode::OutOfRange, e.to_string());
            None
        }
    }
}

fn channel_item(r: &mut Reader, value: &Value, path: &str) -> Option<ChannelItem> {
    let map = r.object(value, path, &[&["variant_id", "product_id", "title"]])?;
    let mut field = |key: &str| match Reader::optional(map, key) {
        None => Some(None),
        Some(v) => r
            .text(v, &child(path, key), MAX_CHANNEL_ITEM_FIELD)
            .map(Some),
    };
    let (variant_id, product_id, title) =
        (field("variant_id"), field("product_id"), field("title"));
    Some(ChannelItem {
        variant_id: variant_id?,
        product_id: product_id?,
        title: title?,
    })
}

fn shipping(r: &mut Reader, value: &Value, currency: Option<Currency>) -> Option<Shipping> {
    const P: &str = "/shipping";
    let r_marketplace = r.marketplace;
    let map = r.object(
        value,
        P,
        &[&["method", "amount", "address", "pickup_location"]],
    )?;
    let method = r.required(map, P, "method").and_then(|v| {
        r.parsed(
            v,
            "/shipping/method",
            |_| ViolationCode::InvalidFormat,
            |s| match ShippingMethod::parse(s) {
                Some(ShippingMethod::Digital) if !r_marketplace => {
                    Err("must be one of \"standard\", \"express\", \"pickup\"")
                }
                Some(m) => Ok(m),
                None => Err("must be one of \"standard\", \"express\", \"pickup\", \"digital\""),
            },
        )
    });
    let amount = r
        .required(map, P, "amount")
        .and_then(|v| r.money(v, "/shipping/amount", currency));
    let address = match Reader::optional(map, "address") {
        None => Some(None),
        Some(v) => address(r, v, "/shipping/address").map(Some),
    };
    let pickup_location = match Reader::optional(map, "pickup_location") {
        None => Some(None),
        Some(v) => r
            .parsed(
                v,
                "/shipping/pickup_location",
                |_| ViolationCode::InvalidFormat,
                LocationId::parse,
            )
            .map(Some),
    };
    let method = method?;
    let mut consistent = true;
    if method == ShippingMethod::Digital {
        for key in ["address", "pickup_location"] {
            if map.get(key).is_some_and(|v| !v.is_null()) {
                r.report(
                    &child(P, key),
                    ViolationCode::NotAllowed,
                    "digital orders are not delivered",
                );
                consistent = false;
            }
        }
    } else if method == ShippingMethod::Pickup {
        if map.get("pickup_location").is_none_or(Value::is_null) {
            r.report(
                "/shipping/pickup_location",
                ViolationCode::Missing,
                "pickup orders must name the store to collect from",
            );
            consistent = false;
        }
    } else {
        // A marketplace order without its address is taken in on an `address_needed` hold.
        if !r.marketplace && map.get("address").is_none_or(Value::is_null) {
            r.report(
                "/shipping/address",
                ViolationCode::Missing,
                "delivered orders need an address",
            );
            consistent = false;
        }
        if map.get("pickup_location").is_some_and(|v| !v.is_null()) {
            r.report(
                "/shipping/pickup_location",
                ViolationCode::NotAllowed,
                "only pickup orders have a pickup location",
            );
            consistent = false;
        }
    }
    let (amount, address, pickup_location) = (amount?, address?, pickup_location?);
    consistent.then_some(Shipping {
        method,
        amount,
        address,
        pickup_location,
    })
}

fn address(r: &mut Reader, value: &Value, path: &str) -> Option<Address> {
    let map = r.object(
        value,
        path,
        &[&[
            "country",
            "postal_code",
            "line1",
            "line2",
            "city",
            "region",
            "coordinates",
        ]],
    )?;
    let country = r.required(map, path, "country").and_then(|v| {
        r.parsed(
            v,
            &child(path, "country"),
            |_| ViolationCode::UnknownCountry,
            CountryCode::parse,
        )
    });
    let postal_path = child(path, "postal_code");
    // Whether it is required and its format depend on the country ([`PostalCodeRule`]);
    // without a country, only its type is checked.
    let postal = match Reader::optional(map, "postal_code") {
        None => match country {
            Some(c) if PostalCodeRule::of(c).required => {
                r.report(
                    &postal_path,
                    ViolationCode::Missing,
                    format!("addresses in {c} need a postal code"),
                );
                None
            }
            _ => Some(None),
        },
        Some(v) => r.string(v, &postal_path).and_then(|text| {
            let c = country?;
            PostalCode::parse(c, text)
                .map_err(|e| r.report(&postal_path, ViolationCode::InvalidFormat, e.to_string()))
                .ok()
                .map(Some)
        }),
    };
    let line = |r: &mut Reader, field: &'static str, required: bool| -> Option<Option<String>> {
        let v = if required {
            r.required(map, path, field)?
        } else {
            match Reader::optional(map, field) {
                None => return Some(None),
                Some(v) => v,
            }
        };
        r.parsed(
            v,
            &child(path, field),
            |_: &AddressError| ViolationCode::InvalidFormat,
            |s| check_line(field, s),
        )
        .map(Some)
    };
    let line1 = line(r, "line1", true);
    let line2 = line(r, "line2", false);
    let city = line(r, "city", true);
    let region = line(r, "region", false);
    let coordinates = match Reader::optional(map, "coordinates") {
        None => Some(None),
        Some(v) => coordinates(r, v, &child(path, "coordinates")).map(Some),
    };
    let (country, postal, line1, line2, city, region, coordinates) = (
        country?,
        postal?,
        line1??,
        line2?,
        city??,
        region?,
        coordinates?,
    );
    Address::new(
        country,
        postal,
        &line1,
        line2.as_deref(),
        &city,
        region.as_deref(),
        coordinates,
    )
    .map_err(|e| r.report(path, ViolationCode::InvalidFormat, e.to_string()))
    .ok()
}

fn coordinates(r: &mut Reader, value: &Value, path: &str) -> Option<Coordinates> {
    let map = r.object(value, path, &[&["lat", "lon"]])?;
    // Each component is checked on its own so both can be reported at once.
    let component =
        |r: &mut Reader, key: &str, check: fn(f64) -> Result<Coordinates, CoordinatesError>| {
            let v = r.required(map, path, key)?;
            let Some(n) = v.as_f64() else {
                r.report(
                    &child(path, key),
                    ViolationCode::InvalidType,
                    "must be a number",
                );
                return None;
            };
            check(n)
                .map_err(|e| r.report(&child(path, key), ViolationCode::OutOfRange, e.to_string()))
                .ok()
                .map(|_| n)
        };
    let lat = component(r, "lat", |n| Coordinates::new(n, 0.0));
    let lon = component(r, "lon", |n| Coordinates::new(0.0, n));
    Coordinates::new(lat?, lon?).ok()
}

fn discounts(r: &mut Reader, value: &Value, currency: Option<Currency>) -> Option<Vec<Discount>> {
    let items = r.array(value, "/discounts", 0, MAX_DISCOUNTS)?;
    let parsed: Vec<Option<Discount>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("/discounts/{i}");
            let map = r.object(item, &path, &[&["code", "amount"]])?;
            let code = r
                .required(map, &path, "code")
                .and_then(|v| r.text(v, &child(&path, "code"), MAX_DISCOUNT_CODE));
            let amount = r
                .required(map, &path, "amount")
                .and_then(|v| r.money(v, &child(&path, "amount"), currency));
            Some(Discount {
                code: code?,
                amount: amount?,
            })
        })
        .collect();
    parsed.into_iter().collect()
}

fn claimed_totals(
    r: &mut Reader,
    value: &Value,
    currency: Option<Currency>,
) -> Option<BTreeMap<&'static str, Money>> {
    const NAMES: [&str; 5] = ["subtotal", "discount", "shipping", "tax", "grand_total"];
    let map = r.object(value, "/totals", &[&NAMES])?;
    let mut claimed = BTreeMap::new();
    for name in NAMES {
        if let Some(m) = r
            .required(map, "/totals", name)
            .and_then(|v| r.money(v, &child("/totals", name), currency))
        {
            claimed.insert(name, m);
        }
    }
    Some(claimed)
}

fn payment(r: &mut Reader, value: &Value, currency: Option<Currency>) -> Option<Payment> {
    const P: &str = "/payment";
    let allowed: &[&[&str]] = if r.marketplace {
        &[&["reference", "status", "amount", "captured"]]
    } else {
        &[&["reference", "status", "amount"]]
    };
    let map = r.object(value, P, allowed)?;
    let marketplace = r.marketplace;
    let reference = r
        .required(map, P, "reference")
        .and_then(|v| r.text(v, "/payment/reference", MAX_PAYMENT_REFERENCE));
    let status = r.required(map, P, "status").and_then(|v| {
        r.parsed(
            v,
            "/payment/status",
            |_| ViolationCode::InvalidFormat,
            |s| match PaymentStatus::parse(s) {
                Some(p @ (PaymentStatus::Authorized | PaymentStatus::Captured)) => Ok(p),
                Some(p) if marketplace => Ok(p),
                _ if marketplace => {
                    Err("must be \"authorized\", \"captured\", \"pending\" or \"partially_paid\"")
                }
                _ => Err("must be \"authorized\" or \"captured\""),
            },
        )
    });
    let amount = r
        .required(map, P, "amount")
        .and_then(|v| r.money(v, "/payment/amount", currency));
    let captured = match Reader::optional(map, "captured") {
        None => Some(None),
        Some(v) => r.money(v, "/payment/captured", currency).map(Some),
    };
    let (status, amount, captured) = (status?, amount?, captured?);
    match (status, captured) {
        (PaymentStatus::PartiallyPaid, None) => {
            r.report(
                "/payment/captured",
                ViolationCode::Missing,
                "a partially paid order says how much is captured",
            );
            return None;
        }
        (PaymentStatus::PartiallyPaid, Some(c)) if c.amount() > amount.amount() => {
            r.report(
                "/payment/captured",
                ViolationCode::OutOfRange,
                "more is captured than the payment's amount",
            );
            return None;
        }
        (PaymentStatus::PartiallyPaid, _) | (_, None) => {}
        (_, Some(_)) => {
            r.report(
                "/payment/captured",
                ViolationCode::NotAllowed,
                "only partially paid orders give a captured amount",
            );
            return None;
        }
    }
    Some(Payment {
        reference: reference?,
        status,
        amount,
        captured,
    })
}

fn metadata(r: &mut Reader, value: &Value) -> Option<BTreeMap<String, String>> {
    let Some(map) = value.as_object() else {
        r.report(
            "/metadata",
            ViolationCode::InvalidType,
            "must be an object of strings",
        );
        return None;
    };
    if map.len() > MAX_METADATA_ENTRIES {
        r.report(
            "/metadata",
            ViolationCode::TooMany,
            format!("at most {MAX_METADATA_ENTRIES} entries are allowed"),
        );
        return None;
    }
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, v) in entries {
        let path = child("/metadata", key);
        if key.is_empty() || key.chars().count() > MAX_METADATA_KEY {
            r.report(
                &path,
                ViolationCode::OutOfRange,
                format!("keys must be 1 to {MAX_METADATA_KEY} characters"),
            );
            ok = false;
            continue;
        }
        match v.as_str() {
            Some(s) if s.chars().count() <= MAX_METADATA_VALUE => {
                out.insert(key.clone(), s.to_owned());
            }
            Some(_) => {
                r.report(
                    &path,
                    ViolationCode::OutOfRange,
                    format!("values must be at most {MAX_METADATA_VALUE} characters"),
                );
                ok = false;
            }
            None => {
                r.report(
                    &path,
                    ViolationCode::InvalidType,
                    "metadata values must be strings",
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Namespace of the UUIDv5 order ids derived from an intent. Fixed forever: a new value would
/// give a retried intent a second order.
const INTENT_NAMESPACE: Uuid = Uuid::from_u128(0x0b1c_5e9a_7d2f_4c61_9e38_a4f0_2d6b_8c17);

impl OrderId {
    /// The id of the storefront order placed on `channel` with this `Idempotency-Key`:
    /// UUIDv5 of `"storefront:{channel}:{key}"`, so any retry of the request — after a crash,
    /// a 504 or a lost response — names the same order.
    ///
    /// The scope is the channel until callers have their own identity (issue 12 adds the
    /// caller to the scope: two storefronts must not share a key space).
    pub fn for_storefront(channel: &ChannelId, key: &IdempotencyKey) -> OrderId {
        OrderId::from_intent(&format!("storefront:{channel}:{}", key.as_str()))
    }

    /// The id of the marketplace order a channel knows as `external` (its own order id or
    /// webhook id): UUIDv5 of `"marketplace:{channel}:{external}"`, so every redelivery names
    /// the same order and no separate claim record is needed.
    pub fn for_marketplace(channel: &ChannelId, external: &str) -> OrderId {
        OrderId::from_intent(&format!("marketplace:{channel}:{external}"))
    }

    fn from_intent(intent: &str) -> OrderId {
        OrderId::new(Uuid::new_v5(&INTENT_NAMESPACE, intent.as_bytes()))
    }
}

impl Order {
    /// Parses a storefront order request whose id comes from its intent
    /// ([`OrderId::for_storefront`] over the body's channel and the key).
    ///
    /// # Errors
    /// [`Violations`] as [`Order::from_request`].
    pub fn from_storefront_request(
        body: &Value,
        key: &IdempotencyKey,
        placed_at: DateTime<Utc>,
    ) -> Result<Order, Violations> {
        // The id needs the channel, which only a successful parse vouches for.
        let mut order = parse(body, Some((OrderId::new(Uuid::nil()), placed_at)))?;
        order.id = OrderId::for_storefront(&order.channel, key);
        Ok(order)
    }

    /// Parses a marketplace order document (what a channel's delivery maps to) under the
    /// marketplace rules: e-mail optional, lines may carry their channel reference and be
    /// unmapped ([`OrderLine`]), a delivered order may lack its address
    /// ([`Order::needs_address`]), `digital` delivery, `pending` and `partially_paid`
    /// payments (with `payment.captured`). The caller places the holds these call for.
    ///
    /// # Errors
    /// [`Violations`] as [`Order::from_request`].
    pub fn from_marketplace_request(
        body: &Value,
        id: OrderId,
        placed_at: DateTime<Utc>,
    ) -> Result<Order, Violations> {
        parse_with(body, Some((id, placed_at)), true)
    }

    /// Whether `other` is the same request as this order (every field but the id and the
    /// time it was placed): a retry of the intent that created this order, not another
    /// order reusing its key.
    pub fn same_request(&self, other: &Order) -> bool {
        let mut other = other.clone();
        other.id = self.id;
        other.placed_at = self.placed_at;
        *self == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;
    use uuid::Uuid;

    fn body() -> Value {
        json!({
            "channel": "web",
            "customer": {"email": "a@example.com"},
            "currency": "USD",
            "lines": [{"sku": "A", "quantity": 2, "unit_price": "1.25"}],
            "shipping": {"method": "pickup", "amount": "0", "pickup_location": "store-1"},
            "tax": "0.10",
            "totals": {"subtotal": "2.50", "discount": "0", "shipping": "0", "tax": "0.10", "grand_total": "2.60"},
            "payment": {"reference": "p", "status": "authorized", "amount": "2.60"}
        })
    }

    fn assigned() -> Option<(OrderId, DateTime<Utc>)> {
        Some((
            OrderId::new(Uuid::from_u128(9)),
            Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        ))
    }

    fn problems(v: &Value) -> Vec<(String, ViolationCode)> {
        parse(v, assigned())
            .unwrap_err()
            .0
            .into_iter()
            .map(|v| (v.field, v.code))
            .collect()
    }

    #[test]
    fn accepts_a_minimal_order_and_defaults_optional_parts() {
        let order = parse(&body(), assigned()).unwrap();
        assert!(order.discounts().is_empty());
        assert!(order.metadata().is_empty());
        assert!(order.lines()[0].discount().is_zero());
        assert_eq!(order.totals().grand_total.amount().to_string(), "2.60");
        // null is the same as absent for optional fields.
        let mut v = body();
        v["metadata"] = Value::Null;
        v["discounts"] = Value::Null;
        assert!(parse(&v, assigned()).is_ok());
    }

    #[test]
    fn stored_orders_carry_id_and_time_and_requests_may_not() {
        let order = parse(&body(), assigned()).unwrap();
        let stored = serde_json::to_value(&order).unwrap();
        assert_eq!(stored["id"], "00000000-0000-0000-0000-000000000009");
        assert_eq!(stored["placed_at"], "2025-01-01T00:00:00Z");
        assert_eq!(parse(&stored, None).unwrap(), order);
        assert_eq!(
            problems(&stored),
            [
                ("/id".to_owned(), ViolationCode::UnknownField),
                ("/placed_at".to_owned(), ViolationCode::UnknownField)
            ]
        );
        let mut missing = stored.clone();
        missing.as_object_mut().unwrap().remove("id");
        assert!(parse(&missing, None)
            .unwrap_err()
            .contains("/id", ViolationCode::Missing));
    }

    #[test]
    fn money_numbers_get_a_clear_message() {
        let mut v = body();
        v["tax"] = json!(0.1);
        let err = parse(&v, assigned()).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].field, "/tax");
        assert!(
            err.0[0].detail.contains("not numbers"),
            "{}",
            err.0[0].detail
        );
    }

    #[test]
    fn pointer_tokens_in_unknown_keys_are_escaped() {
        let mut v = body();
        v["a/b~c"] = json!(1);
        assert_eq!(
            problems(&v),
            [("/a~1b~0c".to_owned(), ViolationCode::UnknownField)]
        );
    }

    #[test]
    fn collection_limits() {
        let mut v = body();
        v["lines"] = Value::Array(vec![body()["lines"][0].clone(); MAX_LINES + 1]);
        assert_eq!(
            problems(&v),
            [("/lines".to_owned(), ViolationCode::TooMany)]
        );
        let mut v = body();
        let many: Map<String, Value> = (0..=MAX_METADATA_ENTRIES)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect();
        v["metadata"] = Value::Object(many);
        assert_eq!(
            problems(&v),
            [("/metadata".to_owned(), ViolationCode::TooMany)]
        );
        let mut v = body();
        v["metadata"] = json!({"k": "x".repeat(MAX_METADATA_VALUE + 1)});
        assert_eq!(
            problems(&v),
            [("/metadata/k".to_owned(), ViolationCode::OutOfRange)]
        );
    }

    #[test]
    fn huge_totals_are_out_of_range_not_a_panic() {
        let mut v = body();
        let line = json!({"sku": "A", "quantity": 10_000, "unit_price": "999999999999.99"});
        v["lines"] = Value::Array(vec![line; 200]);
        let got = problems(&v);
        assert!(
            got.iter().any(|(_, c)| *c == ViolationCode::OutOfRange),
            "{got:?}"
        );
    }

    #[test]
    fn intent_ids_are_stable_and_scoped_by_channel_and_key() {
        let web = ChannelId::parse("web").unwrap();
        let app = ChannelId::parse("app").unwrap();
        let k1 = IdempotencyKey::parse("k-1").unwrap();
        let k2 = IdempotencyKey::parse("k-2").unwrap();
        assert_eq!(
            OrderId::for_storefront(&web, &k1),
            OrderId::for_storefront(&web, &k1)
        );
        assert_ne!(
            OrderId::for_storefront(&web, &k1),
            OrderId::for_storefront(&web, &k2)
        );
        assert_ne!(
            OrderId::for_storefront(&web, &k1),
            OrderId::for_storefront(&app, &k1)
        );
        assert_ne!(
            OrderId::for_storefront(&web, &k1),
            OrderId::for_marketplace(&web, "k-1"),
            "a storefront key and a marketplace id never collide"
        );
        assert_eq!(
            OrderId::for_marketplace(&web, "9"),
            OrderId::for_marketplace(&web, "9")
        );
        // Fixed forever: a new namespace would give every retried intent a second order.
        assert_eq!(
            OrderId::for_marketplace(&web, "9").to_string(),
            OrderId::new(Uuid::new_v5(
                &Uuid::from_u128(0x0b1c_5e9a_7d2f_4c61_9e38_a4f0_2d6b_8c17),
                b"marketplace:web:9"
            ))
            .to_string()
        );
    }

    #[test]
    fn marketplace_rules_are_for_marketplace_orders_only() {
        let mut v = body();
        v["customer"] = json!({});
        v["lines"][0]["item"] = json!({"variant_id": "9007199254740993", "title": "Hat"});
        v["lines"][0]["unmapped"] = json!(true);
        v["shipping"] = json!({"method": "standard", "amount": "0"});
        v["payment"]["status"] = json!("partially_paid");
        v["payment"]["captured"] = json!("1.00");
        let (id, at) = assigned().unwrap();
        let order = parse_with(&v, Some((id, at)), true).unwrap();
        assert!(order.customer().email().is_none() && order.needs_address());
        assert_eq!(order.unmapped_lines().count(), 1);
        assert_eq!(order.payment().captured().amount().to_string(), "1.00");
        assert_eq!(
            problems(&v),
            [
                ("/customer/email".to_owned(), ViolationCode::Missing),
                ("/lines/0/item".to_owned(), ViolationCode::UnknownField),
                ("/lines/0/unmapped".to_owned(), ViolationCode::UnknownField),
                ("/shipping/address".to_owned(), ViolationCode::Missing),
                ("/payment/captured".to_owned(), ViolationCode::UnknownField),
                ("/payment/status".to_owned(), ViolationCode::InvalidFormat),
            ]
        );
        let mut unnamed = v.clone();
        unnamed["lines"][0].as_object_mut().unwrap().remove("item");
        assert!(parse_with(&unnamed, Some((id, at)), true)
            .unwrap_err()
            .contains("/lines/0/item", ViolationCode::Missing));
        let mut digital = v.clone();
        digital["shipping"]["method"] = json!("digital");
        assert!(parse_with(&digital, Some((id, at)), true)
            .unwrap_err()
            .contains("/shipping/method", ViolationCode::NotAllowed));
        digital["lines"][0]["requires_shipping"] = json!(false);
        assert!(parse_with(&digital, Some((id, at)), true).is_ok());
    }

    #[test]
    fn taxes_included_are_part_of_the_prices() {
        let mut v = body();
        v["taxes_included"] = json!(true);
        v["totals"]["grand_total"] = json!("2.50");
        v["payment"]["amount"] = json!("2.50");
        let order = parse(&v, assigned()).unwrap();
        assert!(order.taxes_included());
        assert_eq!(order.totals().grand_total.amount().to_string(), "2.50");
        assert_eq!(order.tax().amount().to_string(), "0.10");
    }

    #[test]
    fn addresses_without_postal_codes_where_the_country_has_none() {
        let mut v = body();
        v["shipping"] = json!({"method": "standard", "amount": "0",
            "address": {"country": "HK", "line1": "88 Nathan Road", "city": "Kowloon"}});
        assert!(parse(&v, assigned()).is_ok());
        v["shipping"]["address"]["country"] = json!("GB");
        assert_eq!(
            problems(&v),
            [(
                "/shipping/address/postal_code".to_owned(),
                ViolationCode::Missing
            )]
        );
    }

    #[test]
    fn a_storefront_order_is_named_by_its_intent_and_compared_as_a_request() {
        let key = IdempotencyKey::parse("k-1").unwrap();
        let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let order = Order::from_storefront_request(&body(), &key, at).unwrap();
        let web = ChannelId::parse("web").unwrap();
        assert_eq!(order.id(), OrderId::for_storefront(&web, &key));
        let later =
            Order::from_storefront_request(&body(), &key, at + chrono::Duration::hours(1)).unwrap();
        assert!(
            order.same_request(&later),
            "a retry later is the same request"
        );
        let mut other = body();
        other["payment"]["reference"] = json!("q");
        let other = Order::from_storefront_request(&other, &key, at).unwrap();
        assert!(!order.same_request(&other));
        let mut bad = body();
        bad["channel"] = json!("no spaces allowed");
        assert!(Order::from_storefront_request(&bad, &key, at).is_err());
    }
}
