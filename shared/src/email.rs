//! Customer e-mail addresses.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an e-mail address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Not of the form `local@domain.tld`, or a part is too long or has forbidden characters.
    #[error("{0:?} is not a valid e-mail address")]
    Invalid(String),
}

/// A syntactically plausible e-mail address: `local@domain` with a dotted domain of
/// letters, digits and hyphens, within the RFC 5321 length limits (64 local, 254 total).
///
/// Deliberately not the full RFC 5322 grammar (quoted locals, comments, IP literals): those
/// are legal but no storefront sends them, and rejecting them keeps the address safe to put
/// in a mail header or a log line. The domain is lower-cased; the local part is kept as
/// given because it may be case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Parses an address.
    ///
    /// # Errors
    /// [`EmailError::Invalid`] when it does not match the rules above.
    pub fn parse(text: &str) -> Result<Self, EmailError> {
        let invalid = || EmailError::Invalid(text.to_owned());
        let (local, domain) = text.split_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok || text.len() > 254 {
            return Err(invalid());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;
    fn try_from(s: String) -> Result<Self, EmailError> {
        Self::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_the_domain() {
        assert_eq!(
            Email::parse("Ada.Lovelace+oms@Example.COM")
                .unwrap()
                .as_str(),
            "Ada.Lovelace+oms@example.com"
        );
        assert!(Email::parse("a@b.co").is_ok());
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a@@b.com",
            "a b@c.com",
            ".a@b.com",
            "a..b@c.com",
            "a@-b.com",
            "a@b..com",
            "a@b_c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@b.com", "a".repeat(65))).is_err());
        assert!(serde_json::from_str::<Email>("\"nope\"").is_err());
    }
}
