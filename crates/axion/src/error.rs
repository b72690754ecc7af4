use std::time::Duration;

/// Everything that can go wrong in the SDK. Span and tracer calls never fail (they degrade to
/// no-ops); errors come only from configuration, flushing and shutting down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `configure_tracing` or `TracerRegistry::get` was given a name nobody registered.
    #[error("unknown tracing provider {name:?}; registered providers: {available}")]
    UnknownProvider {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        available: String,
    },
    /// A provider was chosen explicitly but its credentials are not set.
    #[error("tracing provider {provider:?} needs the environment variable {variable} to be set")]
    MissingCredentials {
        /// The provider asked for.
        provider: String,
        /// The variable to set.
        variable: &'static str,
    },
    /// A provider is registered but cannot run here.
    #[error("tracing provider {provider:?} is not available: {reason}")]
    ProviderUnavailable {
        /// The provider asked for.
        provider: String,
        /// Why not.
        reason: String,
    },
    /// A setting has a value that cannot be used.
    #[error("invalid value {value:?} for {setting}: {reason}")]
    InvalidSetting {
        /// The setting (usually an environment variable).
        setting: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A backend refused a batch, or could not be reached within the retry budget.
    #[error("export to {backend} failed: {reason}")]
    Export {
        /// The provider.
        backend: String,
        /// What happened (status and body, or the connection error).
        reason: String,
    },
    /// `flush` ran out of time with records still queued.
    #[error("flush timed out after {timeout:?} with {pending} records still queued")]
    FlushTimeout {
        /// Records not yet exported.
        pending: u64,
        /// The time allowed.
        timeout: Duration,
    },
    /// The provider was shut down; nothing more can be exported.
    #[error("the tracing provider has been shut down")]
    ShutDown,
    /// Writing telemetry failed.
    #[error("cannot write telemetry to {target}: {source}")]
    Output {
        /// Where the output was going.
        target: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
