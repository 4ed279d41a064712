//! Points on the earth and the distance between them.

use serde::{Deserialize, Serialize};

/// Mean earth radius used by the haversine formula, in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Why coordinates were refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum CoordinatesError {
    /// Latitude outside −90..=90 or not a finite number.
    #[error("latitude must be a number between -90 and 90 (got {0})")]
    Latitude(f64),
    /// Longitude outside −180..=180 or not a finite number.
    #[error("longitude must be a number between -180 and 180 (got {0})")]
    Longitude(f64),
}

/// A WGS 84 point in decimal degrees, `{"lat": 37.77, "lon": -122.42}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CoordinatesRepr", into = "CoordinatesRepr")]
pub struct Coordinates {
    lat: f64,
    lon: f64,
}

impl Coordinates {
    /// Builds a point.
    ///
    /// # Errors
    /// [`CoordinatesError`] when a component is out of range or not finite.
    pub fn new(lat: f64, lon: f64) -> Result<Self, CoordinatesError> {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(CoordinatesError::Latitude(lat));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(CoordinatesError::Longitude(lon));
        }
        Ok(Self { lat, lon })
    }

    /// Latitude in degrees.
    pub const fn lat(&self) -> f64 {
        self.lat
    }

    /// Longitude in degrees.
    pub const fn lon(&self) -> f64 {
        self.lon
    }

    /// Great-circle distance in kilometres (haversine on a spherical earth; within ~0.5 % of
    /// the ellipsoidal distance, which is plenty for ranking fulfilment locations).
    pub fn distance_km(&self, other: &Coordinates) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), other.lat.to_radians());
        let d_phi = (other.lat - self.lat).to_radians();
        let d_lambda = (other.lon - self.lon).to_radians();
        let a =
            (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CoordinatesRepr {
    lat: f64,
    lon: f64,
}

impl TryFrom<CoordinatesRepr> for Coordinates {
    type Error = CoordinatesError;
    fn try_from(r: CoordinatesRepr) -> Result<Self, CoordinatesError> {
        Coordinates::new(r.lat, r.lon)
    }
}

impl From<Coordinates> for CoordinatesRepr {
    fn from(c: Coordinates) -> Self {
        CoordinatesRepr {
            lat: c.lat,
            lon: c.lon,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_enforced() {
        assert!(Coordinates::new(90.0, 180.0).is_ok());
        assert!(Coordinates::new(-90.0, -180.0).is_ok());
        assert!(Coordinates::new(90.1, 0.0).is_err());
        assert!(Coordinates::new(0.0, -180.1).is_err());
        assert!(Coordinates::new(f64::NAN, 0.0).is_err());
        assert!(Coordinates::new(0.0, f64::INFINITY).is_err());
        assert!(serde_json::from_str::<Coordinates>(r#"{"lat":91,"lon":0}"#).is_err());
    }

    #[test]
    fn haversine_matches_known_distances() {
        let sf = Coordinates::new(37.7749, -122.4194).unwrap();
        let la = Coordinates::new(34.0522, -118.2437).unwrap();
        let d = sf.distance_km(&la);
        assert!((d - 559.0).abs() < 2.0, "{d}");
        assert_eq!(sf.distance_km(&sf), 0.0);
        let london = Coordinates::new(51.5074, -0.1278).unwrap();
        let paris = Coordinates::new(48.8566, 2.3522).unwrap();
        assert!((london.distance_km(&paris) - 343.5).abs() < 2.0);
        // Symmetric, so routing does not depend on argument order.
        assert_eq!(london.distance_km(&paris), paris.distance_km(&london));
    }
}
