//! Values captured on the hot path and serialised later, in the exporter's worker.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

trait Deferred: Send + Sync {
    fn to_json(&self) -> Value;
    /// Appends the JSON text to `out`.
    fn write_json(&self, out: &mut Vec<u8>);
}

impl<T: Serialize + Send + Sync> Deferred for T {
    fn to_json(&self) -> Value {
        to_json_lossy(self)
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        let start = out.len();
        if let Err(error) = serde_json::to_writer(&mut *out, self) {
            out.truncate(start);
            axion_model::write_json_string(out, &format!("<unserializable: {error}>"));
        }
    }
}

/// A JSON value behind an `Arc` ([`Payload::share`]): written by the crate's own JSON writer,
/// where any other value goes through serde. Deliberately not `Serialize`, so that this impl
/// and the one for every serialisable type never overlap.
struct SharedJson(Value);

impl Deferred for SharedJson {
    fn to_json(&self) -> Value {
        self.0.clone()
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        axion_model::write_json_value(out, &self.0);
    }
}

/// The JSON form of a value; a value that cannot be serialised becomes a note saying why, so
/// that one bad value never loses the record it belongs to.
pub(crate) fn to_json_lossy<T: Serialize + ?Sized>(value: &T) -> Value {
    serde_json::to_value(value)
        .unwrap_or_else(|error| Value::String(format!("<unserializable: {error}>")))
}

/// A JSON object as it is; any other value wrapped as `{"value": …}`.
pub(crate) fn into_object(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => serde_json::Map::from_iter([("value".to_owned(), other)]),
    }
}

/// A value attached to a span (input, output, attribute, metadata). Turning it into JSON
/// happens only when it is exported, off the caller's thread.
///
/// A `serde_json::Value`, a `String` or a string literal is kept as it is, in place; any other
/// value moves behind an `Arc`. Clones of a kept JSON value copy it; clones of a shared value share it.
pub struct Payload(Repr);

