//! `POST /api/public/otel/v1/traces` (and `/v1/traces`): OTLP/HTTP trace exports, protobuf or
//! JSON, gzip or not, mapped to ingestion events by [`axion_model::otlp`].

use std::io::Read;

use chrono::Utc;

use axion_model::otlp::{self as mapping, OtlpError};

use super::langfuse_batch::{process_events, BatchOutcome};
use super::{parse_time_text, Scope};

/// The largest decompressed body accepted, so a small gzip bomb cannot exhaust memory.
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;

/// Why an export was rejected as a whole (→ 400, or 415 for an unknown content type).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpBodyError {
    /// Neither `application/x-protobuf` nor `application/json`.
    #[error("Invalid content type {0:?}: expected application/x-protobuf or application/json")]
    ContentType(String),
    /// `Content-Encoding` other than gzip/identity, or a broken gzip stream.
    #[error("{0}")]
    Encoding(String),
    /// Not an OTLP trace export.
    #[error(transparent)]
    Decode(#[from] OtlpError),
}

/// Decodes and maps an export; every span becomes events processed like an ingestion batch.
pub fn process(
    content_type: &str,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Result<BatchOutcome, OtlpBodyError> {
    let decompressed;
    let body = match content_encoding.map(str::trim) {
        None | Some("") | Some("identity") => body,
        Some(encoding) if encoding.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::with_capacity(body.len() * 4);
            flate2::read::MultiGzDecoder::new(body)
                .take(MAX_DECOMPRESSED_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|error| OtlpBodyError::Encoding(format!("invalid gzip body: {error}")))?;
            if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
                return Err(OtlpBodyError::Encoding(format!(
                    "decompressed body exceeds {MAX_DECOMPRESSED_BYTES} bytes"
                )));
            }
            decompressed = out;
            &decompressed
        }
        Some(other) => {
            return Err(OtlpBodyError::Encoding(format!(
                "unsupported Content-Encoding {other:?}: send gzip or no encoding"
            )))
        }
    };
    let request = if content_type.contains("application/x-protobuf")
        || content_type.contains("application/protobuf")
    {
        mapping::decode_protobuf(body)?
    } else if content_type.contains("application/json") {
        mapping::decode_json(body)?
    } else {
        return Err(OtlpBodyError::ContentType(content_type.to_owned()));
    };
    let events = mapping::to_events(&request);
    let mut outcome = BatchOutcome::default();
    let parsed = events
        .into_iter()
        .enumerate()
        .map(|(index, (event, io))| {
            let time =
                parse_time_text(&event.timestamp, "timestamp").unwrap_or_else(|_| Utc::now());
            (index, event, io, time)
        })
        .collect();
    process_events(parsed, Scope::Project, &mut outcome);
    Ok(outcome)
}
