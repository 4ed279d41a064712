//! Shopify deliveries: the `X-Shopify-Hmac-Sha256` signature (base64 HMAC-SHA256 of the raw
//! body with the app's secret), the topic, and the mapping of Shopify's order payload
//! (`orders/create`, `orders/cancelled`: the same order object) to our order document as
//! real deliveries look.
//!
//! # Mapping decisions
//!
//! - **Money set.** Every amount is taken in the *shop* currency: `*_set.shop_money` where
//!   the payload has it (`price_set`, `amount_set` of discount allocations,
//!   `discounted_price_set` of shipping lines, `total_tax_set`, `total_price_set`,
//!   `total_line_items_price_set`), else the plain field, which Shopify also gives in shop
//!   money. The order's currency is `total_price_set.shop_money.currency_code` (else
//!   `currency`). What the buyer saw in another currency (`presentment_currency` ≠ shop
//!   currency) is kept in the metadata (`shopify_presentment_currency`,
//!   `shopify_presentment_total`) — never mixed into the totals. Refunds, stock value and
//!   reports then all speak the merchant's currency, as Shopify's own payouts do.
//! - **Discounts.** Shopify allocates every line-targeted discount application (codes,
//!   automatic, manual, order-level "across" ones) to the lines it touches:
//!   a line's discount is the sum of its `discount_allocations` (else its
//!   `total_discount`). Shipping discounts are in the shipping line's `discounted_price`.
//!   The codes are kept in the metadata (`shopify_discount_codes`). Totals then check
//!   exactly: subtotal = `total_line_items_price`, grand total = `total_price`.
//! - **Taxes included.** `taxes_included: true` maps to our `taxes_included`: `total_tax`
//!   is the part of the prices that is tax and is not added again.
//! - **Payment.** `financial_status` `paid` → captured; `authorized` → authorized;
//!   `pending` (or missing/unknown) → pending on a `payment_pending` hold; `partially_paid`
//!   → partially paid with `captured = total_price − total_outstanding` on a
//!   `payment_pending` hold; `voided` (or a payload with `cancelled_at`) → taken in and
//!   cancelled at once (the order is visible, nothing is reserved; see
//!   [`crate::marketplace`]); `refunded`/`partially_refunded` at creation → 422 (money
//!   already went back: not an order to fulfil).
//! - **Lines without a usable SKU** (empty, or not a SKU we can store) resolve through the
//!   channel's alias table (variant, then product); failing that the line is kept unmapped
//!   and the order goes on an `unmapped_item` hold naming it.
//! - **Addresses.** `shipping_address: null` with no line requiring shipping → `digital`;
//!   otherwise (local pickup, draft orders) the order goes on an `address_needed` hold, and
//!   so does an address that does not pass our per-country rules (missing city, a postal
//!   code that does not fit, no country): the order is never lost for its address.
//! - **Customer.** E-mail from `email`, else `contact_email`, else `customer.email`; an
//!   empty or unusable one is left out (`customer: null` is normal for POS and some apps).
//! - **Ids** (order, variant, product) are read from the raw JSON as integers or strings and
//!   written as strings: ids above 2^53 keep every digit.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use oms_domain::{
    Address, ChannelId, ChannelItem, CountryCode, Currency, Email, HoldReason, OrderLine,
    PostalCode, PostalCodeRule, Sku, Violation, ViolationCode,
};
use oms_edge::{FunctionError, Problem};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use sha2::Sha256;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Shopify-Hmac-Sha256";
/// The topic header (`orders/create` …).
pub const TOPIC_HEADER: &str = "X-Shopify-Topic";
/// The event header: the same for every delivery attempt of one event (the de-duplication
/// key), unlike `X-Shopify-Webhook-Id`, which changes per attempt.
pub const EVENT_ID_HEADER: &str = "X-Shopify-Event-Id";

