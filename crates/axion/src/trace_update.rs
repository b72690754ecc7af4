//! Builders for trace-level and observation-level updates, and score values.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axion_model::ObservationLevel;
use serde::Serialize;
use serde_json::Value;

use crate::payload::{into_object, Payload};
use crate::provider::{RawObservation, RawTrace};
use crate::span::{merge_details, token_usage};

/// Changes to the current trace, applied with
/// [`update_current_trace`](crate::update_current_trace). Only the fields you set change; tags
/// are added to the trace's tags.
///
/// ```
/// use axion::TraceUpdate;
///
/// let update = TraceUpdate::new()
///     .user_id("user-42")
///     .session_id("chat-7")
///     .tags(["rag", "support"])
///     .metadata(serde_json::json!({"tier": "pro"}));
/// axion::update_current_trace(update); // outside a trace: ignored, returns false
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct TraceUpdate {
    name: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
    tags: Vec<String>,
    metadata: Option<Payload>,
    version: Option<String>,
    release: Option<String>,
    environment: Option<String>,
    input: Option<Payload>,
    output: Option<Payload>,
    public: Option<bool>,
}

macro_rules! string_setters {
    ($($(#[$doc:meta])* $field:ident),+ $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, value: impl Into<String>) -> Self {
                self.$field = Some(value.into());
                self
            }
        )+
    };
}

impl TraceUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    string_setters!(
        /// Renames the trace (by default it is named after its root span).
        name,
        /// Sets the end user.
        user_id,
        /// Sets the session.
        session_id,
        /// Sets the version of the traced code.
        version,
        /// Sets the release.
        release,
        /// Sets the environment.
        environment,
    );

    /// Adds tags.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Sets metadata (any JSON; an object is merged with earlier metadata by backends).
    pub fn metadata<V: Serialize + Send + Sync + 'static>(mut self, metadata: V) -> Self {
        self.metadata = Some(Payload::new(metadata));
        self
    }

    /// Sets the trace input (by default the root span's).
    pub fn input<V: Serialize + Send + Sync + 'static>(mut self, input: V) -> Self {
        self.input = Some(Payload::new(input));
        self
    }

    /// Sets the trace output (by default the root span's).
    pub fn output<V: Serialize + Send + Sync + 'static>(mut self, output: V) -> Self {
        self.output = Some(Payload::new(output));
        self
    }

    /// Makes the trace publicly shareable (or not).
    pub fn public(mut self, public: bool) -> Self {
        self.public = Some(public);
        self
    }

    pub(crate) fn apply(self, trace: &mut RawTrace) {
        macro_rules! take {
            ($($field:ident),+) => { $(if self.$field.is_some() { trace.$field = self.$field; })+ };
        }
        if let Some(name) = self.name {
            trace.name = Some(name.into());
        }
        take!(
            user_id,
            session_id,
            metadata,
            version,
            release,
            environment,
            input,
            output,
            public
        );
        for tag in self.tags {
            if !trace.tags.contains(&tag) {
                trace.tags.push(tag);
            }
        }
    }
}

/// Changes to the current observation, applied with
/// [`update_current_observation`](crate::update_current_observation) or
/// [`Span::update_observation`](crate::Span::update_observation).
///
/// ```
/// use axion::{ObservationLevel, ObservationUpdate};
///
/// let update = ObservationUpdate::new()
///     .model("gpt-4o-mini")
///     .usage(120, 40)
///     .level(ObservationLevel::Warning)
///     .metadata("retry", 1);
/// axion::update_current_observation(update);
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ObservationUpdate {
    name: Option<String>,
    input: Option<Payload>,
    output: Option<Payload>,
    metadata: Vec<(Cow<'static, str>, Payload)>,
    level: Option<ObservationLevel>,
    status_message: Option<String>,
    model: Option<String>,
    model_parameters: Option<Value>,
    usage: Option<BTreeMap<String, u64>>,
    cost: Option<BTreeMap<String, f64>>,
    version: Option<String>,
}

impl ObservationUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    string_setters!(
        /// Renames the observation.
        name,
        /// Sets the status message.
        status_message,
        /// Sets the model (which makes an untyped span a generation).
        model,
        /// Sets the version.
        version,
    );

    /// Sets the input.
    pub fn input<V: Serialize + Send + Sync + 'static>(mut self, input: V) -> Self {
        self.input = Some(Payload::new(input));
        self
    }

    /// Sets the output.
    pub fn output<V: Serialize + Send + Sync + 'static>(mut self, output: V) -> Self {
        self.output = Some(Payload::new(output));
        self
    }

    /// Adds one metadata entry (an attribute).
    pub fn metadata<V: Serialize + Send + Sync + 'static>(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: V,
    ) -> Self {
        self.metadata.push((key.into(), Payload::new(value)));
        self
    }

    /// Sets the level.
    pub fn level(mut self, level: ObservationLevel) -> Self {
        self.level = Some(level);
        self
    }

    /// Sets the model parameters (a JSON object).
    pub fn model_parameters(mut self, parameters: Value) -> Self {
        self.model_parameters = Some(parameters);
        self
    }

    /// Sets token usage (`input`, `output`, `total`).
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        let usage =
            token_usage(input_tokens, output_tokens).map(|(key, value)| (key.to_owned(), value));
        merge_details(&mut self.usage, usage);
        self
    }

    /// Sets the total cost in USD.
    pub fn cost(mut self, total_usd: f64) -> Self {
        self.cost
            .get_or_insert_with(BTreeMap::new)
            .insert("total".into(), total_usd);
        self
    }

    pub(crate) fn apply(self, state: &mut RawObservation) {
        if let Some(name) = self.name {
            state.name = Cow::Owned(name);
        }
        if self.input.is_some() {
            state.input = self.input;
        }
        if self.output.is_some() {
            state.output = self.output;
        }
        state.attributes.extend(self.metadata);
        if let Some(level) = self.level {
            state.level = level;
        }
        if self.status_message.is_some() {
            state.status_message = self.status_message;
        }
        if self.model.is_some() {
            state.model = self.model;
        }
        if let Some(parameters) = self.model_parameters {
            state.model_parameters = Some(into_object(parameters));
        }
        if let Some(usage) = self.usage {
            merge_details(&mut state.usage_details, usage);
        }
        if let Some(cost) = self.cost {
            merge_details(&mut state.cost_details, cost);
        }
        if self.version.is_some() {
            state.version = self.version;
        }
    }
}

/// A score's value: a number, a boolean or a category label.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ScoreValue {
    /// A number.
    Numeric(f64),
    /// True or false.
    Boolean(bool),
    /// A label.
    Categorical(String),
}

macro_rules! numeric_from {
    ($($ty:ty),+) => { $(impl From<$ty> for ScoreValue { fn from(value: $ty) -> Self { ScoreValue::Numeric(value as f64) } })+ };
}
numeric_from!(f64, f32, i32, i64, u32, u64, usize);

impl From<bool> for ScoreValue {
    fn from(value: bool) -> Self {
        ScoreValue::Boolean(value)
    }
}

impl From<&str> for ScoreValue {
    fn from(value: &str) -> Self {
        ScoreValue::Categorical(value.to_owned())
    }
}

impl From<String> for ScoreValue {
    fn from(value: String) -> Self {
        ScoreValue::Categorical(value)
    }
}