enum Repr {
    /// Already JSON: nothing to defer, and no allocation to capture it.
    Json(Value),
    /// A string literal: copied into JSON only when exported.
    Static(&'static str),
    Deferred(Arc<dyn Deferred>),
}

impl Payload {
    /// Captures any serialisable value without serialising it now.
    pub fn new<T: Serialize + Send + Sync + 'static>(value: T) -> Self {
        // Most inputs and outputs are `json!` values or strings: keeping them in place saves
        // an allocation that another thread would have to free.
        let mut slot = Some(value);
        let any: &mut dyn Any = &mut slot;
        if let Some(Some(json)) = any.downcast_mut::<Option<Value>>().map(Option::take) {
            return Self(Repr::Json(json));
        }
        if let Some(Some(text)) = any.downcast_mut::<Option<String>>().map(Option::take) {
            return Self(Repr::Json(Value::String(text)));
        }
        if let Some(Some(text)) = any.downcast_mut::<Option<&'static str>>().map(Option::take) {
            return Self(Repr::Static(text));
        }
        match slot {
            Some(value) => Self(Repr::Deferred(Arc::new(value))),
            None => Self(Repr::Json(Value::Null)),
        }
    }

    /// Serialises the value now, from a borrow. For values that cannot be moved into the span.
    pub fn from_ref<T: Serialize + ?Sized>(value: &T) -> Self {
        Self(Repr::Json(to_json_lossy(value)))
    }

    /// Captures a value that only implements `Debug`, as its `{:?}` text.
    pub fn from_debug<T: fmt::Debug + ?Sized>(value: &T) -> Self {
        Self(Repr::Json(Value::String(format!("{value:?}"))))
    }

    /// The JSON form. This is where serialisation happens.
    pub fn to_json(&self) -> Value {
        match &self.0 {
            Repr::Json(value) => value.clone(),
            Repr::Static(text) => Value::String((*text).to_owned()),
            Repr::Deferred(value) => value.to_json(),
        }
    }

    /// The JSON form, without copying a value that is JSON already.
    pub fn into_json(self) -> Value {
        match self.0 {
            Repr::Json(value) => value,
            Repr::Static(text) => Value::String(text.to_owned()),
            Repr::Deferred(value) => value.to_json(),
        }
    }

    /// Whether both hold the very same captured value (one capture shared by two records,
    /// see [`share`](Self::share)).
    pub fn same_as(&self, other: &Payload) -> bool {
        match (&self.0, &other.0) {
            (Repr::Deferred(a), Repr::Deferred(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Whether the value is behind an `Arc` (cloning the payload shares it).
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Deferred(_))
    }

    /// A second handle to this very value: a value kept in place moves behind an `Arc` first,
    /// so the two never copy it and [`same_as`](Self::same_as) holds between them.
    pub fn share(&mut self) -> Payload {
        let shared: Arc<dyn Deferred> =
            match std::mem::replace(&mut self.0, Repr::Json(Value::Null)) {
                Repr::Json(value) => Arc::new(SharedJson(value)),
                Repr::Static(text) => Arc::new(text),
                Repr::Deferred(value) => value,
            };
        self.0 = Repr::Deferred(Arc::clone(&shared));
        Self(Repr::Deferred(shared))
    }

    /// The JSON text, serialised straight from the captured value (no intermediate tree):
    /// what wire formats that carry JSON as strings (OTLP attributes) want.
    pub fn to_json_string(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        // Only ever valid UTF-8: it is built from `str`s and ASCII.
        String::from_utf8(out)
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
    }

    /// Appends the JSON text to `out`, serialised straight from the captured value: what an
    /// exporter that builds its request body in place wants.
    ///
    /// ```
    /// let mut body = b"input=".to_vec();
    /// axion::Payload::new(serde_json::json!({"q": "hi"})).write_json(&mut body);
    /// assert_eq!(body, br#"input={"q":"hi"}"#);
    /// ```
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match &self.0 {
            Repr::Json(value) => axion_model::write_json_value(out, value),
            Repr::Static(text) => axion_model::write_json_string(out, text),
            Repr::Deferred(value) => value.write_json(out),
        }
    }
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        match &self.0 {
            Repr::Json(value) => Self(Repr::Json(value.clone())),
            Repr::Static(text) => Self(Repr::Static(text)),
            Repr::Deferred(value) => Self(Repr::Deferred(Arc::clone(value))),
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Payload").field(&self.to_json()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defers_serialisation_and_reports_failures_as_text() {
        #[derive(Serialize)]
        struct Query {
            text: &'static str,
        }
        assert_eq!(
            Payload::new(Query { text: "hi" }).to_json(),
            serde_json::json!({"text": "hi"})
        );
        let mut bad = std::collections::HashMap::new();
        bad.insert((1, 2), 3);
        let text = Payload::new(bad).to_json();
        assert!(
            text.as_str().unwrap().starts_with("<unserializable"),
            "{text}"
        );
        assert_eq!(Payload::from_debug(&Some(3)).to_json(), "Some(3)");
    }

    #[test]
    fn json_values_and_strings_are_kept_in_place_until_shared() {
        let mut value = Payload::new(serde_json::json!({"q": [1, 2]}));
        assert!(!value.is_shared());
        let copy = value.clone();
        assert!(!copy.same_as(&value), "a kept value is copied by clone");
        let shared = value.share();
        assert!(value.is_shared() && shared.same_as(&value));
        assert_eq!(shared.to_json_string(), r#"{"q":[1,2]}"#);
        assert_eq!(value.into_json(), copy.into_json());

        let text = Payload::new(String::from("hello"));
        assert!(!text.is_shared());
        assert_eq!(text.to_json_string(), r#""hello""#);
        assert!(Payload::new(vec![1, 2]).is_shared());
        let literal = Payload::new("prompt");
        assert!(!literal.is_shared());
        assert_eq!(literal.clone().into_json(), "prompt");
        assert_eq!(literal.to_json_string(), r#""prompt""#);
    }
}
