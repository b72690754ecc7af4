//! Loaders: page through a backend's read API and hand back whole traces (trace, observations,
//! scores) for a [`TraceCollection`](crate::collection::TraceCollection).
//!
//! ```no_run
//! use axion::load::{FetchTraces, LangfuseTraceLoader, TimeWindow};
//!
//! let loader = LangfuseTraceLoader::from_env()?;
//! let traces = loader.fetch_traces(&FetchTraces {
//!     limit: 50,
//!     window: TimeWindow::HoursBack(24),
//!     tags: vec!["production".into()],
//!     ..FetchTraces::default()
//! })?;
//! println!("{} traces", traces.len());
//! # Ok::<(), axion::Error>(())
//! ```

pub mod langfuse;
pub mod logfire;
pub mod opik;

use axion_model::{Observation, Score, Timestamp, Trace};
use serde::{Deserialize, Serialize};

pub use langfuse::LangfuseTraceLoader;

use crate::export::http::{HttpSender, Outgoing};

/// POSTs JSON with the loaders' retry policy; the body of a 2xx answer, else an error that ends
/// with `hint` (which settings to check).
pub(crate) fn post_json(
    sender: &HttpSender,
    url: String,
    headers: Vec<(String, String)>,
    body: &serde_json::Value,
    hint: &str,
) -> crate::Result<String> {
    let request = Outgoing {
        method: "POST",
        url,
        content_type: "application/json",
        gzip: false,
        headers,
        body: body.to_string().into_bytes(),
    };
    let answer = sender.exchange(&request)?;
    if (200..300).contains(&answer.status) {
        return Ok(answer.body);
    }
    Err(crate::Error::Export {
        backend: "loader".into(),
        reason: format!(
            "{} answered {}: {} ({hint})",
            request.url, answer.status, answer.body
        ),
    })
}

/// A string field, owned.
pub(crate) fn text(value: Option<&serde_json::Value>) -> Option<String> {
    value?.as_str().map(str::to_owned)
}

/// Token counts from a backend's usage object, keys renamed (`(theirs, ours)`); `None` when
/// none is there.
pub(crate) fn renamed_counts(
    source: &serde_json::Map<String, serde_json::Value>,
    renames: &[(&str, &str)],
) -> Option<std::collections::BTreeMap<String, u64>> {
    let counts: std::collections::BTreeMap<String, u64> = renames
        .iter()
        .filter_map(|(theirs, ours)| Some(((*ours).to_owned(), source.get(*theirs)?.as_u64()?)))
        .collect();
    (!counts.is_empty()).then_some(counts)
}

/// A backend's total cost as cost details (`{"total": …}`).
pub(crate) fn total_cost(
    value: Option<&serde_json::Value>,
) -> Option<std::collections::BTreeMap<String, f64>> {
    Some(std::collections::BTreeMap::from([(
        "total".to_owned(),
        value?.as_f64()?,
    )]))
}

/// An RFC 3339 time field, as the read APIs write them.
pub(crate) fn rfc3339(value: Option<&serde_json::Value>) -> Option<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(value?.as_str()?)
        .ok()
        .map(|time| time.with_timezone(&chrono::Utc))
}
pub use logfire::LogfireTraceLoader;
pub use opik::OpikTraceLoader;

/// One trace with everything recorded under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LoadedTrace {
    /// The trace's own fields.
    pub trace: Trace,
    /// Its observations (empty for summaries).
    #[serde(default)]
    pub observations: Vec<Observation>,
    /// Its scores (empty for summaries).
    #[serde(default)]
    pub scores: Vec<Score>,
    /// Seconds from first start to last end, when the backend reports it.
    #[serde(default)]
    pub latency: Option<f64>,
    /// Total cost in USD, when the backend reports it.
    #[serde(default)]
    pub total_cost: Option<f64>,
}

