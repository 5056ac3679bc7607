//! Durations as people write them in settings and read them in messages: `90s`, `5m`, `1h30m`.
//!
//! Named so as not to be mistaken for `std::time::Duration` (the value inside) or a tracing span.

use std::{fmt, time::Duration};

use serde::{de, Deserialize, Deserializer};

/// A duration written as Prometheus does (`90s`, `5m`, `1h30m`, `250ms`) or as whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Whole seconds, within the bound of the written form (milliseconds in a u64), so that
    /// every duration read can be written back and read again.
    pub fn from_secs(seconds: u64) -> Result<HumanDuration, String> {
        match seconds.checked_mul(1000) {
            Some(_) => Ok(HumanDuration(Duration::from_secs(seconds))),
            None => Err(format!("{seconds} seconds is too long a duration")),
        }
    }

    /// Parses `1h30m`, `5m`, `10s`, `250ms`, `2d` (units in decreasing order, each at most
    /// once), or a bare number of seconds (as environment variables give it).
    pub fn parse(text: &str) -> Result<HumanDuration, String> {
        if let Ok(seconds) = text.trim().parse::<u64>() {
            return HumanDuration::from_secs(seconds);
        }
        const UNITS: [(&str, u64); 5] = [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ];
        let bad = || format!("{text:?} is not a duration such as 90s, 5m or 1h30m");
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total_ms: u64 = 0;
        let mut last_unit = 0;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let position = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
            // Units in the table's order (d, h, m, s, ms), each at most once.
            let rank = position + 1;
            if rank <= last_unit {
                return Err(bad());
            }
            last_unit = rank;
            total_ms = number
                .checked_mul(UNITS[position].1)
                .and_then(|ms| total_ms.checked_add(ms))
                .ok_or_else(bad)?;
        }
        Ok(HumanDuration(Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => write!(f, "0s"),
            ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 90s, 5m or 1h30m")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                HumanDuration::from_secs(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("a duration cannot be negative"))?;
                HumanDuration::from_secs(v).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                HumanDuration::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_prometheus_durations() {
        let ms = |text| HumanDuration::parse(text).map(|s| s.0.as_millis());
        assert_eq!(ms("5m"), Ok(300_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("1m30s500ms"), Ok(90_500));
        assert_eq!(ms("2d"), Ok(172_800_000));
        assert_eq!(
            ms("30"),
            Ok(30_000),
            "bare seconds, as environment variables give them"
        );
        // Found by fuzzing: bare seconds past the bound of the written form.
        assert!(HumanDuration::parse("666666666626664802").is_err());
        let largest = HumanDuration::parse(&(u64::MAX / 1000).to_string()).unwrap();
        assert_eq!(HumanDuration::parse(&largest.to_string()), Ok(largest));
        for bad in ["", "m", "5x", "30s1m", "1m1m", "-5s", "5 m", "1.5s"] {
            assert!(HumanDuration::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