fn unauthorized(reason: &str) -> FunctionError {
    crate::marketplace::unauthorized(SIGNATURE_HEADER, reason)
}

/// Checks the signature of a delivery (constant-time comparison).
///
/// # Errors
/// 401 naming the header when it is missing, not base64, or does not match the body.
pub fn verify(signature: Option<&str>, body: &[u8], secret: &str) -> Result<(), FunctionError> {
    let signature = signature.ok_or_else(|| unauthorized("the signature header is missing"))?;
    let given = B64
        .decode(signature.trim())
        .map_err(|_| unauthorized("the signature is not base64"))?;
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| unauthorized("the signature does not match the body"))
}

/// What a delivery is about (`X-Shopify-Topic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `orders/create`: take the order in.
    OrdersCreate,
    /// `orders/cancelled`: cancel it.
    OrdersCancelled,
    /// Any other topic the app may be subscribed to: answered `200 ignored`.
    Other(String),
}

impl Topic {
    /// The topic of a delivery. A delivery without the header is taken as `orders/create`
    /// (what integrations that predate the header send); that is safe even for a
    /// cancellation's body, which carries `cancelled_at` and is then taken in cancelled.
    pub fn parse(header: Option<&str>) -> Topic {
        match header.map(str::trim) {
            None | Some("" | "orders/create") => Topic::OrdersCreate,
            Some("orders/cancelled") => Topic::OrdersCancelled,
            Some(other) => Topic::Other(other.chars().take(100).collect()),
        }
    }
}

/// Shopify's id of the order (`id`, a number or a string): the external id of the delivery.
///
/// # Errors
/// 422 naming `/id` when it is missing or empty.
pub fn external_id(payload: &Map<String, Value>) -> Result<String, FunctionError> {
    id_text(payload.get("id").unwrap_or(&Value::Null)).ok_or_else(|| {
        Problem::field(
            422,
            "validation",
            "Invalid request",
            "/id",
            "missing",
            "the Shopify order id is required",
        )
        .into()
    })
}

/// An id as text: integers exactly as sent (serde_json keeps every digit of a u64), strings
/// as they are.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// The order a Shopify payload maps to, and what intake must do with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// Our order document (for `Order::from_marketplace_request`).
    pub order: Value,
    /// Holds to place at take-in, with their notes.
    pub holds: Vec<(HoldReason, String)>,
    /// Why the order is to be cancelled at once (voided payment, cancelled on Shopify).
    pub cancelled: Option<String>,
}

/// Reads the payload, collecting every problem with its pointer into the Shopify payload.
struct Reader<'p> {
    p: &'p Value,
    out: Vec<Violation>,
    currency: Option<Currency>,
}

impl Reader<'_> {
    fn report(&mut self, path: &str, code: ViolationCode, detail: impl Into<String>) {
        self.out.push(Violation::new(path, code, detail));
    }

    /// An amount of `obj` in shop money: `{field}_set.shop_money.amount`, else `{field}`;
    /// `None` (reported) when present but not a decimal, `Some(None)` when absent.
    fn amount(&mut self, obj: &Value, field: &str, path: &str) -> Option<Option<Decimal>> {
        let set = &obj[format!("{field}_set")]["shop_money"]["amount"];
        let (v, at) = if set.is_null() {
            (&obj[field], format!("{path}/{field}"))
        } else {
            (set, format!("{path}/{field}_set/shop_money/amount"))
        };
        let text = match v {
            Value::Null => return Some(None),
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        match text.parse::<Decimal>() {
            Ok(d) if d.is_sign_negative() => {
                self.report(&at, ViolationCode::NegativeAmount, "must not be negative");
                None
            }
            Ok(d) => Some(Some(d)),
            Err(_) => {
                self.report(
                    &at,
                    ViolationCode::InvalidFormat,
                    "expected a decimal amount",
                );
                None
            }
        }
    }

    /// An amount that must be present.
    fn required_amount(&mut self, obj: &Value, field: &str, path: &str) -> Option<Decimal> {
        match self.amount(obj, field, path)? {
            Some(d) => Some(d),
            None => {
                self.report(
                    &format!("{path}/{field}"),
                    ViolationCode::Missing,
                    format!("{field} is required"),
                );
                None
            }
        }
    }

    /// An amount written at the currency's scale (`19.9` → `"19.90"`, JPY `1000.00` →
    /// `"1000"`); more precision than the currency has is reported.
    fn text(&mut self, d: Decimal, path: &str) -> String {
        let Some(c) = self.currency else {
            return d.to_string();
        };
        let mut scaled = d.round_dp(c.minor_units());
        if scaled != d {
            self.report(
                path,
                ViolationCode::DecimalPlaces,
                format!("{d} has more decimals than {} allows", c.code()),
            );
        }
        scaled.rescale(c.minor_units());
        scaled.to_string()
    }

    fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
        v[key].as_str().map(str::trim).filter(|s| !s.is_empty())
    }
}

