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
        let valid = match scan(text.as_bytes()) {
            Scan::Valid => true,
            Scan::Invalid => false,
            Scan::Unsure => {
                let mut deserializer = serde_json::Deserializer::from_str(text);
                Valid::deserialize(&mut deserializer).is_ok() && deserializer.end().is_ok()
            }
        };
        valid.then(|| Self(Arc::from(text.trim())))
    }

    /// The JSON string holding `text`.
    ///
    /// ```
    /// assert_eq!(axion_model::JsonText::string("say \"hi\"").as_str(), r#""say \"hi\"""#);
    /// ```
    pub fn string(text: &str) -> Self {
        let mut out = Vec::with_capacity(text.len() + 2);
        write_json_string(&mut out, text);
        // JSON escaping of a `str` is UTF-8.
        Self(Arc::from(String::from_utf8(out).unwrap_or_default()))
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

/// Appends `text` to `out` as a JSON string, byte for byte as serde_json writes it: text
/// without quotes, backslashes or control characters (ids, names, times: nearly all) is
/// copied as it is.
///
/// ```
/// let mut out = Vec::new();
/// axion_model::write_json_string(&mut out, "plain");
/// axion_model::write_json_string(&mut out, "a \"quote\"\n");
/// assert_eq!(out, br#""plain""a \"quote\"\n""#);
/// ```
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    if first_special(text.as_bytes()).is_none() {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a `Vec` cannot fail.
        let _ = serde_json::to_writer(out, text);
    }
}

/// Appends `value` to `out` as JSON text, byte for byte as `serde_json::to_writer` writes it
/// (compact), with strings through [`write_json_string`]: the keys and texts of LLM inputs and
/// outputs are mostly plain, and copying them whole is several times faster than escaping
/// them a byte at a time.
///
/// ```
/// let value = serde_json::json!({"messages": [{"role": "user", "content": "hi\n"}], "n": 1.5});
/// let mut out = Vec::new();
/// axion_model::write_json_value(&mut out, &value);
/// assert_eq!(out, serde_json::to_vec(&value).unwrap());
/// ```
pub fn write_json_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Writing to a `Vec` cannot fail.
        Value::Number(number) => drop(serde_json::to_writer(&mut *out, number)),
        Value::String(text) => write_json_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_json_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_json_string(out, key);
                out.push(b':');
                write_json_value(out, item);
            }
            out.push(b'}');
        }
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

/// What one quick pass over a text can tell. Most inputs and outputs are plain JSON that it
/// settles at a few instructions per byte (serde_json's validating parse took about ten, the
/// largest cost of ingesting a span with kilobytes of input); the rare corners where its
/// answer could differ from serde_json's are left to serde_json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// One JSON value, which `serde_json::Value` accepts.
    Valid,
    /// Not JSON: `serde_json::Value` rejects it too.
    Invalid,
    /// Surrogate escapes (serde_json checks their pairing), numbers that may not fit an
    /// `f64`, or nesting near serde_json's depth limit.
    Unsure,
}

/// Nesting the scan follows; serde_json's own limit is 127 levels.
const SCAN_DEPTH: usize = 100;

/// Integer digits plus exponent beyond which a number may overflow an `f64` (about 1.8e308).
const SCAN_MAGNITUDE: u64 = 280;

