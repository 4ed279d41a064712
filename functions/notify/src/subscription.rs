//! Webhook subscriptions: where to deliver, which event types, signed with which secret — and
//! the parsing of a registration request into one, naming every offending field.

use std::fmt;

use chrono::{DateTime, Utc};
use oms_domain::{EventType, Violation, ViolationCode, Violations};
use oms_edge::{keys, Kv, KvError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use oms_edge::standard_webhooks::WebhookSecret;

/// Most subscriptions the one document holds (it is read whole for every event).
pub const MAX_SUBSCRIPTIONS: usize = 100;
/// Most event filters one subscription may list.
pub const MAX_FILTERS: usize = 32;
/// Longest accepted URL.
const MAX_URL_LEN: usize = 2048;
/// The only hosts plain `http://` may target: the manifest grants outbound `http` to these
/// alone (`allowed_outbound_hosts`), so anything else could never be delivered.
const PLAIN_HTTP_HOSTS: [&str; 2] = ["127.0.0.1", "localhost"];

/// Which event types a subscriber wants: `*`, a family such as `order.*`, or one exact type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EventFilter {
    /// `*`: every event.
    All,
    /// `order.*`: every type whose name starts with the prefix (stored with its dot).
    Family(String),
    /// One event type.
    Exact(EventType),
}

impl EventFilter {
    /// Parses `*`, `<family>.*` (a family some event type belongs to) or an event type name.
    ///
    /// # Errors
    /// A reason when the text is none of those.
    pub fn parse(text: &str) -> Result<EventFilter, String> {
        if text == "*" {
            return Ok(EventFilter::All);
        }
        if let Some(family) = text.strip_suffix('*') {
            let known = family.ends_with('.')
                && family.len() > 1
                && EventType::ALL
                    .iter()
                    .any(|t| t.as_str().starts_with(family));
            return if known {
                Ok(EventFilter::Family(family.to_string()))
            } else {
                Err(format!("{text:?} matches no event type (use \"*\", \"order.*\", \"return.*\" or a type)"))
            };
        }
        text.parse::<EventType>()
            .map(EventFilter::Exact)
            .map_err(|_| format!("unknown event type {text:?}"))
    }

    /// Whether an event of this type passes.
    pub fn matches(&self, event_type: EventType) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Family(prefix) => event_type.as_str().starts_with(prefix.as_str()),
            EventFilter::Exact(t) => *t == event_type,
        }
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventFilter::All => f.write_str("*"),
            EventFilter::Family(prefix) => write!(f, "{prefix}*"),
            EventFilter::Exact(t) => f.write_str(t.as_str()),
        }
    }
}

impl TryFrom<String> for EventFilter {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        EventFilter::parse(&s)
    }
}

impl From<EventFilter> for String {
    fn from(f: EventFilter) -> String {
        f.to_string()
    }
}

/// The scheme of a [`WebhookUrl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http` (loopback only).
    Http,
    /// `https`.
    Https,
}

/// An absolute `https://` URL (or `http://` to the loopback hosts the manifest grants), split
/// into the parts an outbound request needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookUrl {
    text: String,
    scheme: Scheme,
    authority: String,
    path_and_query: String,
}

impl WebhookUrl {
    /// Parses and checks a subscriber URL.
    ///
    /// # Errors
    /// A reason for anything but an absolute http(s) URL with a host, no credentials and no
    /// fragment, or plain http to a host other than `127.0.0.1`/`localhost`.
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        if text.len() > MAX_URL_LEN {
            return Err(format!("longer than {MAX_URL_LEN} characters"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
            _ => return Err("must be an absolute http:// or https:// URL".into()),
        };
        if rest.contains('#') {
            return Err("must not contain a fragment (#…)".into());
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err("must not contain credentials (user@host)".into());
        }
        let host = host_of(authority)?;
        if scheme == Scheme::Http && !PLAIN_HTTP_HOSTS.contains(&host.to_ascii_lowercase().as_str())
        {
            return Err("must use https (plain http is only for 127.0.0.1 and localhost)".into());
        }
        let path_and_query = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(WebhookUrl {
            text: text.to_string(),
            scheme,
            authority: authority.to_ascii_lowercase(),
            path_and_query,
        })
    }

    /// The URL as registered.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `host[:port]`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The path and query, at least `/`.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }
}

/// The host of `host[:port]` (IPv6 in brackets), checking the port.
fn host_of(authority: &str) -> Result<&str, String> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.is_empty() || host == "[]" {
        return Err("must name a host".into());
    }
    let valid_host = if host.starts_with('[') {
        host.ends_with(']')
    } else {
        host.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    if !valid_host {
        return Err(format!("{host:?} is not a valid host"));
    }
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Err(format!("port {port:?} is not a number from 1 to 65535"));
        }
    }
    Ok(host)
}

impl TryFrom<String> for WebhookUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        WebhookUrl::parse(&s)
    }
}

