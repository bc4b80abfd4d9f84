//! The Prometheus text exposition format (version 0.0.4), as every
//! `/metrics` of HemoStat writes it: the exporter's fleet metrics, and each
//! long-running part's own (the bridge's, the collector's).

use std::fmt::Write as _;

/// The Content-Type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The text format's label value escapes: backslash, double quote, newline.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A HELP line's escapes: backslash and newline.
pub fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value: `NaN`, `+Inf`, `-Inf`, or Rust's shortest round-trip
/// form (1 for 1.0, 0.1 for 0.1).
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// Builds a page of gauges and counters, each family's samples after its
/// HELP and TYPE.
#[derive(Debug, Default)]
pub struct Page {
    out: String,
}

impl Page {
    /// Starts a family; its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_float(value));
        self
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_escapes() {
        let mut page = Page::default();
        page.single("up", Kind::Gauge, "1 when up\\down", 1.0);
        page.family("lag", Kind::Gauge, "records").sample("lag", &[("stream", "a\"b\\c\nd")], 0.5);
        assert_eq!(
            page.finish(),
            "# HELP up 1 when up\\\\down\n# TYPE up gauge\nup 1\n# HELP lag records\n# TYPE lag gauge\nlag{stream=\"a\\\"b\\\\c\\nd\"} 0.5\n"
        );
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
    }
}
