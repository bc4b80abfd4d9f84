//! `/api/series/<host>/<name>`: a container's CPU and memory chart.

use serde::Serialize;

use hemostat_protocol::{ContainerRef, series::SeriesSample};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesView {
    pub key: String,
    /// Oldest first, as a chart draws them.
    pub samples: Vec<SeriesSample>,
}

/// The chart of a container from its series list (newest first).
pub fn series_view(container: &ContainerRef, raw: &[String]) -> SeriesView {
    // A malformed sample is skipped, not an error.
    let mut samples: Vec<SeriesSample> = raw.iter().filter_map(|s| serde_json::from_str(s).ok()).collect();
    samples.sort_by_key(|s| s.t);
    SeriesView { key: container.key(), samples }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_is_oldest_first_and_skips_junk() {
        let c = ContainerRef::new("h", "web");
        let raw: Vec<String> = vec![
            r#"{"t":3,"cpu":3.0,"mem":30.0}"#.into(),
            "junk".into(),
            r#"{"t":1,"cpu":1.0,"mem":10.0}"#.into(),
            r#"{"t":2,"cpu":2}"#.into(),
        ];
        let view = series_view(&c, &raw);
        assert_eq!(
            view.samples,
            [SeriesSample { t: 1, cpu: 1.0, mem: 10.0 }, SeriesSample { t: 3, cpu: 3.0, mem: 30.0 }]
        );
    }
}
