//! Human units in the configuration: durations (`30s`, `500ms`, `1m 30s`, or a bare number of
//! seconds) and byte sizes (`1MiB`, `512KB`, or a bare number of bytes).
//!
//! Durations stay `std::time::Duration` in the schema and go through the `duration` /
//! `opt_duration` serde helpers; sizes are the [`Size`] newtype. Both serialise back to the
//! human form so a serialised `Config` reads like the YAML a person would write.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

const DURATION_EXAMPLES: &str = "30s, 500ms, 1h";
const SIZE_EXAMPLES: &str = "1MiB, 512KB, 1024";

/// A value that is not a valid duration or size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?} (expected e.g. {examples})")]
pub struct ParseUnitError {
    what: &'static str,
    input: String,
    examples: &'static str,
}

impl ParseUnitError {
    fn duration(input: &str) -> Self {
        Self {
            what: "duration",
            input: input.to_owned(),
            examples: DURATION_EXAMPLES,
        }
    }

    fn size(input: &str) -> Self {
        Self {
            what: "size",
            input: input.to_owned(),
            examples: SIZE_EXAMPLES,
        }
    }
}

/// Parses a human duration: `30s`, `500ms`, `1h`, `1m 30s`, or a bare (possibly fractional)
/// number of seconds such as `54` or `0.5`.
pub fn parse_duration(input: &str) -> Result<Duration, ParseUnitError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(ParseUnitError::duration(input));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| ParseUnitError::duration(input));
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return text
            .parse::<f64>()
            .ok()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or_else(|| ParseUnitError::duration(input));
    }
    humantime::parse_duration(text).map_err(|_| ParseUnitError::duration(input))
}

/// Formats a duration the way the configuration writes it (`54s`, `5m`, `500ms`).
pub fn format_duration(value: Duration) -> String {
    humantime::format_duration(value).to_string()
}

/// A byte count written with units: `1MiB` = 1 048 576, `512KB` = 512 000, `1024` = 1024 bytes.
///
/// Binary units (`KiB`, `MiB`, `GiB`, `TiB`) are powers of 1024, decimal units (`KB`, `MB`, `GB`,
/// `TB`) powers of 1000; `B` or no unit means bytes. Units are case-insensitive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl Size {
    /// `n` bytes.
    pub const fn bytes(n: u64) -> Self {
        Self(n)
    }

    /// `n` KiB (n × 1024 bytes).
    pub const fn kib(n: u64) -> Self {
        Self(n * 1024)
    }

    /// `n` MiB (n × 1024² bytes).
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    /// The size in bytes.
    pub const fn as_bytes(self) -> u64 {
        self.0
    }

    /// The size in bytes as a `usize`, saturating where `usize` is narrower than 64 bits.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// Units from largest to smallest, binary before decimal so `Display` prefers `1MiB` to `1048576`.
const UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

