//! Choosing the provider: explicitly, or from the environment on first use.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::provider::{BaseTracer, FlushReport, NoopTracer};
use crate::registry::TracerRegistry;
use crate::{Error, Result};

/// A snapshot of the settings providers read: the process environment, or pairs given in code
/// (handy in tests, where changing the environment races with other threads).
///
/// Empty values count as unset.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    vars: BTreeMap<String, String>,
}

impl Settings {
    /// The current process environment.
    pub fn from_env() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// Only the given pairs.
    ///
    /// ```
    /// let settings = axion::Settings::from_pairs([("TRACING_MODE", "console")]);
    /// assert_eq!(axion::detect_provider(&settings).provider, "console");
    /// ```
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        }
    }

    /// A setting's value, trimmed; `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// A setting that must be present: a [`Error::MissingCredentials`] naming it otherwise.
    pub fn require(&self, provider: &str, name: &'static str) -> Result<&str> {
        self.get(name).ok_or_else(|| Error::MissingCredentials {
            provider: provider.to_owned(),
            variable: name,
        })
    }

    /// A numeric setting, or `default` when unset; an unparsable value is an error naming it.
    pub fn parse_or<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|error: T::Err| Error::InvalidSetting {
                setting: name.to_owned(),
                value: text.to_owned(),
                reason: error.to_string(),
            }),
        }
    }
}

/// The provider auto-detection picked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Detection {
    /// The provider name.
    pub provider: String,
    /// The setting that decided it (`TRACING_MODE=console`, `LANGFUSE_SECRET_KEY`, …).
    pub reason: String,
}

/// Picks a provider from settings, first match wins: `TRACING_MODE` (or `AXION_TRACING_MODE`),
/// then `LANGFUSE_SECRET_KEY` → langfuse, `OPIK_API_KEY` → opik, `LOGFIRE_TOKEN` → logfire,
/// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` → otel, else noop.
/// An explicit `TRACING_MODE=noop` means noop.
///
/// ```
/// use axion::{detect_provider, Settings};
///
/// let settings = Settings::from_pairs([("OPIK_API_KEY", "k"), ("LOGFIRE_TOKEN", "t")]);
/// assert_eq!(detect_provider(&settings).provider, "opik");
/// assert_eq!(detect_provider(&Settings::default()).provider, "noop");
/// ```
pub fn detect_provider(settings: &Settings) -> Detection {
    let found = |provider: &str, reason: String| Detection {
        provider: provider.to_owned(),
        reason,
    };
    for variable in ["TRACING_MODE", "AXION_TRACING_MODE"] {
        if let Some(mode) = settings.get(variable) {
            return found(&normalize_name(mode), format!("{variable}={mode}"));
        }
    }
    let credentials = [
        ("LANGFUSE_SECRET_KEY", "langfuse"),
        ("OPIK_API_KEY", "opik"),
        ("LOGFIRE_TOKEN", "logfire"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "otel"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otel"),
    ];
    for (variable, provider) in credentials {
        if settings.get(variable).is_some() {
            return found(provider, variable.to_owned());
        }
    }
    found("noop", "no tracing settings found".to_owned())
}

/// Lowercases a provider name and resolves the Python SDK's aliases.
pub(crate) fn normalize_name(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    match name.as_str() {
        "logfire_local" | "logfire_hosted" => "logfire".into(),
        "logfire_otel" => "otel".into(),
        _ => name,
    }
}

struct Active {
    name: String,
    provider: Arc<dyn BaseTracer>,
}

static ACTIVE: RwLock<Option<Active>> = RwLock::new(None);

fn read_active<R>(read: impl FnOnce(&Option<Active>) -> R) -> R {
    read(
        &ACTIVE
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    )
}

fn install(name: String, provider: Arc<dyn BaseTracer>) {
    let previous = ACTIVE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .replace(Active { name, provider });
    // Tracers made earlier keep the previous provider; it flushes when the last one goes.
    drop(previous);
}

/// Selects the tracing provider for tracers created from now on.
///
/// * `Some(name)`: that provider (any registered name, your own included; case-insensitive).
///   An unknown name, missing credentials or an unavailable backend is an error that says
///   what to fix, and the previous configuration stays.
/// * `None`: auto-detection from the environment ([`detect_provider`]). This never fails: if
///   the detected provider cannot start, tracing falls back to noop with one warning.
///
/// Configuring the provider that is already active does nothing.
///
/// ```
/// axion::configure_tracing(Some("console")).unwrap();
/// assert!(axion::is_tracing_configured());
/// let error = axion::configure_tracing(Some("nope")).unwrap_err();
/// assert!(error.to_string().contains("registered providers"));
/// axion::configure_tracing(Some("noop")).unwrap();
/// ```
pub fn configure_tracing(provider: Option<&str>) -> Result<()> {
    configure_tracing_with(provider, &Settings::from_env())
}

/// [`configure_tracing`] reading the given settings instead of the environment.
pub fn configure_tracing_with(provider: Option<&str>, settings: &Settings) -> Result<()> {
    match provider {
        Some(name) => {
            let name = normalize_name(name);
            if read_active(|active| active.as_ref().is_some_and(|active| active.name == name)) {
                return Ok(());
            }
            let created = TracerRegistry::create(&name, settings)?;
            install(name, created);
        }
        None => {
            let detection = detect_provider(settings);
            if read_active(|active| {
                active
                    .as_ref()
                    .is_some_and(|active| active.name == detection.provider)
            }) {
                return Ok(());
            }
            match TracerRegistry::create(&detection.provider, settings) {
                Ok(created) => install(detection.provider, created),
                Err(error) => {
                    warn(&format!(
                        "tracing provider {:?} (from {}) cannot start, tracing is off: {error}",
                        detection.provider, detection.reason
                    ));
                    install("noop".into(), Arc::new(NoopTracer));
                }
            }
        }
    }
    Ok(())
}

/// Whether a provider has been configured (explicitly or by first use).
pub fn is_tracing_configured() -> bool {
    read_active(Option::is_some)
}

/// The name of the configured provider, if any.
pub fn configured_provider_name() -> Option<String> {
    read_active(|active| active.as_ref().map(|active| active.name.clone()))
}

/// Forgets the configuration; the next tracer re-detects from the environment.
pub fn clear_tracing_config() {
    let previous = ACTIVE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    drop(previous);
}

/// The registered provider names, built-ins first.
pub fn list_providers() -> Vec<String> {
    TracerRegistry::list_providers()
}

fn configured_provider() -> Option<Arc<dyn BaseTracer>> {
    read_active(|active| active.as_ref().map(|active| active.provider.clone()))
}

/// The configured provider, configuring from the environment on first use.
pub(crate) fn active_provider() -> Arc<dyn BaseTracer> {
    if let Some(provider) = configured_provider() {
        return provider;
    }
    // Auto-detection never fails; it installs noop at worst.
    let _ = configure_tracing(None);
    configured_provider().unwrap_or_else(|| Arc::new(NoopTracer))
}

/// Flushes the configured provider.
pub fn flush_tracing(timeout: Duration) -> Result<FlushReport> {
    match configured_provider() {
        Some(provider) => provider.flush(timeout),
        None => Ok(FlushReport::default()),
    }
}

/// Shuts the configured provider down (flushing first) and clears the configuration.
pub fn shutdown_tracing(timeout: Duration) -> Result<FlushReport> {
    let active = ACTIVE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    match active {
        Some(active) => active.provider.shutdown(timeout),
        None => Ok(FlushReport::default()),
    }
}

/// Shuts tracing down when dropped, so that nothing queued is lost when `main` returns.
///
/// ```
/// let _tracing = axion::shutdown_guard();
/// // ... traced work; everything queued is delivered when `_tracing` drops at the end of main
/// ```
#[must_use = "tracing is shut down as soon as the guard is dropped"]
#[derive(Debug)]
pub struct ShutdownGuard {
    timeout: Duration,
}

/// A guard that calls [`shutdown_tracing`] (5 s timeout) when dropped.
pub fn shutdown_guard() -> ShutdownGuard {
    ShutdownGuard {
        timeout: Duration::from_secs(5),
    }
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        if let Err(error) = shutdown_tracing(self.timeout) {
            warn(&format!("shutting down tracing: {error}"));
        }
    }
}

