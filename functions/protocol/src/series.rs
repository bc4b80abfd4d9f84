//! The dashboard's chart samples: what the collector pushes to a container's
//! [`keys::series`](crate::keys::series) list and the dashboard reads back.

use serde::{Deserialize, Serialize};

/// One chart point, stored as compact JSON `{"cpu":..,"mem":..,"t":..}`.
///
/// The fields are declared in that order so the JSON is byte for byte what
/// collectors wrote before this type existed (a `json!` object, whose keys
/// serde_json sorts). Readers skip an entry that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesSample {
    /// CPU percent, rounded to 2 decimals.
    pub cpu: f64,
    /// Memory percent of the limit, rounded to 2 decimals.
    pub mem: f64,
    /// Epoch ms.
    pub t: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_unchanged() {
        let sample = SeriesSample { t: 1_700_000_000_123, cpu: 12.5, mem: 40.0 };
        let json = serde_json::to_string(&sample).unwrap();
        assert_eq!(json, r#"{"cpu":12.5,"mem":40.0,"t":1700000000123}"#);
        let seed = serde_json::json!({"t": 1_700_000_000_123i64, "cpu": 12.5, "mem": 40.0});
        assert_eq!(json, seed.to_string());
        assert_eq!(serde_json::from_str::<SeriesSample>(&json).unwrap(), sample);
    }

    #[test]
    fn malformed_samples_do_not_parse() {
        for bad in ["junk", r#"{"t":2,"cpu":2}"#, r#"{"t":1.5,"cpu":1,"mem":1}"#, r#"{"t":1,"cpu":null,"mem":1}"#] {
            assert!(serde_json::from_str::<SeriesSample>(bad).is_err(), "{bad}");
        }
        // Integers are numbers too, and unknown fields are ignored.
        let ok = serde_json::from_str::<SeriesSample>(r#"{"t":1,"cpu":2,"mem":3,"x":0}"#).unwrap();
        assert_eq!(ok, SeriesSample { t: 1, cpu: 2.0, mem: 3.0 });
    }
}
