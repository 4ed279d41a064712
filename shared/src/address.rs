//! Delivery addresses: country, postal code, street lines and optional coordinates.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::coordinates::Coordinates;

/// Longest street line, city or region accepted.
const MAX_LINE_LEN: usize = 200;

/// Officially assigned ISO 3166-1 alpha-2 codes (249), concatenated in order.
const ISO_3166_ALPHA2: &str =
    "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZ\
CACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFR\
GAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJP\
KEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMT\
MUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURW\
SASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZUAUG\
UMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

/// Postal-code shapes for countries whose format is fixed: `9` is a digit, `A` a letter,
/// anything else literal. Other countries get the generic rule of [`PostalCode::parse`].
const POSTAL_PATTERNS: &[(&str, &[&str])] = &[
    ("US", &["99999", "99999-9999"]),
    ("CA", &["A9A 9A9", "A9A9A9"]),
    (
        "GB",
        &[
            "A9 9AA", "A99 9AA", "AA9 9AA", "AA99 9AA", "A9A 9AA", "AA9A 9AA", "A99AA", "A999AA",
            "AA99AA", "AA999AA", "A9A9AA", "AA9A9AA",
        ],
    ),
    ("DE", &["99999"]),
    ("FR", &["99999"]),
    ("ES", &["99999"]),
    ("IT", &["99999"]),
    ("MX", &["99999"]),
    ("KR", &["99999"]),
    ("AU", &["9999"]),
    ("NZ", &["9999"]),
    ("AT", &["9999"]),
    ("BE", &["9999"]),
    ("CH", &["9999"]),
    ("DK", &["9999"]),
    ("NO", &["9999"]),
    ("JP", &["999-9999", "9999999"]),
    ("NL", &["9999 AA", "9999AA"]),
    ("SE", &["999 99", "99999"]),
    ("PL", &["99-999"]),
    ("PT", &["9999-999"]),
    ("BR", &["99999-999", "99999999"]),
    ("IN", &["999999"]),
    ("CN", &["999999"]),
    ("RU", &["999999"]),
    ("SG", &["999999"]),
];

/// Countries where addresses carry no postal code (none exists, or it is not used for
/// delivery: Hong Kong, the Gulf states, much of Africa and the Caribbean …) or where it is
/// commonly left out (Ireland's Eircode, Panama): a postal code is optional there — checked
/// against the generic rule when one is given. Everywhere else it is required.
const POSTAL_CODE_OPTIONAL: &[&str] = &[
    "AE", "AG", "AI", "AO", "AW", "BF", "BI", "BJ", "BO", "BQ", "BS", "BW", "BZ", "CD", "CF", "CG",
    "CI", "CK", "CM", "CW", "DJ", "DM", "ER", "FJ", "GA", "GD", "GH", "GM", "GQ", "GY", "HK", "HM",
    "IE", "JM", "KI", "KM", "KN", "KP", "LY", "ML", "MO", "MR", "MS", "MW", "NR", "NU", "PA", "QA",
    "RW", "SB", "SC", "SL", "SR", "SS", "ST", "SX", "SY", "TD", "TF", "TG", "TK", "TL", "TO", "TT",
    "TV", "UG", "VU", "YE", "ZW",
];

/// A country's postal-code rule, from the tables above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostalCodeRule {
    /// Whether an address in the country must have a postal code.
    pub required: bool,
    /// The fixed shapes (`9` digit, `A` letter), or empty for the generic rule.
    pub formats: &'static [&'static str],
}

impl PostalCodeRule {
    /// The rule of `country`.
    pub fn of(country: CountryCode) -> PostalCodeRule {
        PostalCodeRule {
            required: !POSTAL_CODE_OPTIONAL.contains(&country.as_str()),
            formats: POSTAL_PATTERNS
                .iter()
                .find(|(c, _)| *c == country.as_str())
                .map_or(&[], |(_, p)| *p),
        }
    }
}

/// Why an address was refused. Each variant names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not an officially assigned ISO 3166-1 alpha-2 code in upper case.
    #[error("{0:?} is not an ISO 3166-1 alpha-2 country code such as \"US\"")]
    Country(String),
    /// The country requires a postal code and none was given.
    #[error("addresses in {0} need a postal code")]
    PostalCodeRequired(String),
    /// The postal code does not fit the country's format.
    #[error("{code:?} is not a valid postal code for {country}")]
    PostalCode {
        /// The country whose rules applied.
        country: String,
        /// The code as given.
        code: String,
    },
    /// A text line was empty (when required) or longer than 200 characters.
    #[error("{field} must be 1 to 200 characters without control characters")]
    Line {
        /// The field name (`line1`, `line2`, `city`, `region`).
        field: &'static str,
    },
}

