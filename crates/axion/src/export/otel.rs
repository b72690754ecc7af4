//! The `otel` provider: generic OTLP/HTTP with the GenAI and OpenInference conventions, set up
//! from the standard `OTEL_*` variables.

use std::sync::Arc;
use std::time::Duration;

use axion_model::otlp::{Convention, ExportResource};

use super::http::{HttpSender, RetryPolicy};
use super::otlp::{invalid, OtlpExporter, OtlpProtocol};
use super::pipeline::PipelineTracer;
use crate::config::Settings;
use crate::error::Result;
use crate::provider::BaseTracer;

/// `key=value,key2=value2` with percent-encoded values (the OTel spec's header/resource format).
pub fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()).then(|| (key.to_owned(), percent_decode(value.trim())))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digit = |byte: u8| (byte as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (digit(bytes[i + 1]), digit(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The traces endpoint: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`.
pub fn traces_endpoint(settings: &Settings) -> Result<String> {
    if let Some(endpoint) = settings.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Ok(endpoint.to_owned());
    }
    let base = settings.require("otel", "OTEL_EXPORTER_OTLP_ENDPOINT")?;
    Ok(format!("{}/v1/traces", base.trim_end_matches('/')))
}

pub(crate) fn otel_provider(settings: &Settings) -> Result<Arc<dyn BaseTracer>> {
    let endpoint = traces_endpoint(settings)?;
    let protocol = match settings
        .get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| settings.get("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or("http/protobuf")
    {
        "http/protobuf" => OtlpProtocol::Protobuf,
        "http/json" => OtlpProtocol::Json,
        other => {
            return Err(invalid(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                other,
                "axion speaks OTLP over HTTP: use http/protobuf or http/json",
            ))
        }
    };
    let compress = match settings
        .get("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
        .or_else(|| settings.get("OTEL_EXPORTER_OTLP_COMPRESSION"))
    {
        None | Some("none") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(invalid(
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                other,
                "expected gzip or none",
            ))
        }
    };
    let mut headers = parse_pairs(
        settings
            .get("OTEL_EXPORTER_OTLP_HEADERS")
            .unwrap_or_default(),
    );
    headers.extend(parse_pairs(
        settings
            .get("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .unwrap_or_default(),
    ));
    let mut attributes = parse_pairs(settings.get("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default());
    let service_name = settings
        .get("OTEL_SERVICE_NAME")
        .map(str::to_owned)
        .or_else(|| {
            let index = attributes
                .iter()
                .position(|(key, _)| key == "service.name")?;
            Some(attributes.remove(index).1)
        })
        .unwrap_or_else(|| "axion".into());
    let mut retry = RetryPolicy::default();
    let timeout_ms: u64 = settings.parse_or("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?;
    retry.request_timeout = Duration::from_millis(timeout_ms.max(1));
    let resource = ExportResource {
        service_name,
        environment: None,
        release: None,
        attributes,
        scope: ("axion".into(), env!("CARGO_PKG_VERSION").into()),
    };
    let exporter = OtlpExporter::new(
        endpoint,
        headers,
        protocol,
        compress,
        Convention::GenAi,
        resource,
        HttpSender::new("otel", retry),
    );
    PipelineTracer::provider("otel", exporter, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_resource_pairs_are_decoded() {
        assert_eq!(
            parse_pairs("Authorization=Basic%20abc, x-team = a=b ,broken"),
            [
                ("Authorization".to_owned(), "Basic abc".to_owned()),
                ("x-team".to_owned(), "a=b".to_owned())
            ]
        );
    }

    #[test]
    fn endpoint_rules() {
        let settings =
            Settings::from_pairs([("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]);
        assert_eq!(
            traces_endpoint(&settings).unwrap(),
            "http://collector:4318/v1/traces"
        );
        let settings = Settings::from_pairs([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://host/custom"),
        ]);
        assert_eq!(traces_endpoint(&settings).unwrap(), "http://host/custom");
    }
}
