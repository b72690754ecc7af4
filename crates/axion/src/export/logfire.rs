//! The `logfire` provider: OTLP/HTTP protobuf, gzip, to the region named in the write token
//! (or `LOGFIRE_BASE_URL`), with the raw token as `Authorization` and Logfire's display
//! attributes so spans render like the Python SDK's.

use std::sync::Arc;

use axion_model::otlp::{Convention, ExportResource};

use super::http::{HttpSender, RetryPolicy};
use super::otlp::{invalid, OtlpExporter, OtlpProtocol};
use super::pipeline::PipelineTracer;
use crate::config::Settings;
use crate::error::Result;
use crate::provider::BaseTracer;

/// The base URL for a write token: `pylf_v<N>_<region>_…` names the region (`us`, `eu`);
/// anything else is US, as in the Python SDK.
pub fn base_url_for_token(token: &str) -> &'static str {
    let mut parts = token.split('_');
    let region = match (parts.next(), parts.next(), parts.next()) {
        (Some("pylf"), Some(version), Some(region)) if version.starts_with('v') => region,
        _ => "us",
    };
    match region {
        "eu" => "https://logfire-eu.pydantic.dev",
        _ => "https://logfire-us.pydantic.dev",
    }
}

pub(crate) fn logfire_provider(settings: &Settings) -> Result<Arc<dyn BaseTracer>> {
    let tokens = settings.require("logfire", "LOGFIRE_TOKEN")?;
    // Several comma-separated tokens are several projects; the first one receives the spans.
    let token = tokens
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if token.is_empty() {
        return Err(invalid("LOGFIRE_TOKEN", tokens, "expected a write token"));
    }
    let base = settings
        .get("LOGFIRE_BASE_URL")
        .map(|url| url.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| base_url_for_token(&token).to_owned());
    let service_name = settings
        .get("LOGFIRE_SERVICE_NAME")
        .or_else(|| settings.get("OTEL_SERVICE_NAME"))
        .unwrap_or("axion")
        .to_owned();
    let resource = ExportResource {
        service_name,
        environment: settings.get("LOGFIRE_ENVIRONMENT").map(str::to_owned),
        release: settings.get("LOGFIRE_SERVICE_VERSION").map(str::to_owned),
        attributes: vec![("logfire.sdk".into(), "axion-rust".into())],
        scope: ("axion".into(), env!("CARGO_PKG_VERSION").into()),
    };
    let exporter = OtlpExporter::new(
        format!("{base}/v1/traces"),
        vec![("authorization".into(), token)],
        OtlpProtocol::Protobuf,
        true,
        Convention::Logfire,
        resource,
        HttpSender::new("logfire", RetryPolicy::default()),
    );
    PipelineTracer::provider("logfire", exporter, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_comes_from_the_token() {
        assert_eq!(
            base_url_for_token("pylf_v1_eu_abc"),
            "https://logfire-eu.pydantic.dev"
        );
        assert_eq!(
            base_url_for_token("pylf_v2_us_0f3e_secret"),
            "https://logfire-us.pydantic.dev"
        );
        assert_eq!(
            base_url_for_token("old-format-token"),
            "https://logfire-us.pydantic.dev"
        );
    }
}