/// An ISO 3166-1 alpha-2 country code (`"US"`, `"DE"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Parses a country code; upper case only, so stored data has one spelling.
    ///
    /// # Errors
    /// [`AddressError::Country`] for anything but an assigned upper-case code.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let bytes = text.as_bytes();
        let assigned = bytes.len() == 2
            && bytes.iter().all(u8::is_ascii_uppercase)
            && ISO_3166_ALPHA2
                .as_bytes()
                .chunks_exact(2)
                .any(|c| c == bytes);
        if assigned {
            Ok(Self([bytes[0], bytes[1]]))
        } else {
            Err(AddressError::Country(text.to_owned()))
        }
    }

    /// The two-letter code.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl TryFrom<String> for CountryCode {
    type Error = AddressError;
    fn try_from(s: String) -> Result<Self, AddressError> {
        Self::parse(&s)
    }
}

impl From<CountryCode> for String {
    fn from(c: CountryCode) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A postal code checked against its country's format, stored in upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct PostalCode(String);

impl PostalCode {
    /// Parses a postal code for `country`: the fixed shape where the country has one (US
    /// `94107` or `94107-1234`, CA `K1A 0B1`, GB `SW1A 1AA`, DE/FR/ES/IT/MX/KR five digits,
    /// JP `100-0001`, NL `1234 AB`, AU/NZ/AT/BE/CH/DK/NO four digits, SE `123 45`,
    /// PL `00-950`, PT `1000-001`, BR `01310-100`, IN/CN/RU/SG six digits; see
    /// [`PostalCodeRule`]), otherwise 2 to 10 letters, digits, spaces or hyphens starting with
    /// a letter or digit. Surrounding spaces are dropped.
    ///
    /// # Errors
    /// [`AddressError::PostalCode`] when the code does not fit.
    pub fn parse(country: CountryCode, text: &str) -> Result<Self, AddressError> {
        let code = text.trim().to_ascii_uppercase();
        let formats = PostalCodeRule::of(country).formats;
        let fits = match formats {
            [_, ..] => formats.iter().any(|p| matches_shape(p, &code)),
            [] => {
                (2..=10).contains(&code.len())
                    && code.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && code
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
            }
        };
        if fits {
            Ok(Self(code))
        } else {
            Err(AddressError::PostalCode {
                country: country.to_string(),
                code: text.to_owned(),
            })
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn matches_shape(pattern: &str, code: &str) -> bool {
    pattern.len() == code.len()
        && pattern.bytes().zip(code.bytes()).all(|(p, c)| match p {
            b'9' => c.is_ascii_digit(),
            b'A' => c.is_ascii_uppercase(),
            literal => literal == c,
        })
}

impl From<PostalCode> for String {
    fn from(p: PostalCode) -> String {
        p.0
    }
}

/// Checks a free-text address line: required lines must be non-empty, none may exceed 200
/// characters or contain control characters (they end up in labels and carrier APIs).
///
/// # Errors
/// [`AddressError::Line`] naming `field`.
pub(crate) fn check_line(field: &'static str, text: &str) -> Result<String, AddressError> {
    let trimmed = text.trim();
    if trimmed.is_empty()
        || trimmed.chars().count() > MAX_LINE_LEN
        || trimmed.chars().any(char::is_control)
    {
        return Err(AddressError::Line { field });
    }
    Ok(trimmed.to_owned())
}

/// A delivery address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AddressRepr")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Address {
    country: CountryCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    postal_code: Option<PostalCode>,
    line1: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    line2: Option<String>,
    city: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coordinates: Option<Coordinates>,
}

impl Address {
    /// Builds an address; `line1` and `city` are required, `line2` and `region` optional,
    /// the postal code as the country's [`PostalCodeRule`] says.
    ///
    /// # Errors
    /// [`AddressError::PostalCodeRequired`] for a missing postal code where the country
    /// uses them; [`AddressError::Line`] for an empty or over-long line.
    pub fn new(
        country: CountryCode,
        postal_code: Option<PostalCode>,
        line1: &str,
        line2: Option<&str>,
        city: &str,
        region: Option<&str>,
        coordinates: Option<Coordinates>,
    ) -> Result<Self, AddressError> {
        if postal_code.is_none() && PostalCodeRule::of(country).required {
            return Err(AddressError::PostalCodeRequired(country.to_string()));
        }
        Ok(Self {
            country,
            postal_code,
            line1: check_line("line1", line1)?,
            line2: line2.map(|l| check_line("line2", l)).transpose()?,
            city: check_line("city", city)?,
            region: region.map(|r| check_line("region", r)).transpose()?,
            coordinates,
        })
    }

    /// The country.
    pub const fn country(&self) -> CountryCode {
        self.country
    }

    /// The postal code (absent only where the country does not require one).
    pub const fn postal_code(&self) -> Option<&PostalCode> {
        self.postal_code.as_ref()
    }

    /// First street line.
    pub fn line1(&self) -> &str {
        &self.line1
    }

    /// Second street line, if any.
    pub fn line2(&self) -> Option<&str> {
        self.line2.as_deref()
    }

    /// City or town.
    pub fn city(&self) -> &str {
        &self.city
    }

    /// State, province or region, if any.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// Geocoded position, if the storefront supplied one; routing uses it for distance.
    pub const fn coordinates(&self) -> Option<Coordinates> {
        self.coordinates
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressRepr {
    country: CountryCode,
    postal_code: Option<String>,
    line1: String,
    line2: Option<String>,
    city: String,
    region: Option<String>,
    coordinates: Option<Coordinates>,
}

impl TryFrom<AddressRepr> for Address {
    type Error = AddressError;
    fn try_from(r: AddressRepr) -> Result<Self, AddressError> {
        let postal = r
            .postal_code
            .map(|p| PostalCode::parse(r.country, &p))
            .transpose()?;
        Address::new(
            r.country,
            postal,
            &r.line1,
            r.line2.as_deref(),
            &r.city,
            r.region.as_deref(),
            r.coordinates,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_list_is_complete_and_sorted() {
        let codes: Vec<&[u8]> = ISO_3166_ALPHA2.as_bytes().chunks_exact(2).collect();
        assert_eq!(codes.len(), 249);
        assert!(codes.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn countries_are_assigned_upper_case_codes() {
        for ok in ["US", "DE", "JP", "ZW", "AD", "GB"] {
            assert_eq!(CountryCode::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["us", "UK", "XX", "USA", "", "U"] {
            assert!(CountryCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn postal_codes_follow_country_shapes() {
        let us = CountryCode::parse("US").unwrap();
        assert!(PostalCode::parse(us, "94107").is_ok());
        assert!(PostalCode::parse(us, "94107-1234").is_ok());
        assert!(PostalCode::parse(us, "9410").is_err());
        assert!(PostalCode::parse(us, "ABCDE").is_err());
        let ca = CountryCode::parse("CA").unwrap();
        assert_eq!(
            PostalCode::parse(ca, "k1a 0b1").unwrap().as_str(),
            "K1A 0B1"
        );
        let gb = CountryCode::parse("GB").unwrap();
        assert!(PostalCode::parse(gb, "SW1A 1AA").is_ok());
        assert!(PostalCode::parse(gb, "SW1A_1AA").is_err());
        assert!(PostalCode::parse(gb, "-1").is_err());
    }

    #[test]
    fn address_lines_are_checked_and_deserialization_validates() {
        let us = CountryCode::parse("US").unwrap();
        let zip = PostalCode::parse(us, "94107").unwrap();
        let zip = Some(zip);
        assert!(Address::new(us, zip.clone(), "1 Main St", None, "SF", None, None).is_ok());
        assert_eq!(
            Address::new(us, zip, "  ", None, "SF", None, None),
            Err(AddressError::Line { field: "line1" })
        );
        let json = r#"{"country":"US","postal_code":"94107","line1":"1 Main St","city":"SF","coordinates":{"lat":37.7,"lon":-122.4}}"#;
        let a: Address = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), json);
        let bad = json.replace("94107", "941");
        assert!(serde_json::from_str::<Address>(&bad).is_err());
    }

    #[test]
    fn postal_codes_are_required_only_where_countries_use_them() {
        let c = |s| CountryCode::parse(s).unwrap();
        for none in ["HK", "AE", "QA", "IE", "JM"] {
            assert!(!PostalCodeRule::of(c(none)).required, "{none}");
            assert!(
                Address::new(c(none), None, "1 Queen's Rd", None, "Central", None, None).is_ok()
            );
        }
        for needed in ["US", "GB", "DE", "JP", "BR", "FR"] {
            assert!(PostalCodeRule::of(c(needed)).required, "{needed}");
            assert_eq!(
                Address::new(c(needed), None, "1 Main St", None, "Town", None, None),
                Err(AddressError::PostalCodeRequired(needed.into()))
            );
        }
        let json = r#"{"country":"HK","line1":"1 Queen's Road","city":"Central"}"#;
        let a: Address = serde_json::from_str(json).unwrap();
        assert_eq!(a.postal_code(), None);
        assert_eq!(serde_json::to_string(&a).unwrap(), json);
        assert!(serde_json::from_str::<Address>(&json.replace("HK", "US")).is_err());
    }

    #[test]
    fn major_countries_have_fixed_formats() {
        let ok = |c: &str, p: &str| PostalCode::parse(CountryCode::parse(c).unwrap(), p).is_ok();
        assert!(
            ok("GB", "EC1A 1BB")
                && ok("GB", "W1A 0AX")
                && ok("GB", "m1 1ae")
                && ok("GB", "B33 8TH")
        );
        assert!(!ok("GB", "1234") && !ok("GB", "EC1A-1BB"));
        assert!(ok("BR", "01310-100") && !ok("BR", "01310"));
        assert!(ok("IN", "110001") && !ok("IN", "11000"));
        assert!(ok("SE", "114 55") && ok("PL", "00-950") && ok("PT", "1000-001"));
        assert!(ok("DE", " 10115 "), "surrounding spaces are dropped");
        assert!(
            ok("HK", "999077"),
            "optional codes still follow the generic rule"
        );
    }
}
