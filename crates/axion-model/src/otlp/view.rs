//! An OTLP trace export borrowed from the bytes it was decoded from.
//!
//! A request thread used to copy every attribute key and string value of an export into a
//! `String` of its own before mapping it, and most of those copies were dropped again at once
//! (an attribute a mapping never asks for, a key compared and forgotten). These types hold the
//! same fields as `opentelemetry-proto`'s, with every text and id borrowed: from the protobuf
//! body when [`super::wire`] reads it, or from a decoded [`ExportTraceServiceRequest`] (OTLP/JSON,
//! or an export left to prost) through [`ExportView::of`].

use super::{
    any_value, span, AnyValue, ArrayValue, ExportTraceServiceRequest, InstrumentationScope,
    KeyValue, KeyValueList, Resource, ResourceSpans, ScopeSpans, Span, Status,
};

/// An `ExportTraceServiceRequest`, borrowed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExportView<'a> {
    /// Spans by resource.
    pub resource_spans: Vec<ResourceSpansView<'a>>,
}

/// `ResourceSpans`, borrowed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ResourceSpansView<'a> {
    /// The resource, when the export names one.
    pub resource: Option<ResourceView<'a>>,
    /// Spans by instrumentation scope.
    pub scope_spans: Vec<ScopeSpansView<'a>>,
    /// Schema URL.
    pub schema_url: &'a str,
}

/// `Resource`, borrowed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ResourceView<'a> {
    /// Attributes.
    pub attributes: Vec<KeyValueView<'a>>,
    /// Dropped attribute count.
    pub dropped_attributes_count: u32,
}

/// `ScopeSpans`, borrowed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScopeSpansView<'a> {
    /// The instrumentation scope, when the export names one.
    pub scope: Option<ScopeView<'a>>,
    /// The spans.
    pub spans: Vec<SpanView<'a>>,
    /// Schema URL.
    pub schema_url: &'a str,
}

/// `InstrumentationScope`, borrowed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScopeView<'a> {
    /// Name.
    pub name: &'a str,
    /// Version.
    pub version: &'a str,
    /// Attributes.
    pub attributes: Vec<KeyValueView<'a>>,
    /// Dropped attribute count.
    pub dropped_attributes_count: u32,
}

/// `Span`, borrowed (links are left out: an export with links is read by prost, and its
/// view made from that with [`ExportView::of`], which leaves them out too).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SpanView<'a> {
    /// Trace id bytes.
    pub trace_id: &'a [u8],
    /// Span id bytes.
    pub span_id: &'a [u8],
    /// W3C trace state.
    pub trace_state: &'a str,
    /// Parent span id bytes (empty for a root).
    pub parent_span_id: &'a [u8],
    /// Flags.
    pub flags: u32,
    /// Name.
    pub name: &'a str,
    /// Span kind.
    pub kind: i32,
    /// Start, nanoseconds since the epoch.
    pub start_time_unix_nano: u64,
    /// End, nanoseconds since the epoch.
    pub end_time_unix_nano: u64,
    /// Attributes.
    pub attributes: Vec<KeyValueView<'a>>,
    /// Dropped attribute count.
    pub dropped_attributes_count: u32,
    /// Events.
    pub events: Vec<EventView<'a>>,
    /// Dropped event count.
    pub dropped_events_count: u32,
    /// Dropped link count.
    pub dropped_links_count: u32,
    /// Status.
    pub status: Option<StatusView<'a>>,
}

/// `Span.Event`, borrowed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EventView<'a> {
    /// When, nanoseconds since the epoch.
    pub time_unix_nano: u64,
    /// Name.
    pub name: &'a str,
    /// Attributes.
    pub attributes: Vec<KeyValueView<'a>>,
    /// Dropped attribute count.
    pub dropped_attributes_count: u32,
}

/// `Status`, borrowed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StatusView<'a> {
    /// Message.
    pub message: &'a str,
    /// Code (`status::StatusCode`).
    pub code: i32,
}

