//! Values captured on the hot path and serialised later, in the exporter's worker.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

trait Deferred: Send + Sync {
    fn to_json(&self) -> Value;
    fn to_json_string(&self) -> String;
}

impl<T: Serialize + Send + Sync> Deferred for T {
    fn to_json(&self) -> Value {
        to_json_lossy(self)
    }

    fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|error| {
            serde_json::to_string(&format!("<unserializable: {error}>")).unwrap_or_default()
        })
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

/// A value attached to a span (input, output, attribute, metadata). Capturing one moves the
/// value behind an `Arc`; turning it into JSON happens only when it is exported, off the
/// caller's thread. Clones share the value.
#[derive(Clone)]
pub struct Payload(Arc<dyn Deferred>);

impl Payload {
    /// Captures any serialisable value without serialising it now.
    pub fn new<T: Serialize + Send + Sync + 'static>(value: T) -> Self {
        Self(Arc::new(value))
    }

    /// Serialises the value now, from a borrow. For values that cannot be moved into the span.
    pub fn from_ref<T: Serialize + ?Sized>(value: &T) -> Self {
        Self::new(to_json_lossy(value))
    }

    /// Captures a value that only implements `Debug`, as its `{:?}` text.
    pub fn from_debug<T: fmt::Debug + ?Sized>(value: &T) -> Self {
        Self::new(format!("{value:?}"))
    }

    /// The JSON form. This is where serialisation happens.
    pub fn to_json(&self) -> Value {
        self.0.to_json()
    }

    /// Whether both hold the very same captured value (one capture shared by two records).
    pub fn same_as(&self, other: &Payload) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The JSON text, serialised straight from the captured value (no intermediate tree):
    /// what wire formats that carry JSON as strings (OTLP attributes) want.
    pub fn to_json_string(&self) -> String {
        self.0.to_json_string()
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
}
