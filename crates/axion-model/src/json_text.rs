//! JSON values kept as text: an LLM span's input and output (often kilobytes of prompts) pass
//! through ingest to storage without becoming a tree of maps and strings.
//!
//! Parsing, cloning (a root span's trace repeats its input) and re-serialising those trees was
//! most of the cost of ingesting an LLM span; nothing on that path ever looks inside them.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// One JSON value as text, validated once: any text it holds parses as a
/// [`serde_json::Value`]. Clones share the text.
///
/// ```
/// use axion_model::JsonText;
///
/// let text = JsonText::parse(r#"{"messages": [{"role": "user", "content": "hi"}]}"#).unwrap();
/// assert_eq!(text.to_value()["messages"][0]["role"], "user");
/// assert!(JsonText::parse("{not json").is_none());
/// assert_eq!(JsonText::from_value(&"plain".into()).as_str(), r#""plain""#);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct JsonText(Arc<str>);

impl JsonText {
    /// The text, when it is one JSON value that [`serde_json::Value`] accepts (numbers in
    /// range, nesting within its limit); `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        Valid::deserialize(&mut deserializer).ok()?;
        deserializer.end().ok()?;
        Some(Self(Arc::from(text.trim())))
    }

    /// The JSON string holding `text`.
    ///
    /// ```
    /// assert_eq!(axion_model::JsonText::string("say \"hi\"").as_str(), r#""say \"hi\"""#);
    /// ```
    pub fn string(text: &str) -> Self {
        // Serialising a `str` cannot fail.
        Self(Arc::from(serde_json::to_string(text).unwrap_or_default()))
    }

    /// A value's text.
    pub fn from_value(value: &Value) -> Self {
        Self(Arc::from(value.to_string()))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as a tree.
    pub fn to_value(&self) -> Value {
        // The text was validated against exactly this parse.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// `null` or an empty object: what a merge skips and a stored body leaves out.
    pub fn is_empty_value(&self) -> bool {
        let text = self.as_str();
        text == "null"
            || text
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
                .is_some_and(|inside| inside.trim().is_empty())
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonText({})", self.as_str())
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record's input and output as text, carried beside its other fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Io {
    /// `input`.
    pub input: Option<JsonText>,
    /// `output`.
    pub output: Option<JsonText>,
    /// The observation whose input and output a trace shows where it has none of its own: a
    /// root span's, by Langfuse's rule. Stored as a reference, not a second copy of what is
    /// often the largest part of an LLM trace.
    pub from_observation: Option<String>,
}

impl Io {
    /// Neither input nor output text (a reference may be set).
    pub fn is_empty(&self) -> bool {
        self.input.is_none() && self.output.is_none()
    }

    /// Later values win, as in a merge: `later`'s input, output and reference replace these
    /// when present.
    pub fn update(&mut self, later: Io) {
        if later.input.is_some() {
            self.input = later.input;
        }
        if later.output.is_some() {
            self.output = later.output;
        }
        if later.from_observation.is_some() {
            self.from_observation = later.from_observation;
        }
    }

    /// The fields by name, for code that walks bodies.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &JsonText)> {
        [("input", &self.input), ("output", &self.output)]
            .into_iter()
            .filter_map(|(name, text)| Some((name, text.as_ref()?)))
    }
}

/// Accepts exactly what `serde_json::Value` accepts, without building anything.
struct Valid;

impl<'de> Deserialize<'de> for Valid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValidVisitor)
    }
}

struct ValidVisitor;

impl<'de> Visitor<'de> for ValidVisitor {
    type Value = Valid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Valid, E> {
        if value.is_finite() {
            Ok(Valid)
        } else {
            Err(E::custom("number out of range"))
        }
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Valid, A::Error> {
        while seq.next_element::<Valid>()?.is_some() {}
        Ok(Valid)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Valid, A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value::<Valid>()?;
        }
        Ok(Valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_value_accepts_and_nothing_else() {
        let deep_ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for text in [
            "0",
            "-1.5e3",
            "18446744073709551615",
            "-9223372036854775808",
            "1e400",
            "[1, {\"a\": null}]",
            "\"\\ud83d\\ude00\"",
            "\"\\ud800\"",
            "{\"a\": 1, \"a\": 2}",
            "  {\"x\": true}  ",
            "{} []",
            "",
            "nul",
            "{\"a\":}",
            "[1,]",
            deep_ok.as_str(),
            too_deep.as_str(),
        ] {
            let as_value = serde_json::from_str::<Value>(text).ok();
            let as_text = JsonText::parse(text);
            assert_eq!(as_text.is_some(), as_value.is_some(), "{text:?}");
            if let (Some(text), Some(value)) = (as_text, as_value) {
                assert_eq!(text.to_value(), value);
            }
        }
    }

    #[test]
    fn empty_values_are_null_and_empty_objects() {
        for (text, empty) in [
            ("null", true),
            ("{}", true),
            ("{ \n }", true),
            ("[]", false),
            ("\"\"", false),
            ("{\"a\":1}", false),
        ] {
            assert_eq!(
                JsonText::parse(text).unwrap().is_empty_value(),
                empty,
                "{text}"
            );
        }
    }

    #[test]
    fn later_io_wins_where_present() {
        let text = |t: &str| JsonText::parse(t);
        let mut io = Io {
            input: text("1"),
            output: text("2"),
            from_observation: Some("o1".into()),
        };
        io.update(Io {
            output: text("3"),
            ..Io::default()
        });
        assert_eq!(io.from_observation.as_deref(), Some("o1"));
        assert_eq!(io.input, text("1"));
        assert_eq!(io.output, text("3"));
        let names: Vec<_> = io.fields().map(|(name, _)| name).collect();
        assert_eq!(names, ["input", "output"]);
    }
}