impl FromStr for Size {
    type Err = ParseUnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || ParseUnitError::size(input);
        let text = input.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let unit = unit.trim();
        let multiplier = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                .map(|&(_, m)| m)
                .ok_or_else(err)?
        };
        // Exact integer arithmetic: `1.5KiB` is 1536 bytes, `1.5B` is an error, never a rounding.
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
            return Err(err());
        }
        let whole: u128 = whole.parse().map_err(|_| err())?;
        let mut bytes = whole.checked_mul(u128::from(multiplier)).ok_or_else(err)?;
        if !fraction.is_empty() {
            let digits = u32::try_from(fraction.len()).map_err(|_| err())?;
            let scale = 10u128.checked_pow(digits).ok_or_else(err)?;
            let frac: u128 = fraction.parse().map_err(|_| err())?;
            let part = frac.checked_mul(u128::from(multiplier)).ok_or_else(err)?;
            if !part.is_multiple_of(scale) {
                return Err(err());
            }
            bytes = bytes.checked_add(part / scale).ok_or_else(err)?;
        }
        u64::try_from(bytes).map(Size).map_err(|_| err())
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0B");
        }
        let (name, multiplier) = UNITS
            .iter()
            .find(|(_, m)| self.0.is_multiple_of(*m))
            .copied()
            .unwrap_or(("B", 1));
        write!(f, "{}{name}", self.0 / multiplier)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = Size;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a size such as {SIZE_EXAMPLES}")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
        Ok(Size(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
        u64::try_from(v)
            .map(Size)
            .map_err(|_| E::custom(ParseUnitError::size(&v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Size, E> {
        Err(E::custom(ParseUnitError::size(&v.to_string())))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
        v.parse().map_err(E::custom)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a duration such as {DURATION_EXAMPLES}")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(ParseUnitError::duration(&v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Duration::try_from_secs_f64(v).map_err(|_| E::custom(ParseUnitError::duration(&v.to_string())))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }
}

/// Serde helper for `Duration` fields: `#[serde(with = "units::duration")]`.
pub(crate) mod duration {
    use super::{Duration, DurationVisitor, format_duration};
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*value))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

/// Serde helper for `Option<Duration>` fields: `#[serde(with = "units::opt_duration")]`.
pub(crate) mod opt_duration {
    use super::{Duration, DurationVisitor, format_duration};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        struct Human(Duration);
        impl<'de> Deserialize<'de> for Human {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(DurationVisitor).map(Human)
            }
        }
        Ok(Option::<Human>::deserialize(d)?.map(|h| h.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_exactly() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration(" 54 "), Ok(Duration::from_secs(54)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_are_rejected_with_examples() {
        for bad in ["", "abc", "10 parsecs", "-5s", "1.2.3", "5 s s"] {
            let err = parse_duration(bad).expect_err(bad);
            assert_eq!(
                err.to_string(),
                format!("invalid duration {bad:?} (expected e.g. 30s, 500ms, 1h)")
            );
        }
    }

    #[test]
    fn durations_format_back_to_parsable_text() {
        for d in [54, 60, 300, 86_400, 90].map(Duration::from_secs) {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(54)), "54s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn sizes_parse_exactly() {
        let cases = [
            ("1MiB", 1_048_576),
            ("4MiB", 4_194_304),
            ("256MiB", 268_435_456),
            ("1KiB", 1024),
            ("1kib", 1024),
            ("512KB", 512_000),
            ("1MB", 1_000_000),
            ("1GiB", 1 << 30),
            ("2TB", 2_000_000_000_000),
            ("1024", 1024),
            ("1024B", 1024),
            ("1 MiB", 1_048_576),
            ("1.5KiB", 1536),
            ("0", 0),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<Size>(), Ok(Size(bytes)), "{text}");
        }
    }

    #[test]
    fn bad_sizes_are_rejected() {
        for bad in ["", "MiB", "1XB", "1M", "-1", "1.5B", "1.", ".5KiB", "99999999999TiB"] {
            let err = bad.parse::<Size>().expect_err(bad);
            assert_eq!(
                err.to_string(),
                format!("invalid size {bad:?} (expected e.g. 1MiB, 512KB, 1024)")
            );
        }
    }

    #[test]
    fn sizes_display_in_the_largest_exact_unit() {
        assert_eq!(Size::mib(1).to_string(), "1MiB");
        assert_eq!(Size::mib(256).to_string(), "256MiB");
        assert_eq!(Size::kib(1).to_string(), "1KiB");
        assert_eq!(Size(512_000).to_string(), "500KiB");
        assert_eq!(Size(1_000_000).to_string(), "1MB");
        assert_eq!(Size(1500).to_string(), "1500B");
        assert_eq!(Size(0).to_string(), "0B");
        assert_eq!(Size::mib(4).as_bytes(), 4_194_304);
        assert_eq!(Size::kib(1).as_usize(), 1024);
    }
}
