//! The provider registry: names → factories.

use std::sync::{Arc, LazyLock, RwLock};

use crate::config::{normalize_name, Settings};
use crate::export::console::console_provider;
use crate::provider::{BaseTracer, NoopTracer};
use crate::{Error, Result};

type CreateFn = dyn Fn(&Settings) -> Result<Arc<dyn BaseTracer>> + Send + Sync;

/// Makes a provider from settings; what [`TracerRegistry`] stores under a name.
#[derive(Clone)]
pub struct ProviderFactory {
    name: String,
    create: Arc<CreateFn>,
}

impl ProviderFactory {
    /// The registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new provider instance.
    pub fn create(&self, settings: &Settings) -> Result<Arc<dyn BaseTracer>> {
        (self.create)(settings)
    }
}

impl std::fmt::Debug for ProviderFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ProviderFactory").field(&self.name).finish()
    }
}

static REGISTRY: LazyLock<RwLock<Vec<ProviderFactory>>> = LazyLock::new(|| RwLock::new(builtins()));

/// The process-wide registry of tracing providers. Built-ins: `noop`, `console`, `langfuse`,
/// `opik`, `logfire`, `otel`.
///
/// ```
/// use std::sync::Arc;
/// use axion::{BaseTracer, RawRecord, TracerRegistry};
///
/// struct Stdout;
/// impl BaseTracer for Stdout {
///     fn name(&self) -> &str { "stdout" }
///     fn export(&self, record: RawRecord) {
///         println!("{}", serde_json::to_string(&record.into_model()).unwrap());
///     }
/// }
///
/// TracerRegistry::register("stdout", |_settings| Ok(Arc::new(Stdout)));
/// assert!(TracerRegistry::is_registered("stdout"));
/// axion::configure_tracing(Some("stdout")).unwrap();
/// # axion::clear_tracing_config();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TracerRegistry;

impl TracerRegistry {
    /// Registers a factory under `name` (case-insensitive), replacing any earlier one.
    pub fn register<F>(name: &str, factory: F)
    where
        F: Fn(&Settings) -> Result<Arc<dyn BaseTracer>> + Send + Sync + 'static,
    {
        let name = normalize_name(name);
        let entry = ProviderFactory {
            name: name.clone(),
            create: Arc::new(factory),
        };
        let mut registry = REGISTRY
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match registry.iter_mut().find(|existing| existing.name == name) {
            Some(existing) => {
                log::debug!(
                    "axion: provider {name:?} registered again; the new factory replaces the old"
                );
                *existing = entry;
            }
            None => registry.push(entry),
        }
    }

    /// A provider made by the factory registered under `name` from explicit settings (instead
    /// of the environment): what `Tracer::builder(..).provider(..)` takes.
    ///
    /// ```
    /// use axion::{MetadataType, Settings, Tracer, TracerRegistry};
    ///
    /// let provider = TracerRegistry::create("console", &Settings::from_pairs([("AXION_CONSOLE_PATH", "/dev/null")]))?;
    /// let tracer = Tracer::builder(MetadataType::Llm).provider(provider).build();
    /// # Ok::<(), axion::Error>(())
    /// ```
    pub fn create(name: &str, settings: &Settings) -> Result<Arc<dyn BaseTracer>> {
        Self::get(name)?.create(settings)
    }

    /// The factory registered under `name`; an error listing the registered names otherwise.
    pub fn get(name: &str) -> Result<ProviderFactory> {
        let name = normalize_name(name);
        let registry = REGISTRY
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        registry
            .iter()
            .find(|factory| factory.name == name)
            .cloned()
            .ok_or_else(|| Error::UnknownProvider {
                name,
                available: registry
                    .iter()
                    .map(|factory| factory.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Registered names, in registration order.
    pub fn list_providers() -> Vec<String> {
        REGISTRY
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|f| f.name.clone())
            .collect()
    }

    /// Whether `name` is registered.
    pub fn is_registered(name: &str) -> bool {
        Self::get(name).is_ok()
    }
}

fn builtins() -> Vec<ProviderFactory> {
    fn entry(
        name: &str,
        create: impl Fn(&Settings) -> Result<Arc<dyn BaseTracer>> + Send + Sync + 'static,
    ) -> ProviderFactory {
        ProviderFactory {
            name: name.to_owned(),
            create: Arc::new(create),
        }
    }
    vec![
        entry("noop", |_| Ok(Arc::new(NoopTracer))),
        entry("console", console_provider),
        entry("langfuse", crate::export::langfuse::langfuse_provider),
        entry("opik", crate::export::opik::opik_provider),
        entry("logfire", crate::export::logfire::logfire_provider),
        entry("otel", crate::export::otel::otel_provider),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_registered_in_order() {
        let names = TracerRegistry::list_providers();
        assert_eq!(
            &names[..6],
            ["noop", "console", "langfuse", "opik", "logfire", "otel"]
        );
    }

    #[test]
    fn unknown_names_list_what_exists() {
        let error = TracerRegistry::get("zipkin").unwrap_err().to_string();
        assert!(
            error.contains("zipkin") && error.contains("noop, console, langfuse"),
            "{error}"
        );
    }

    #[test]
    fn backends_name_missing_credentials_then_say_unavailable() {
        let empty = Settings::default();
        let missing = |name: &str| {
            TracerRegistry::get(name)
                .unwrap()
                .create(&empty)
                .err()
                .unwrap()
                .to_string()
        };
        assert!(missing("langfuse").contains("LANGFUSE_PUBLIC_KEY"));
        assert!(missing("opik").contains("OPIK_API_KEY"));
        assert!(missing("logfire").contains("LOGFIRE_TOKEN"));
        assert!(missing("otel").contains("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let only_secret = Settings::from_pairs([("LANGFUSE_SECRET_KEY", "sk")]);
        let error = TracerRegistry::get("langfuse")
            .unwrap()
            .create(&only_secret)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("LANGFUSE_PUBLIC_KEY"), "{error}");
        let bad_host = Settings::from_pairs([
            ("LANGFUSE_SECRET_KEY", "sk"),
            ("LANGFUSE_PUBLIC_KEY", "pk"),
            ("LANGFUSE_HOST", "cloud.langfuse.com"),
        ]);
        let error = TracerRegistry::get("langfuse")
            .unwrap()
            .create(&bad_host)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("LANGFUSE_HOST") && error.contains("http"),
            "{error}"
        );
        let local_opik = Settings::from_pairs([("OPIK_URL_OVERRIDE", "http://127.0.0.1:5173/api")]);
        assert!(
            TracerRegistry::get("opik")
                .unwrap()
                .create(&local_opik)
                .is_ok(),
            "a self-hosted Opik needs no API key"
        );
    }
}