fn scan(bytes: &[u8]) -> Scan {
    let mut scanner = Scanner { bytes, at: 0 };
    match scanner.document() {
        Ok(()) => Scan::Valid,
        Err(outcome) => outcome,
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Scan> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Scan::Invalid)
        }
    }

    /// One value and nothing but whitespace around it. Containers are followed with a stack
    /// of open brackets rather than recursion.
    fn document(&mut self) -> Result<(), Scan> {
        let mut open = [0u8; SCAN_DEPTH];
        let mut depth = 0usize;
        self.skip_whitespace();
        'value: loop {
            // A value starts here.
            match self.peek().ok_or(Scan::Invalid)? {
                bracket @ (b'{' | b'[') => {
                    if depth == SCAN_DEPTH {
                        return Err(Scan::Unsure);
                    }
                    self.at += 1;
                    open[depth] = bracket;
                    depth += 1;
                    self.skip_whitespace();
                    let close = if bracket == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.at += 1;
                        depth -= 1;
                    } else {
                        if bracket == b'{' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                b'"' => self.string()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(Scan::Invalid),
            }
            // After a value: the next element, the end of containers, or of the document.
            loop {
                self.skip_whitespace();
                if depth == 0 {
                    return if self.at == self.bytes.len() {
                        Ok(())
                    } else {
                        Err(Scan::Invalid)
                    };
                }
                let bracket = open[depth - 1];
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        self.skip_whitespace();
                        if bracket == b'{' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if bracket == b'{' => {}
                    Some(b']') if bracket == b'[' => {}
                    _ => return Err(Scan::Invalid),
                }
                self.at += 1;
                depth -= 1;
            }
        }
    }

    /// `"key":` and the whitespace after it.
    fn key(&mut self) -> Result<(), Scan> {
        if self.peek() != Some(b'"') {
            return Err(Scan::Invalid);
        }
        self.string()?;
        self.skip_whitespace();
        self.expect(b':')?;
        self.skip_whitespace();
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Scan> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(Scan::Invalid)
        }
    }

    /// A string from its opening quote. The text is a `str`, so only escapes and control
    /// characters need a look.
    fn string(&mut self) -> Result<(), Scan> {
        self.at += 1;
        loop {
            let rest = &self.bytes[self.at..];
            let special = first_special(rest).ok_or(Scan::Invalid)?;
            self.at += special + 1;
            match rest[special] {
                b'"' => return Ok(()),
                b'\\' => match self.peek().ok_or(Scan::Invalid)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                    b'u' => {
                        let hex = self
                            .bytes
                            .get(self.at + 1..self.at + 5)
                            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                            .ok_or(Scan::Invalid)?;
                        let code = hex.iter().fold(0u32, |code, &digit| {
                            code * 16 + (digit as char).to_digit(16).unwrap_or(0)
                        });
                        if (0xD800..=0xDFFF).contains(&code) {
                            return Err(Scan::Unsure);
                        }
                        self.at += 5;
                    }
                    _ => return Err(Scan::Invalid),
                },
                _ => return Err(Scan::Invalid), // a raw control character
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, and whether an `f64` surely
    /// holds it.
    fn number(&mut self) -> Result<(), Scan> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let integer = self.digits();
        if integer == 0 || (integer > 1 && self.bytes[self.at - integer] == b'0') {
            return Err(Scan::Invalid);
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(Scan::Invalid);
            }
        }
        let mut exponent = 0u64;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            let start = self.at;
            if self.digits() == 0 {
                return Err(Scan::Invalid);
            }
            exponent = self.bytes[start..self.at].iter().fold(0u64, |sum, digit| {
                sum.saturating_mul(10)
                    .saturating_add(u64::from(digit - b'0'))
            });
        }
        if (integer as u64).saturating_add(exponent) > SCAN_MAGNITUDE {
            return Err(Scan::Unsure);
        }
        Ok(())
    }

    /// Skips ASCII digits; how many.
    fn digits(&mut self) -> usize {
        let count = self.bytes[self.at..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        self.at += count;
        count
    }
}