/// `KeyValue`, borrowed. `value` is `None` when the pair carries no value message at all,
/// and [`ValueView::Empty`] when it carries an empty one; both read as JSON `null`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeyValueView<'a> {
    /// Key.
    pub key: &'a str,
    /// Value.
    pub value: Option<ValueView<'a>>,
}

/// `AnyValue`, borrowed.
#[derive(Debug, Default, Clone, PartialEq)]
pub enum ValueView<'a> {
    /// An `AnyValue` with no member set.
    #[default]
    Empty,
    /// `string_value`.
    String(&'a str),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// `array_value`.
    Array(Vec<ValueView<'a>>),
    /// `kvlist_value`.
    Kvlist(Vec<KeyValueView<'a>>),
    /// `bytes_value`.
    Bytes(&'a [u8]),
}

/// The value a pair without one reads as.
pub(super) static EMPTY: ValueView<'static> = ValueView::Empty;

impl<'a> KeyValueView<'a> {
    /// The value, [`ValueView::Empty`] when the pair has none.
    pub fn value(&self) -> &ValueView<'a> {
        self.value.as_ref().unwrap_or(&EMPTY)
    }
}

impl<'a> ExportView<'a> {
    /// A view of a decoded request.
    pub fn of(request: &'a ExportTraceServiceRequest) -> Self {
        Self {
            resource_spans: request
                .resource_spans
                .iter()
                .map(ResourceSpansView::of)
                .collect(),
        }
    }

    /// The request this view shows, owned (links and entity refs, which views leave out,
    /// are empty).
    pub fn to_request(&self) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: self
                .resource_spans
                .iter()
                .map(ResourceSpansView::to_owned_message)
                .collect(),
        }
    }

    /// Every span of the export, in order.
    pub fn spans(&self) -> impl Iterator<Item = &SpanView<'a>> {
        self.resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| &scope.spans)
    }
}

impl<'a> ResourceSpansView<'a> {
    fn of(message: &'a ResourceSpans) -> Self {
        Self {
            resource: message.resource.as_ref().map(|resource| ResourceView {
                attributes: pairs_of(&resource.attributes),
                dropped_attributes_count: resource.dropped_attributes_count,
            }),
            scope_spans: message.scope_spans.iter().map(ScopeSpansView::of).collect(),
            schema_url: &message.schema_url,
        }
    }

    fn to_owned_message(&self) -> ResourceSpans {
        ResourceSpans {
            resource: self.resource.as_ref().map(|resource| Resource {
                attributes: owned_pairs(&resource.attributes),
                dropped_attributes_count: resource.dropped_attributes_count,
                entity_refs: Vec::new(),
            }),
            scope_spans: self
                .scope_spans
                .iter()
                .map(ScopeSpansView::to_owned_message)
                .collect(),
            schema_url: self.schema_url.to_owned(),
        }
    }
}

impl<'a> ScopeSpansView<'a> {
    fn of(message: &'a ScopeSpans) -> Self {
        Self {
            scope: message.scope.as_ref().map(|scope| ScopeView {
                name: &scope.name,
                version: &scope.version,
                attributes: pairs_of(&scope.attributes),
                dropped_attributes_count: scope.dropped_attributes_count,
            }),
            spans: message.spans.iter().map(SpanView::of).collect(),
            schema_url: &message.schema_url,
        }
    }

    fn to_owned_message(&self) -> ScopeSpans {
        ScopeSpans {
            scope: self.scope.as_ref().map(|scope| InstrumentationScope {
                name: scope.name.to_owned(),
                version: scope.version.to_owned(),
                attributes: owned_pairs(&scope.attributes),
                dropped_attributes_count: scope.dropped_attributes_count,
            }),
            spans: self.spans.iter().map(SpanView::to_owned_message).collect(),
            schema_url: self.schema_url.to_owned(),
        }
    }
}