impl From<WebhookUrl> for String {
    fn from(u: WebhookUrl) -> String {
        u.text
    }
}

/// A registered subscriber, as stored (in the one [`oms_edge::keys::SUBSCRIPTIONS`] document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// Its id (a UUID).
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: WebhookUrl,
    /// Which events it wants (any filter matching is enough).
    pub events: Vec<EventFilter>,
    /// What deliveries are signed with.
    pub secret: WebhookSecret,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

impl Subscription {
    /// Whether this subscriber wants events of this type.
    pub fn wants(&self, event_type: EventType) -> bool {
        self.events.iter().any(|f| f.matches(event_type))
    }

    /// The public form: everything but the secret, which is shown only once, at registration.
    pub fn redacted(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "created_at": self.created_at,
        })
    }
}

/// Every subscription, oldest first (none when nothing is registered).
///
/// # Errors
/// [`KvError`] from the store.
pub fn load<K: Kv>(kv: &K) -> Result<Vec<Subscription>, KvError> {
    Ok(kv.get_json(keys::SUBSCRIPTIONS)?.unwrap_or_default())
}

/// A registration request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubscription {
    /// Where to deliver.
    pub url: WebhookUrl,
    /// Which events (duplicates removed, order kept).
    pub events: Vec<EventFilter>,
    /// The secret the client chose, if any.
    pub secret: Option<WebhookSecret>,
}

impl NewSubscription {
    /// Parses `{"url", "events", "secret"?}`, collecting every problem.
    ///
    /// # Errors
    /// [`Violations`] naming each offending field by JSON Pointer (`/url`, `/events/1`, …).
    pub fn parse(body: &Value) -> Result<NewSubscription, Violations> {
        let Some(obj) = body.as_object() else {
            return Err(Violations(vec![Violation::new(
                "",
                ViolationCode::InvalidType,
                "must be a JSON object",
            )]));
        };
        let mut problems = Vec::new();
        for key in obj
            .keys()
            .filter(|k| !matches!(k.as_str(), "url" | "events" | "secret"))
        {
            let pointer = format!("/{}", key.replace('~', "~0").replace('/', "~1"));
            problems.push(Violation::new(
                pointer,
                ViolationCode::UnknownField,
                "not a subscription field",
            ));
        }
        let url = match obj.get("url") {
            None | Some(Value::Null) => {
                missing(&mut problems, "/url", "the delivery URL is required")
            }
            Some(Value::String(s)) => WebhookUrl::parse(s)
                .map_err(|e| problems.push(Violation::new("/url", ViolationCode::InvalidFormat, e)))
                .ok(),
            Some(_) => wrong_type(&mut problems, "/url", "must be a string"),
        };
        let events = parse_filters(obj.get("events"), &mut problems);
        let secret = match obj.get("secret") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => WebhookSecret::parse(s)
                .map_err(|e| {
                    problems.push(Violation::new(
                        "/secret",
                        ViolationCode::InvalidFormat,
                        e.to_string(),
                    ))
                })
                .ok(),
            Some(_) => wrong_type(&mut problems, "/secret", "must be a string"),
        };
        match (url, events) {
            (Some(url), Some(events)) if problems.is_empty() => Ok(NewSubscription {
                url,
                events,
                secret,
            }),
            _ => Err(Violations(problems)),
        }
    }
}

fn parse_filters(value: Option<&Value>, problems: &mut Vec<Violation>) -> Option<Vec<EventFilter>> {
    let items = match value {
        None | Some(Value::Null) => {
            return missing(problems, "/events", "list the event types to deliver")
        }
        Some(Value::Array(items)) => items,
        Some(_) => return wrong_type(problems, "/events", "must be an array of event types"),
    };
    if items.is_empty() {
        problems.push(Violation::new(
            "/events",
            ViolationCode::Empty,
            "list at least one event type (or \"*\")",
        ));
        return None;
    }
    if items.len() > MAX_FILTERS {
        problems.push(Violation::new(
            "/events",
            ViolationCode::TooMany,
            format!("at most {MAX_FILTERS} filters"),
        ));
        return None;
    }
    let before = problems.len();
    let mut filters: Vec<EventFilter> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("/events/{i}");
        match item.as_str().map(EventFilter::parse) {
            None => problems.push(Violation::new(
                field,
                ViolationCode::InvalidType,
                "must be a string",
            )),
            Some(Err(e)) => problems.push(Violation::new(field, ViolationCode::InvalidFormat, e)),
            Some(Ok(f)) if !filters.contains(&f) => filters.push(f),
            Some(Ok(_)) => {}
        }
    }
    (problems.len() == before).then_some(filters)
}

fn missing<T>(problems: &mut Vec<Violation>, field: &str, detail: &str) -> Option<T> {
    problems.push(Violation::new(field, ViolationCode::Missing, detail));
    None
}