/// Maps Shopify's order payload to our order document; `resolve` finds the SKU of a line
/// whose own SKU is empty or unusable (the channel's alias table).
///
/// # Errors
/// 422 listing every problem (pointers into the Shopify payload) for a payload that cannot
/// be mapped: no lines, an amount that is not a decimal, no currency, a refunded order;
/// `resolve`'s error (storage).
pub fn map_order(
    channel: &ChannelId,
    p: &Value,
    mut resolve: impl FnMut(&ChannelItem) -> Result<Option<Sku>, FunctionError>,
) -> Result<Mapped, FunctionError> {
    let mut r = Reader {
        p,
        out: Vec::new(),
        currency: None,
    };
    let mut holds = Vec::new();
    let mut metadata = Map::new();

    let code = r.p["total_price_set"]["shop_money"]["currency_code"]
        .as_str()
        .or_else(|| r.p["currency"].as_str());
    match code.map(Currency::parse) {
        Some(Ok(c)) => r.currency = Some(c),
        Some(Err(e)) => r.report("/currency", ViolationCode::UnknownCurrency, e.to_string()),
        None => r.report(
            "/currency",
            ViolationCode::Missing,
            "the shop currency is required",
        ),
    }

    // Lines.
    let items = match p["line_items"].as_array() {
        Some(items) if !items.is_empty() => items.as_slice(),
        _ => {
            r.report(
                "/line_items",
                ViolationCode::Empty,
                "an order has at least one line",
            );
            &[]
        }
    };
    let mut lines = Vec::new();
    let mut unmapped = Vec::new();
    let mut line_discounts = Decimal::ZERO;
    let mut line_gross = Decimal::ZERO;
    let mut any_shipped = false;
    for (i, item) in items.iter().enumerate() {
        let path = format!("/line_items/{i}");
        let quantity = match item["quantity"].as_u64() {
            Some(q) if q > 0 => Some(q),
            _ => {
                r.report(
                    &format!("{path}/quantity"),
                    ViolationCode::OutOfRange,
                    "must be a whole number of at least 1",
                );
                None
            }
        };
        let price = r.required_amount(item, "price", &path);
        let discount = match item["discount_allocations"].as_array() {
            Some(allocations) if !allocations.is_empty() => {
                let mut sum = Some(Decimal::ZERO);
                for (j, a) in allocations.iter().enumerate() {
                    let at = format!("{path}/discount_allocations/{j}");
                    let amount = r.required_amount(a, "amount", &at);
                    sum = sum.zip(amount).map(|(s, a)| s + a);
                }
                sum
            }
            _ => r
                .amount(item, "total_discount", &path)
                .map(Option::unwrap_or_default),
        };
        let requires_shipping = item["requires_shipping"].as_bool().unwrap_or(true);
        any_shipped |= requires_shipping;
        let channel_item = ChannelItem {
            variant_id: id_text(&item["variant_id"]),
            product_id: id_text(&item["product_id"]),
            title: Reader::str_at(item, "name")
                .or_else(|| Reader::str_at(item, "title"))
                .map(|t| t.chars().take(255).collect()),
        };
        let own = Reader::str_at(item, "sku");
        let sku = match own.map(Sku::parse) {
            Some(Ok(sku)) => Some(sku),
            _ => resolve(&channel_item)?,
        };
        let (Some(quantity), Some(price), Some(discount)) = (quantity, price, discount) else {
            continue;
        };
        line_discounts += discount;
        line_gross += price * Decimal::from(quantity);
        let mut line = json!({
            "quantity": quantity,
            "unit_price": r.text(price, &format!("{path}/price")),
            "discount": r.text(discount, &format!("{path}/discount_allocations")),
            "item": channel_item,
        });
        match sku {
            Some(sku) => line["sku"] = json!(sku),
            None => {
                line["sku"] = json!(OrderLine::provisional_sku(&channel_item, i));
                line["unmapped"] = json!(true);
                let why = match own {
                    Some(s) => format!("SKU {s:?} is not a usable SKU and has no alias"),
                    None => "no SKU and no alias".into(),
                };
                unmapped.push(format!("line {i} ({}): {why}", channel_item.describe()));
            }
        }
        if !requires_shipping {
            line["requires_shipping"] = json!(false);
        }
        lines.push(line);
    }
    if !unmapped.is_empty() {
        holds.push((HoldReason::UnmappedItem, note(&unmapped.join("; "))));
    }

    // Shipping: what the buyer pays after shipping discounts.
    let mut shipping = Decimal::ZERO;
    let mut shipping_titles = Vec::new();
    for (i, l) in p["shipping_lines"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = format!("/shipping_lines/{i}");
        let amount = match r.amount(l, "discounted_price", &path) {
            Some(Some(d)) => Some(d),
            Some(None) => r.required_amount(l, "price", &path),
            None => None,
        };
        shipping += amount.unwrap_or_default();
        if let Some(t) = Reader::str_at(l, "title").or_else(|| Reader::str_at(l, "code")) {
            shipping_titles.push(t.to_string());
        }
    }
    let shipping_text = r.text(shipping, "/shipping_lines");
    let mut delivery = json!({"method": "standard", "amount": shipping_text});
    match address(&p["shipping_address"]) {
        Ok(Some(a)) => delivery["address"] = a,
        Ok(None) if !any_shipped => delivery["method"] = json!("digital"),
        Ok(None) => holds.push((
            HoldReason::AddressNeeded,
            note(&match shipping_titles.first() {
                Some(t) => format!("Shopify sent no shipping address (shipping: {t})"),
                None => "Shopify sent no shipping address".into(),
            }),
        )),
        Err(why) => holds.push((
            HoldReason::AddressNeeded,
            note(&format!("the shipping address is not deliverable: {why}")),
        )),
    }

    // Totals in shop money.
    // Shopify always sends these; integrations that build the payload themselves may not:
    // the line sum is then the claim and the tax zero (the grand total still checks).
    let subtotal = r
        .amount(p, "total_line_items_price", "")
        .map(|given| given.unwrap_or(line_gross));
    let tax = r.amount(p, "total_tax", "").flatten().unwrap_or_default();
    let total = r.required_amount(p, "total_price", "");
    let taxes_included = p["taxes_included"].as_bool().unwrap_or(false);

    // Payment.
    let (status, captured) = payment(&mut r, total, &mut holds);
    let cancelled = match (
        p["financial_status"].as_str(),
        Reader::str_at(p, "cancelled_at"),
    ) {
        (Some("voided"), _) => Some("the payment was voided on Shopify".to_string()),
        (_, Some(_)) => Some(format!(
            "cancelled on Shopify ({})",
            Reader::str_at(p, "cancel_reason").unwrap_or("no reason given")
        )),
        _ => None,
    };

    // Customer.
    let email = [
        Reader::str_at(p, "email"),
        Reader::str_at(p, "contact_email"),
        Reader::str_at(&p["customer"], "email"),
    ]
    .into_iter()
    .flatten()
    .find_map(|e| Email::parse(e).ok());
    let name = [
        &p["customer"],
        &p["shipping_address"],
        &p["billing_address"],
    ]
    .into_iter()
    .find_map(|who| {
        let full = [
            Reader::str_at(who, "first_name"),
            Reader::str_at(who, "last_name"),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        Some(full)
            .filter(|n| !n.is_empty())
            .or_else(|| Reader::str_at(who, "name").map(str::to_string))
    });
    let mut customer = json!({});
    if let Some(e) = email {
        customer["email"] = json!(e);
    }
    if let Some(n) = name {
        customer["name"] = json!(n.chars().take(200).collect::<String>());
    }

    // Traceability.
    let id = id_text(&p["id"]).unwrap_or_default();
    metadata.insert("shopify_order_id".into(), json!(id));
    for (key, field) in [
        ("shopify_order_name", "name"),
        ("shopify_source_name", "source_name"),
        ("shopify_financial_status", "financial_status"),
    ] {
        if let Some(v) = Reader::str_at(p, field) {
            metadata.insert(key.into(), json!(v.chars().take(500).collect::<String>()));
        }
    }
    let presentment = p["total_price_set"]["presentment_money"]["currency_code"]
        .as_str()
        .or_else(|| p["presentment_currency"].as_str());
    if let (Some(pc), Some(c)) = (presentment, r.currency) {
        if pc != c.code() {
            metadata.insert("shopify_presentment_currency".into(), json!(pc));
            if let Some(a) = p["total_price_set"]["presentment_money"]["amount"].as_str() {
                metadata.insert("shopify_presentment_total".into(), json!(a));
            }
        }
    }
    let codes: Vec<&str> = p["discount_applications"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|a| Reader::str_at(a, "code").or_else(|| Reader::str_at(a, "title")))
        .collect();
    if !codes.is_empty() {
        let joined: String = codes.join(", ").chars().take(500).collect();
        metadata.insert("shopify_discount_codes".into(), json!(joined));
    }
    if let Some(t) = shipping_titles.first() {
        metadata.insert(
            "shopify_shipping".into(),
            json!(t.chars().take(500).collect::<String>()),
        );
    }

    if !r.out.is_empty() {
        return Err(Problem::invalid(
            "the Shopify order cannot be mapped (fields refer to the Shopify payload)",
            &r.out,
        )
        .into());
    }
    let (subtotal, total) = (subtotal.unwrap_or_default(), total.unwrap_or_default());
    let mut pay = json!({
        "reference": format!("shopify:{id}"),
        "status": status,
        "amount": r.text(total, "/total_price"),
    });
    if let Some(c) = captured {
        pay["captured"] = json!(r.text(c, "/total_outstanding"));
    }
    let tax_text = r.text(tax, "/total_tax");
    let order = json!({
        "channel": channel.as_str(),
        "customer": customer,
        "currency": r.currency.map(|c| c.code()),
        "lines": lines,
        "shipping": delivery,
        "discounts": [],
        "tax": tax_text,
        "taxes_included": taxes_included,
        "totals": {
            "subtotal": r.text(subtotal, "/total_line_items_price"),
            "discount": r.text(line_discounts, "/total_discounts"),
            "shipping": shipping_text,
            "tax": tax_text,
            "grand_total": r.text(total, "/total_price"),
        },
        "payment": pay,
        "metadata": metadata,
    });
    if !r.out.is_empty() {
        return Err(Problem::invalid(
            "the Shopify order cannot be mapped (fields refer to the Shopify payload)",
            &r.out,
        )
        .into());
    }
    Ok(Mapped {
        order,
        holds: if cancelled.is_some() {
            Vec::new()
        } else {
            holds
        },
        cancelled,
    })
}

/// A hold note within the note limit.
fn note(text: &str) -> String {
    let max = oms_domain::MAX_HOLD_NOTE_LEN;
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

/// The payment status (and captured part) from `financial_status`, adding the holds it calls
/// for.
fn payment(
    r: &mut Reader<'_>,
    total: Option<Decimal>,
    holds: &mut Vec<(HoldReason, String)>,
) -> (&'static str, Option<Decimal>) {
    let status = r.p["financial_status"].as_str();
    match status {
        Some("paid") => ("captured", None),
        // A voided authorization: the order is taken in and cancelled at once (the cancel
        // voids nothing further: nothing was captured).
        Some("authorized" | "voided") => ("authorized", None),
        Some("partially_paid") => {
            let outstanding = r.amount(r.p, "total_outstanding", "").flatten();
            let captured = match (total, outstanding) {
                (Some(t), Some(o)) if o <= t => Some(t - o),
                _ => None,
            };
            let detail = match (captured, outstanding) {
                (Some(_), Some(o)) => format!("partially paid on Shopify: {o} outstanding"),
                _ => "partially paid on Shopify; the captured amount is unknown".into(),
            };
            holds.push((HoldReason::PaymentPending, detail));
            ("partially_paid", Some(captured.unwrap_or_default()))
        }
        Some("refunded" | "partially_refunded") => {
            r.report(
                "/financial_status",
                ViolationCode::NotAllowed,
                "a refunded order is not taken in for fulfilment",
            );
            ("pending", None)
        }
        other => {
            let detail = match other {
                Some("pending") => "payment pending on Shopify".to_string(),
                Some(s) => format!("unknown Shopify financial_status {s:?}: treated as pending"),
                None => "Shopify sent no financial_status: treated as pending".into(),
            };
            holds.push((HoldReason::PaymentPending, note(&detail)));
            ("pending", None)
        }
    }
}

/// Our address from Shopify's `shipping_address`: `Ok(None)` when there is none, `Err` with
/// the reason when it does not pass our rules (the order is then held for an address, not
/// refused).
fn address(a: &Value) -> Result<Option<Value>, String> {
    if !a.is_object() {
        return Ok(None);
    }
    let s = |key| Reader::str_at(a, key);
    let country = s("country_code")
        .ok_or("no country_code")?
        .to_ascii_uppercase();
    let country = CountryCode::parse(&country).map_err(|e| e.to_string())?;
    let postal = match s("zip") {
        Some(z) => Some(PostalCode::parse(country, z).map_err(|e| e.to_string())?),
        None if PostalCodeRule::of(country).required => {
            return Err(format!("no postal code (required in {country})"))
        }
        None => None,
    };
    let line1 = s("address1").or(s("address2")).ok_or("no street address")?;
    let line2 = s("address2").filter(|l2| Some(*l2) != Some(line1));
    // Hong Kong and Gulf addresses often name a district or emirate instead of a city.
    let city = s("city").or(s("province")).ok_or("no city")?;
    let region = s("province_code").or(s("province"));
    let address = Address::new(country, postal, line1, line2, city, region, None)
        .map_err(|e| e.to_string())?;
    let mut out = serde_json::to_value(&address).map_err(|e| e.to_string())?;
    if let (Some(lat), Some(lon)) = (a["latitude"].as_f64(), a["longitude"].as_f64()) {
        if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) {
            out["coordinates"] = json!({"lat": lat, "lon": lon});
        }
    }
    Ok(Some(out))
}

/// Where a problem of the mapped order lies in the Shopify payload: a violation reported
/// against our document (`/totals/grand_total`, `/lines/0/unit_price` …) named by the
/// Shopify field it came from (`/total_price`, `/line_items/0/price` …), so the merchant's
/// developer can find it.
pub fn payload_pointer(field: &str) -> String {
    let mapped = match field {
        "/totals/grand_total" | "/payment/amount" | "/payment/captured" => "/total_price",
        "/totals/subtotal" => "/total_line_items_price",
        "/totals/tax" | "/tax" => "/total_tax",
        "/totals/shipping" | "/shipping/amount" => "/shipping_lines",
        "/totals/discount" | "/discounts" => "/total_discounts",
        "/currency" => "/currency",
        f if f.starts_with("/customer") => "/customer",
        f if f.starts_with("/shipping") => "/shipping_address",
        f => {
            if let Some(rest) = f.strip_prefix("/lines/") {
                let (index, tail) = rest.split_once('/').unwrap_or((rest, ""));
                let tail = match tail {
                    "unit_price" => "/price",
                    "discount" => "/discount_allocations",
                    "" => "",
                    t if t.starts_with("item") => "",
                    t => return format!("/line_items/{index}/{t}"),
                };
                return format!("/line_items/{index}{tail}");
            }
            f
        }
    };
    mapped.to_string()
}

/// Why Shopify cancelled the order (`cancel_reason`), for our cancellation.
pub fn cancel_reason(p: &Value) -> String {
    format!(
        "cancelled on Shopify ({})",
        Reader::str_at(p, "cancel_reason").unwrap_or("no reason given")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
        mac.update(body);
        B64.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn the_signature_is_the_base64_hmac_of_the_raw_body() {
        let body = br#"{"id":1}"#;
        let sig = sign(b"secret", body);
        assert!(verify(Some(&sig), body, "secret").is_ok());
        assert!(verify(Some(&sig), br#"{"id":2}"#, "secret").is_err());
        assert!(verify(Some("not base64!"), body, "secret").is_err());
        assert!(verify(None, body, "secret").is_err());
    }

    #[test]
    fn the_external_id_is_the_shopify_order_id_with_every_digit() {
        let p = |v: Value| v.as_object().unwrap().clone();
        let raw: Value = serde_json::from_str(r#"{"id": 9007199254740993}"#).unwrap();
        assert_eq!(
            external_id(raw.as_object().unwrap()).unwrap(),
            "9007199254740993",
            "above 2^53 nothing is rounded"
        );
        assert_eq!(external_id(&p(json!({"id": "gid-1"}))).unwrap(), "gid-1");
        assert!(external_id(&p(json!({"id": null}))).is_err());
        assert!(external_id(&p(json!({}))).is_err());
        assert!(external_id(&p(json!({"id": 1.5}))).is_err());
    }

    #[test]
    fn problems_of_the_mapped_order_name_the_shopify_field() {
        for (ours, theirs) in [
            ("/totals/grand_total", "/total_price"),
            ("/payment/amount", "/total_price"),
            ("/lines/3/unit_price", "/line_items/3/price"),
            ("/lines/0/discount", "/line_items/0/discount_allocations"),
            ("/lines/2/quantity", "/line_items/2/quantity"),
            ("/lines/1", "/line_items/1"),
            ("/customer/email", "/customer"),
            ("/shipping/address/postal_code", "/shipping_address"),
            ("/metadata/x", "/metadata/x"),
        ] {
            assert_eq!(payload_pointer(ours), theirs, "{ours}");
        }
    }

    #[test]
    fn topics_are_named_and_default_to_create() {
        assert_eq!(Topic::parse(Some("orders/create")), Topic::OrdersCreate);
        assert_eq!(
            Topic::parse(Some("orders/cancelled")),
            Topic::OrdersCancelled
        );
        assert_eq!(
            Topic::parse(Some("orders/updated")),
            Topic::Other("orders/updated".into())
        );
        assert_eq!(Topic::parse(None), Topic::OrdersCreate);
        assert_eq!(Topic::parse(Some(" ")), Topic::OrdersCreate);
    }
}