impl<'a> SpanView<'a> {
    fn of(span: &'a Span) -> Self {
        Self {
            trace_id: &span.trace_id,
            span_id: &span.span_id,
            trace_state: &span.trace_state,
            parent_span_id: &span.parent_span_id,
            flags: span.flags,
            name: &span.name,
            kind: span.kind,
            start_time_unix_nano: span.start_time_unix_nano,
            end_time_unix_nano: span.end_time_unix_nano,
            attributes: pairs_of(&span.attributes),
            dropped_attributes_count: span.dropped_attributes_count,
            events: span
                .events
                .iter()
                .map(|event| EventView {
                    time_unix_nano: event.time_unix_nano,
                    name: &event.name,
                    attributes: pairs_of(&event.attributes),
                    dropped_attributes_count: event.dropped_attributes_count,
                })
                .collect(),
            dropped_events_count: span.dropped_events_count,
            dropped_links_count: span.dropped_links_count,
            status: span.status.as_ref().map(|status| StatusView {
                message: &status.message,
                code: status.code,
            }),
        }
    }

    fn to_owned_message(&self) -> Span {
        Span {
            trace_id: self.trace_id.to_vec(),
            span_id: self.span_id.to_vec(),
            trace_state: self.trace_state.to_owned(),
            parent_span_id: self.parent_span_id.to_vec(),
            flags: self.flags,
            name: self.name.to_owned(),
            kind: self.kind,
            start_time_unix_nano: self.start_time_unix_nano,
            end_time_unix_nano: self.end_time_unix_nano,
            attributes: owned_pairs(&self.attributes),
            dropped_attributes_count: self.dropped_attributes_count,
            events: self
                .events
                .iter()
                .map(|event| span::Event {
                    time_unix_nano: event.time_unix_nano,
                    name: event.name.to_owned(),
                    attributes: owned_pairs(&event.attributes),
                    dropped_attributes_count: event.dropped_attributes_count,
                })
                .collect(),
            dropped_events_count: self.dropped_events_count,
            links: Vec::new(),
            dropped_links_count: self.dropped_links_count,
            status: self.status.as_ref().map(|status| Status {
                message: status.message.to_owned(),
                code: status.code,
            }),
        }
    }
}

fn pairs_of(pairs: &[KeyValue]) -> Vec<KeyValueView<'_>> {
    pairs
        .iter()
        .map(|pair| KeyValueView {
            key: &pair.key,
            value: pair.value.as_ref().map(ValueView::of),
        })
        .collect()
}

fn owned_pairs(pairs: &[KeyValueView<'_>]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|pair| KeyValue {
            key: pair.key.to_owned(),
            value: pair.value.as_ref().map(ValueView::to_any_value),
        })
        .collect()
}

impl<'a> ValueView<'a> {
    /// A view of a decoded value.
    pub fn of(value: &'a AnyValue) -> Self {
        use any_value::Value as V;
        match &value.value {
            None => Self::Empty,
            Some(V::StringValue(text)) => Self::String(text),
            Some(V::BoolValue(flag)) => Self::Bool(*flag),
            Some(V::IntValue(int)) => Self::Int(*int),
            Some(V::DoubleValue(double)) => Self::Double(*double),
            Some(V::ArrayValue(array)) => Self::Array(array.values.iter().map(Self::of).collect()),
            Some(V::KvlistValue(list)) => Self::Kvlist(pairs_of(&list.values)),
            Some(V::BytesValue(bytes)) => Self::Bytes(bytes),
        }
    }

    /// The value, owned.
    pub fn to_any_value(&self) -> AnyValue {
        use any_value::Value as V;
        let value = match self {
            Self::Empty => None,
            Self::String(text) => Some(V::StringValue((*text).to_owned())),
            Self::Bool(flag) => Some(V::BoolValue(*flag)),
            Self::Int(int) => Some(V::IntValue(*int)),
            Self::Double(double) => Some(V::DoubleValue(*double)),
            Self::Array(values) => Some(V::ArrayValue(ArrayValue {
                values: values.iter().map(Self::to_any_value).collect(),
            })),
            Self::Kvlist(pairs) => Some(V::KvlistValue(KeyValueList {
                values: owned_pairs(pairs),
            })),
            Self::Bytes(bytes) => Some(V::BytesValue(bytes.to_vec())),
        };
        AnyValue { value }
    }

    /// Whether a member is set (an empty value reads as JSON `null`).
    pub fn is_set(&self) -> bool {
        !matches!(self, Self::Empty)
    }
}
