//! Sending a request body to a backend from the export worker: retries with jittered
//! exponential backoff on connection errors and 429/502/503/504 (honouring `Retry-After`),
//! never on other 4xx, and never longer than the retry budget.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long and how often a batch is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Per-request timeout (`LANGFUSE_TIMEOUT` and friends).
    pub request_timeout: Duration,
    /// First backoff delay; doubles per attempt.
    pub initial_backoff: Duration,
    /// Largest backoff delay (a longer `Retry-After` is honoured up to `max_elapsed`).
    pub max_backoff: Duration,
    /// Total time a batch may spend being retried before it is dropped (and counted).
    pub max_elapsed: Duration,
    /// Retry every 5xx, not only 502/503/504 (readers can repeat any request safely).
    pub retry_all_server_errors: bool,
    /// Give up at once when the very first attempt finds nothing listening (interactive
    /// readers: a wrong host is a configuration error, not a hiccup).
    pub fail_fast_when_unreachable: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
            retry_all_server_errors: false,
            fail_fast_when_unreachable: false,
        }
    }
}

/// A body ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// `POST`, `PUT` or `PATCH`.
    pub method: &'static str,
    /// Full URL.
    pub url: String,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Gzip-compressed already (adds `Content-Encoding: gzip`).
    pub gzip: bool,
    /// Extra headers (authorization, SDK identification).
    pub headers: Vec<(String, String)>,
    /// The bytes.
    pub body: Vec<u8>,
}

/// What the backend answered, once it answered something final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response body (for 207 bookkeeping).
    pub body: String,
}

/// A blocking HTTP client with the retry policy, shared by exporters (on their worker thread)
/// and loaders.
#[derive(Clone)]
pub struct HttpSender {
    /// Shared by clones: one connection pool for every concurrent export of a provider.
    client: std::sync::Arc<std::sync::OnceLock<reqwest::blocking::Client>>,
    policy: RetryPolicy,
    backend: String,
}

impl std::fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSender")
            .field("backend", &self.backend)
            .field("policy", &self.policy)
            .finish()
    }
}

/// Gzip-compresses a body (fast level: the CPU is on the exporter's threads, not the caller).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

fn retry_after(response: &reqwest::blocking::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// ±50 % jitter from the clock's low bits (no RNG dependency needed for spreading retries).
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.5 + f64::from(nanos % 1000) / 1000.0;
    delay.mul_f64(factor)
}

impl HttpSender {
    /// A sender for `backend` (named in errors). The client is built on first use, on the
    /// worker thread, so constructing a provider inside an async runtime is safe.
    pub fn new(backend: &str, policy: RetryPolicy) -> Self {
        Self {
            client: std::sync::Arc::new(std::sync::OnceLock::new()),
            policy,
            backend: backend.to_owned(),
        }
    }

    fn client(&self) -> Result<&reqwest::blocking::Client> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(self.policy.request_timeout)
            .user_agent(concat!("axion-rust/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| self.failure(format!("cannot build the HTTP client: {error}")))?;
        Ok(self.client.get_or_init(|| client))
    }

    fn failure(&self, reason: String) -> Error {
        Error::Export {
            backend: self.backend.clone(),
            reason,
        }
    }

    /// Sends until a final answer (any 2xx, or a 4xx that is not 429) or the retry budget is
    /// spent. A non-2xx final answer is an error.
    pub fn send(&self, outgoing: &Outgoing) -> Result<Answer> {
        let answer = self.exchange(outgoing)?;
        if (200..300).contains(&answer.status) {
            return Ok(answer);
        }
        Err(self.failure(format!(
            "{} answered {}: {}",
            outgoing.url,
            answer.status,
            truncate(&answer.body)
        )))
    }

    /// Retries like [`HttpSender::send`] but hands back whatever final status arrived (a reader
    /// turns 404 into "none" and 401 into a hint about keys).
    pub fn exchange(&self, outgoing: &Outgoing) -> Result<Answer> {
        let started = Instant::now();
        let mut backoff = self.policy.initial_backoff;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let client = self.client()?;
            let method = reqwest::Method::from_bytes(outgoing.method.as_bytes())
                .unwrap_or(reqwest::Method::POST);
            let mut request = client.request(method, &outgoing.url);
            if outgoing.method != "GET" {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, outgoing.content_type)
                    .body(outgoing.body.clone());
            }
            if outgoing.gzip {
                request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
            }
            for (name, value) in &outgoing.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let (delay, reason) = match request.send() {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let hinted = retry_after(&response);
                    let body = response.text().unwrap_or_default();
                    let retry = retryable(status)
                        || (self.policy.retry_all_server_errors && (500..600).contains(&status));
                    if !retry {
                        return Ok(Answer { status, body });
                    }
                    (
                        hinted.unwrap_or_else(|| jitter(backoff)),
                        format!("{} answered {status}", outgoing.url),
                    )
                }
                Err(error)
                    if error.is_connect()
                        && attempt == 1
                        && self.policy.fail_fast_when_unreachable =>
                {
                    return Err(self.failure(format!("cannot reach {}: {error}", outgoing.url)));
                }
                Err(error) => (
                    jitter(backoff),
                    format!("cannot reach {}: {error}", outgoing.url),
                ),
            };
            if started.elapsed() + delay > self.policy.max_elapsed {
                return Err(self.failure(format!(
                    "{reason}; gave up after {attempt} attempts in {:?}",
                    started.elapsed()
                )));
            }
            log::debug!("axion: {reason}; retrying in {delay:?} (attempt {attempt})");
            std::thread::sleep(delay);
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(300) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}