/// A warning for the application's operator: through `log` when a logger is installed, else on
/// stderr, so that it is never lost.
pub(crate) fn warn(message: &str) {
    if log::max_level() >= log::LevelFilter::Warn {
        log::warn!(target: "axion", "{message}");
    } else {
        eprintln!("[axion] warning: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(pairs: &[(&str, &str)]) -> String {
        detect_provider(&Settings::from_pairs(pairs.iter().copied())).provider
    }

    #[test]
    fn priority_follows_the_docs() {
        let all = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("LOGFIRE_TOKEN", "t"),
            ("OPIK_API_KEY", "o"),
            ("LANGFUSE_SECRET_KEY", "sk"),
        ];
        assert_eq!(detect(&all), "langfuse");
        assert_eq!(detect(&all[..3]), "opik");
        assert_eq!(detect(&all[..2]), "logfire");
        assert_eq!(detect(&all[..1]), "otel");
        assert_eq!(
            detect(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:4318/v1/traces"
            )]),
            "otel"
        );
        assert_eq!(detect(&[]), "noop");
    }

    #[test]
    fn tracing_mode_wins_and_is_normalised() {
        assert_eq!(
            detect(&[("TRACING_MODE", " Console "), ("LANGFUSE_SECRET_KEY", "sk")]),
            "console"
        );
        assert_eq!(detect(&[("AXION_TRACING_MODE", "LOGFIRE_OTEL")]), "otel");
        assert_eq!(
            detect(&[
                ("TRACING_MODE", ""),
                ("AXION_TRACING_MODE", "logfire_hosted")
            ]),
            "logfire"
        );
        // An explicit noop is honoured (the Python code re-ran detection, which surprised users).
        assert_eq!(
            detect(&[("TRACING_MODE", "noop"), ("LANGFUSE_SECRET_KEY", "sk")]),
            "noop"
        );
    }

    #[test]
    fn detection_says_why() {
        let detection = detect_provider(&Settings::from_pairs([("LOGFIRE_TOKEN", "t")]));
        assert_eq!(detection.reason, "LOGFIRE_TOKEN");
    }

    #[test]
    fn settings_parse_errors_name_the_variable() {
        let settings = Settings::from_pairs([("AXION_EXPORT_QUEUE_SIZE", "lots")]);
        let error = settings
            .parse_or("AXION_EXPORT_QUEUE_SIZE", 1usize)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("AXION_EXPORT_QUEUE_SIZE") && error.contains("lots"),
            "{error}"
        );
        assert_eq!(settings.parse_or("UNSET", 7usize).unwrap(), 7);
    }
}