/// Where the first quote, backslash or control character in `bytes` is, eight bytes per step
/// (most strings are short keys and values, or long runs of plain text).
fn first_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    // The high bit of each byte that is zero, or below 0x20; borrows can only mark bytes
    // above a real match, so the lowest mark is exact.
    let zeros = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let below_space = |word: u64| word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let mut words = bytes.chunks_exact(8);
    for (index, eight) in words.by_ref().enumerate() {
        let word = u64::from_le_bytes(eight.try_into().unwrap_or([0; 8]));
        let marks = zeros(word ^ (ONES * u64::from(b'"')))
            | zeros(word ^ (ONES * u64::from(b'\\')))
            | below_space(word);
        if marks != 0 {
            return Some(index * 8 + (marks.trailing_zeros() / 8) as usize);
        }
    }
    // The last few bytes (most keys are shorter than a word) one at a time, without copying
    // them into a padded word first.
    let tail = words.remainder();
    tail.iter()
        .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
        .map(|at| bytes.len() - tail.len() + at)
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
    use serde_json::json;

    #[test]
    fn accepts_what_value_accepts_and_nothing_else() {
        let deep_ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        // 280 digits times 1e280: each part alone is in range, together they are not.
        let big_and_raised = format!("1{}e280", "0".repeat(279));
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
            "\"\\u+0FF\"",
            "\"\\u00\"",
            "-",
            "-01",
            "1.e5",
            "[1true]",
            big_and_raised.as_str(),
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

    /// The quick scan never contradicts serde_json: texts from a grammar-aware generator and
    /// byte-level mutations of them, compared one by one.
    #[test]
    fn the_scan_agrees_with_serde_json() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % bound as u64) as usize
        };
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\"",
            "\\",
            "\\u",
            "00",
            "0",
            "1",
            "-",
            ".",
            "e",
            "E+",
            "-5",
            "true",
            "fals",
            "null",
            "\"k\":",
            "\\ud800",
            "\\udc00",
            "\\u00e9",
            "\n",
            "\u{1}",
            "é",
            "1e999",
            "123456789012345678901234567890",
            "\\n",
            "x",
        ];
        const VALUES: &[&str] = &[
            "0",
            "-0.5",
            "1e10",
            "2E-3",
            "18446744073709551616",
            "-9223372036854775809",
            "\"plain\"",
            "\"esc\\\"aped\\n\"",
            "\"\\u00e9\\ud83d\\ude00\"",
            "true",
            "false",
            "null",
            "[]",
            "{}",
            "1.7976931348623157e308",
            "1e309",
            "4.9e-324",
            "1e-400",
        ];
        let mut texts: Vec<String> = Vec::new();
        for _ in 0..3000 {
            // A random document…
            let mut text = String::new();
            let mut open: Vec<char> = Vec::new();
            for _ in 0..1 + next(12) {
                match next(6) {
                    0 => {
                        text.push('[');
                        open.push(']');
                    }
                    1 => {
                        text.push_str("{\"k\": ");
                        open.push('}');
                    }
                    _ => {
                        text.push_str(VALUES[next(VALUES.len())]);
                        if let Some(close) = open.pop() {
                            text.push(close);
                        }
                        if !open.is_empty() && next(2) == 0 {
                            text.push_str(if *open.last().unwrap() == '}' {
                                ", \"j\": "
                            } else {
                                ", "
                            });
                        }
                    }
                }
            }
            while let Some(close) = open.pop() {
                text.push(close);
            }
            texts.push(text.clone());
            // …and a few mutations of it.
            for _ in 0..3 {
                let mut mutated = text.clone();
                for _ in 0..1 + next(3) {
                    let cut = (0..=mutated.len())
                        .filter(|at| mutated.is_char_boundary(*at))
                        .nth(next(mutated.len() + 1))
                        .unwrap_or(mutated.len());
                    match next(3) {
                        0 => mutated.insert_str(cut, PIECES[next(PIECES.len())]),
                        1 => {
                            let end = (cut + 1..=mutated.len())
                                .find(|at| mutated.is_char_boundary(*at))
                                .unwrap_or(cut);
                            mutated.replace_range(cut..end, "");
                        }
                        _ => mutated.truncate(cut),
                    }
                }
                texts.push(mutated);
            }
        }
        for depth in [98, 99, 100, 101, 126, 127, 128, 129] {
            texts.push(format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
            texts.push(format!("{}1{}", "[".repeat(depth), "]".repeat(depth)));
        }
        let (mut valid, mut unsure) = (0, 0);
        for text in &texts {
            let accepted = serde_json::from_str::<Value>(text).is_ok();
            match scan(text.as_bytes()) {
                Scan::Valid => {
                    valid += 1;
                    assert!(accepted, "scanned valid, serde_json rejects: {text:?}");
                }
                Scan::Invalid => {
                    assert!(!accepted, "scanned invalid, serde_json accepts: {text:?}")
                }
                Scan::Unsure => unsure += 1,
            }
            assert_eq!(JsonText::parse(text).is_some(), accepted, "{text:?}");
        }
        // The generator reaches every outcome.
        assert!(valid > 500 && unsure > 10, "{valid} valid, {unsure} unsure");
    }

    #[test]
    fn first_special_finds_the_first_quote_backslash_or_control_character() {
        for length in 0..40 {
            for at in 0..length {
                for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    let mut bytes = vec![b'a'; length];
                    bytes[at] = special;
                    if at + 3 < length {
                        bytes[at + 3] = b'"';
                    }
                    assert_eq!(first_special(&bytes), Some(at), "{bytes:?}");
                }
            }
            let plain: Vec<u8> = (0..length).map(|i| b' ' + (i % 90) as u8).collect();
            let expected = plain.iter().position(|&b| b == b'"' || b == b'\\');
            assert_eq!(first_special(&plain), expected);
            assert_eq!(first_special("é€😀 ~\x7f".as_bytes()), None);
        }
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-17),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(-0.0),
            json!(1e300),
            json!(2.5e-8),
            json!(""),
            json!("tab\t \"quoted\" back\\slash \u{1} é€😀"),
            json!([]),
            json!({}),
            json!([1, [2, [3, {}]], {"a": []}]),
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x", "index": 0}],
                   "key \"with\" quotes": {"nested\n": [null, true, 3.25]}}),
        ];
        for value in values {
            let mut out = Vec::new();
            write_json_value(&mut out, &value);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&value).unwrap()
            );
        }
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for text in [
            "",
            "plain",
            "é€😀",
            "quote\"",
            "back\\slash",
            "tab\t",
            "\u{1}\u{1f}\u{7f}",
            "/",
        ] {
            let mut out = Vec::new();
            write_json_string(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
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