fn wrong_type<T>(problems: &mut Vec<Violation>, field: &str, detail: &str) -> Option<T> {
    problems.push(Violation::new(field, ViolationCode::InvalidType, detail));
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_match_exact_types_families_and_everything() {
        let routed = EventFilter::parse("order.routed").unwrap();
        let orders = EventFilter::parse("order.*").unwrap();
        let returns = EventFilter::parse("return.*").unwrap();
        let all = EventFilter::parse("*").unwrap();
        assert!(routed.matches(EventType::OrderRouted));
        assert!(!routed.matches(EventType::OrderReserved));
        assert!(orders.matches(EventType::OrderPartiallyRefunded));
        assert!(!orders.matches(EventType::ReturnReceived));
        assert!(returns.matches(EventType::ReturnReceived));
        assert!(!returns.matches(EventType::OrderRefunded));
        assert!(EventType::ALL.iter().all(|t| all.matches(*t)));
        for text in ["*", "order.*", "return.*", "order.routed"] {
            assert_eq!(EventFilter::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "order.teleported",
            "shipment.*",
            "order*",
            "*.*",
            ".*",
            "",
            "ORDER.ROUTED",
        ] {
            assert!(EventFilter::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_must_be_absolute_https_or_loopback_http() {
        let u = WebhookUrl::parse("https://Hooks.Example.com:8443/in?x=1").unwrap();
        assert_eq!(
            (u.scheme(), u.authority(), u.path_and_query()),
            (Scheme::Https, "hooks.example.com:8443", "/in?x=1")
        );
        let u = WebhookUrl::parse("http://127.0.0.1:4000").unwrap();
        assert_eq!(
            (u.scheme(), u.authority(), u.path_and_query()),
            (Scheme::Http, "127.0.0.1:4000", "/")
        );
        assert_eq!(
            WebhookUrl::parse("https://x.io?a=b")
                .unwrap()
                .path_and_query(),
            "/?a=b"
        );
        assert!(WebhookUrl::parse("https://[::1]:8080/h").is_ok());
        for bad in [
            "example.com/hook",
            "/relative",
            "ftp://example.com",
            "http://example.com/hook",
            "https://",
            "https://:443/x",
            "https://user:pw@example.com",
            "https://example.com/a#frag",
            "https://exa mple.com",
            "https://example.com:0",
            "https://example.com:99999",
            "https://exa$mple.com",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_valid_registration_parses_and_deduplicates_filters() {
        let new = NewSubscription::parse(&json!({
            "url": "https://hooks.example.com/oms",
            "events": ["order.*", "return.refunded", "order.*"],
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        }))
        .unwrap();
        assert_eq!(new.events.len(), 2);
        assert!(new.secret.is_some());
        let without_secret =
            NewSubscription::parse(&json!({"url": "http://localhost:9/h", "events": ["*"]}))
                .unwrap();
        assert_eq!(without_secret.secret, None);
    }

    #[test]
    fn every_offending_field_is_named() {
        let fields = |body: Value| -> Vec<(String, ViolationCode)> {
            NewSubscription::parse(&body)
                .unwrap_err()
                .0
                .into_iter()
                .map(|v| (v.field, v.code))
                .collect()
        };
        assert_eq!(
            fields(
                json!({"url": "ftp://x", "events": ["order.*", "order.teleported", 3], "secret": "nope", "colour": 1})
            ),
            vec![
                ("/colour".to_string(), ViolationCode::UnknownField),
                ("/url".to_string(), ViolationCode::InvalidFormat),
                ("/events/1".to_string(), ViolationCode::InvalidFormat),
                ("/events/2".to_string(), ViolationCode::InvalidType),
                ("/secret".to_string(), ViolationCode::InvalidFormat),
            ]
        );
        assert_eq!(
            fields(json!({})),
            vec![
                ("/url".to_string(), ViolationCode::Missing),
                ("/events".to_string(), ViolationCode::Missing)
            ]
        );
        assert_eq!(
            fields(json!({"url": "https://a.io", "events": []})),
            vec![("/events".to_string(), ViolationCode::Empty)]
        );
        assert_eq!(
            fields(json!([1])),
            vec![(String::new(), ViolationCode::InvalidType)]
        );
    }

    #[test]
    fn stored_subscriptions_round_trip_and_redact_the_secret() {
        let sub = Subscription {
            id: "s1".into(),
            url: WebhookUrl::parse("https://a.io/h").unwrap(),
            events: vec![EventFilter::parse("order.*").unwrap()],
            secret: WebhookSecret::from_key([3; 24]),
            created_at: DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let stored = serde_json::to_value(&sub).unwrap();
        assert_eq!(serde_json::from_value::<Subscription>(stored).unwrap(), sub);
        let public = sub.redacted();
        assert_eq!(public["events"], json!(["order.*"]));
        assert!(public.get("secret").is_none());
        assert!(sub.wants(EventType::OrderShipped) && !sub.wants(EventType::ReturnRequested));
    }
}
