//! `metav1.Duration`: a Go duration string (`"90s"`, `"1m30s"`, `"300ms"`).
//!
//! We keep the text exactly as the user wrote it, so that decoding and re-encoding a manifest
//! loses nothing, and parse it on demand with Go's `time.ParseDuration` grammar.

use std::fmt;
use std::time::Duration as StdDuration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A duration in Go syntax, as used by `metav1.Duration` fields (`holdTime`, `keepaliveTime`,
/// `connectTime`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(pub String);

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }

    fn inline_schema() -> bool {
        true
    }
}

/// Why a duration string could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid duration (expected e.g. \"90s\", \"1m30s\", \"300ms\")")]
pub struct ParseDurationError(pub String);

impl Duration {
    pub fn from_secs(secs: u64) -> Self {
        Duration(format!("{secs}s"))
    }

    pub fn from_millis(ms: u64) -> Self {
        Duration(format!("{ms}ms"))
    }

    /// Parse with Go's `time.ParseDuration` rules. Negative durations are an error here:
    /// no field of ours accepts them.
    pub fn parse(&self) -> Result<StdDuration, ParseDurationError> {
        parse_go_duration(&self.0).ok_or_else(|| ParseDurationError(self.0.clone()))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_go_duration(s: &str) -> Option<StdDuration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        // "-0" is valid Go but meaningless for us; reject all negatives.
        return None;
    }
    if s == "0" {
        return Some(StdDuration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut total_nanos: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        // number: digits with optional fraction
        let num_len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => return None,
        };
        let (int_part, frac_part) = match num.split_once('.') {
            Some((i, f)) => (i, f),
            None => (num, ""),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut value = int.checked_mul(unit_nanos)?;
        if !frac_part.is_empty() {
            // Fractions are exact down to the nanosecond, like Go.
            let digits = frac_part.len().min(30) as u32;
            let frac: u128 = frac_part[..digits as usize].parse().ok()?;
            value =
                value.checked_add(frac.checked_mul(unit_nanos)? / 10u128.checked_pow(digits)?)?;
        }
        total_nanos = total_nanos.checked_add(value)?;
    }
    // Go limits durations to int64 nanoseconds.
    if total_nanos > i64::MAX as u128 {
        return None;
    }
    Some(StdDuration::from_nanos(total_nanos as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<StdDuration> {
        Duration(s.to_string()).parse().ok()
    }

    #[test]
    fn go_syntax() {
        assert_eq!(p("90s"), Some(StdDuration::from_secs(90)));
        assert_eq!(p("1m30s"), Some(StdDuration::from_secs(90)));
        assert_eq!(p("1h"), Some(StdDuration::from_secs(3600)));
        assert_eq!(p("300ms"), Some(StdDuration::from_millis(300)));
        assert_eq!(p("1.5s"), Some(StdDuration::from_millis(1500)));
        assert_eq!(p(".5s"), Some(StdDuration::from_millis(500)));
        assert_eq!(p("0"), Some(StdDuration::ZERO));
        assert_eq!(p("0s"), Some(StdDuration::ZERO));
        assert_eq!(p("10us"), Some(StdDuration::from_micros(10)));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "s",
            "10",
            "10x",
            "-1s",
            "1..5s",
            "1s2",
            "abc",
            "9999999999999h",
        ] {
            assert_eq!(p(s), None, "{s:?} should not parse");
        }
    }

    #[test]
    fn round_trips_text_verbatim() {
        let d: Duration = serde_json::from_str("\"1m30s\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1m30s\"");
    }
}