/// Which traces to fetch by time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TimeWindow {
    /// The last N days (the Python default is 7).
    DaysBack(u32),
    /// The last N hours.
    HoursBack(u32),
    /// Between two instants (either may be open).
    Absolute {
        /// From (inclusive).
        from: Option<Timestamp>,
        /// To (exclusive).
        to: Option<Timestamp>,
    },
    /// No time filter.
    #[default]
    All,
}

impl TimeWindow {
    /// Python's `mode` + values: `days_back`, `hours_back` or `absolute` with RFC 3339 bounds.
    pub fn from_mode(
        mode: &str,
        days_back: Option<u32>,
        hours_back: Option<u32>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> crate::Result<Self> {
        let parse = |name: &str, text: Option<&str>| -> crate::Result<Option<Timestamp>> {
            text.map(|text| {
                chrono::DateTime::parse_from_rfc3339(text)
                    .map(|time| time.with_timezone(&chrono::Utc))
                    .map_err(|error| crate::Error::InvalidSetting {
                        setting: name.into(),
                        value: text.into(),
                        reason: format!("expected an RFC 3339 datetime with offset ({error})"),
                    })
            })
            .transpose()
        };
        let conflict = |reason: &str| crate::Error::InvalidSetting {
            setting: "mode".into(),
            value: mode.into(),
            reason: reason.into(),
        };
        match mode {
            "days_back" if from.is_none() && to.is_none() => {
                Ok(Self::DaysBack(days_back.unwrap_or(7)))
            }
            "hours_back" if from.is_none() && to.is_none() => {
                Ok(Self::HoursBack(hours_back.unwrap_or(24)))
            }
            "days_back" | "hours_back" => {
                Err(conflict("from/to timestamps need mode \"absolute\""))
            }
            "absolute" if days_back.is_some() || hours_back.is_some() => Err(conflict(
                "days_back/hours_back do not apply to mode \"absolute\"",
            )),
            "absolute" if from.is_none() && to.is_none() => {
                Err(conflict("mode \"absolute\" needs from and/or to"))
            }
            "absolute" => {
                let (from, to) = (parse("from_timestamp", from)?, parse("to_timestamp", to)?);
                if let (Some(from), Some(to)) = (from, to) {
                    if from >= to {
                        return Err(conflict("from_timestamp must be before to_timestamp"));
                    }
                }
                Ok(Self::Absolute { from, to })
            }
            _ => Err(conflict("expected days_back, hours_back or absolute")),
        }
    }

    /// The `[from, to)` bounds this window means now.
    pub fn bounds(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        let now = chrono::Utc::now();
        match self {
            Self::DaysBack(days) => (Some(now - chrono::Duration::days(i64::from(*days))), None),
            Self::HoursBack(hours) => {
                (Some(now - chrono::Duration::hours(i64::from(*hours))), None)
            }
            Self::Absolute { from, to } => (*from, *to),
            Self::All => (None, None),
        }
    }
}

/// What [`LangfuseTraceLoader::fetch_traces`] fetches.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchTraces {
    /// At most this many traces (pages are fetched until reached).
    pub limit: usize,
    /// Time window.
    pub window: TimeWindow,
    /// Traces must carry all of these.
    pub tags: Vec<String>,
    /// Exact trace name.
    pub name: Option<String>,
    /// Exact user id.
    pub user_id: Option<String>,
    /// Exact session id.
    pub session_id: Option<String>,
    /// Fetch observations and scores too (one request per trace, bounded concurrency).
    pub fetch_full_traces: bool,
    /// More list parameters passed through as they are (`environment`, `release`, …).
    pub extra: Vec<(String, String)>,
}

impl Default for FetchTraces {
    fn default() -> Self {
        Self {
            limit: 50,
            window: TimeWindow::DaysBack(7),
            tags: Vec::new(),
            name: None,
            user_id: None,
            session_id: None,
            fetch_full_traces: true,
            extra: Vec::new(),
        }
    }
}
