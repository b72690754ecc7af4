//! W3C trace-context ids, and the UUIDv7 form that Opik wants.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A malformed id: not hex, the wrong length, or all zeros (W3C forbids the zero id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: expected {hex_len} hex characters, not all zero, got {input:?}")]
pub struct IdParseError {
    kind: &'static str,
    hex_len: usize,
    input: String,
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Wraps raw bytes (big-endian, as on the wire).
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes, as OTLP carries them.
            pub const fn to_bytes(self) -> [u8; $len] {
                self.0
            }

            /// Whether every byte is zero, which W3C trace context treats as "no id".
            pub fn is_zero(&self) -> bool {
                self.0.iter().all(|b| *b == 0)
            }

            /// Parses lowercase or uppercase hex of exactly the right length.
            pub fn from_hex(hex: &str) -> Result<Self, IdParseError> {
                let error = || IdParseError { kind: $kind, hex_len: $len * 2, input: hex.to_owned() };
                let digits = hex.as_bytes();
                if digits.len() != $len * 2 {
                    return Err(error());
                }
                let mut bytes = [0u8; $len];
                for (i, pair) in digits.chunks_exact(2).enumerate() {
                    let high = hex_value(pair[0]).ok_or_else(error)?;
                    let low = hex_value(pair[1]).ok_or_else(error)?;
                    bytes[i] = (high << 4) | low;
                }
                let id = Self(bytes);
                if id.is_zero() {
                    return Err(error());
                }
                Ok(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buffer = [0u8; $len * 2];
                write_hex(&self.0, &mut buffer);
                // Only ASCII hex digits were written.
                f.write_str(std::str::from_utf8(&buffer).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::from_hex(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// A 16-byte W3C trace id; its 32-character lowercase hex form is the Langfuse trace id.
    TraceId, 16, "trace id"
);
hex_id!(
    /// An 8-byte W3C span id; its 16-character lowercase hex form is the Langfuse observation id.
    SpanId, 8, "span id"
);

impl TraceId {
    /// The UUIDv7 that Opik uses for this trace, given the trace's start time in Unix
    /// milliseconds. The same inputs always give the same UUID, so every exporter agrees.
    pub fn to_uuid7(self, unix_millis: u64) -> String {
        uuid7_from_parts(unix_millis, &self.0)
    }

    /// A trace id whose first 48 bits are `unix_millis` (like a ULID or UUIDv7): it sorts by
    /// time, and its Opik UUID can be derived from the id alone ([`TraceId::opik_uuid`]).
    pub fn time_prefixed(unix_millis: u64, random: [u8; 10]) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&unix_millis.to_be_bytes()[2..]);
        bytes[6..].copy_from_slice(&random);
        Self(bytes)
    }

    /// The first 48 bits as Unix milliseconds (meaningful for [`TraceId::time_prefixed`] ids).
    pub fn embedded_millis(self) -> u64 {
        let mut millis = [0u8; 8];
        millis[2..].copy_from_slice(&self.0[..6]);
        u64::from_be_bytes(millis)
    }

    /// The trace's UUIDv7 for Opik, from the id alone: its embedded time and its other bits.
    pub fn opik_uuid(self) -> String {
        uuid7_from_parts(self.embedded_millis(), &self.0[6..])
    }
}

impl SpanId {
    /// The UUIDv7 that Opik uses for this span (see [`TraceId::to_uuid7`]).
    pub fn to_uuid7(self, unix_millis: u64) -> String {
        uuid7_from_parts(unix_millis, &self.0)
    }

    /// The span's UUIDv7 for Opik, from the span and trace ids alone, so a child can name its
    /// parent without knowing when the parent started.
    pub fn opik_uuid(self, trace: TraceId) -> String {
        let mut entropy = [0u8; 10];
        entropy[..8].copy_from_slice(&self.0);
        entropy[8..].copy_from_slice(&trace.0[14..]);
        uuid7_from_parts(trace.embedded_millis(), &entropy)
    }
}

/// Builds a RFC 9562 UUIDv7: 48 bits of Unix milliseconds, then version and variant bits, and
/// 74 bits taken from `entropy` (repeated if shorter). Deterministic, so an id derived twice
/// from the same span is the same UUID.
pub fn uuid7_from_parts(unix_millis: u64, entropy: &[u8]) -> String {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&unix_millis.to_be_bytes()[2..]);
    for (i, byte) in bytes[6..].iter_mut().enumerate() {
        *byte = if entropy.is_empty() {
            0
        } else {
            entropy[i % entropy.len()]
        };
    }
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    let mut hex = [0u8; 32];
    write_hex(&bytes, &mut hex);
    let hex = std::str::from_utf8(&hex).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A fresh UUIDv7 for envelopes and server-assigned ids: the current time plus 80 bits from the
/// process's randomly keyed hasher and a counter, so two calls never collide.
pub fn random_event_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let keys = KEYS.get_or_init(Default::default);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut entropy = [0u8; 16];
    for (half, chunk) in entropy.chunks_exact_mut(8).enumerate() {
        let mut hasher = keys.build_hasher();
        hasher.write_u64(count);
        hasher.write_usize(half);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    let millis = chrono::Utc::now().timestamp_millis().max(0) as u64;
    uuid7_from_parts(millis, &entropy)
}

/// Lowercase hex of `bytes` (OTLP ids on the wire are bytes; Langfuse ids are their hex).
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Decodes hex of any even length (either case); `None` when it is not hex.
pub fn from_hex(hex: &str) -> Option<Vec<u8>> {
    let digits = hex.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some((hex_value(pair[0])? << 4) | hex_value(pair[1])?))
        .collect()
}

fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[(byte >> 4) as usize];
        out[2 * i + 1] = DIGITS[(byte & 0x0f) as usize];
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = TraceId::from_bytes([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(id.to_string().parse::<TraceId>().unwrap(), id);
        assert_eq!(
            "00F067AA0BA902B7".parse::<SpanId>().unwrap().to_string(),
            "00f067aa0ba902b7"
        );
    }

    #[test]
    fn rejects_bad_ids() {
        assert!("abc".parse::<SpanId>().is_err());
        assert!("zz".repeat(8).parse::<SpanId>().is_err());
        assert!("0".repeat(32).parse::<TraceId>().is_err());
        let message = "xyz".parse::<TraceId>().unwrap_err().to_string();
        assert!(
            message.contains("trace id") && message.contains("32 hex"),
            "{message}"
        );
    }

    #[test]
    fn uuid7_has_time_version_and_variant() {
        let millis = 0x0190_1234_5678;
        let uuid = SpanId::from_bytes([0xff; 8]).to_uuid7(millis);
        assert_eq!(uuid.len(), 36);
        assert!(uuid.starts_with("01901234-5678-7"), "{uuid}");
        let variant = u8::from_str_radix(&uuid[19..21], 16).unwrap();
        assert_eq!(variant & 0xc0, 0x80);
        assert_eq!(
            uuid,
            SpanId::from_bytes([0xff; 8]).to_uuid7(millis),
            "deterministic"
        );
        assert_ne!(uuid, SpanId::from_bytes([0xfe; 8]).to_uuid7(millis));
    }

    #[test]
    fn opik_uuids_come_from_the_ids_alone() {
        let trace = TraceId::time_prefixed(1_795_293_291_499, [7; 10]);
        assert_eq!(trace.embedded_millis(), 1_795_293_291_499);
        let uuid = trace.opik_uuid();
        assert_eq!(&uuid[14..15], "7", "version 7: {uuid}");
        assert_eq!(uuid, trace.opik_uuid());
        assert!(uuid.starts_with(&format!("{:012x}", 1_795_293_291_499u64)[..8]));
        let span = SpanId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8]);
        let other = SpanId::from_bytes([1, 2, 3, 4, 5, 6, 7, 9]);
        assert_ne!(span.opik_uuid(trace), other.opik_uuid(trace));
        assert_ne!(span.opik_uuid(trace), uuid);
    }

    #[test]
    fn serde_uses_hex_strings() {
        let id = SpanId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0102030405060708\"");
        assert_eq!(serde_json::from_str::<SpanId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<SpanId>("\"nothex\"").is_err());
    }
}
