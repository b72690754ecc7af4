//! API keys: Basic `publicKey:secretKey` opens a project; Bearer `publicKey` may only send
//! scores. Secrets are stored as SHA-256 hashes and compared in constant time.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::http::HeaderMap;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::ingest::Scope;
use crate::store::{ApiKey, Store};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The project every read and write is confined to.
    pub project_id: String,
    /// What the credential may do.
    pub scope: Scope,
}

/// Hex SHA-256 of a secret key.
pub fn hash_secret(secret: &str) -> String {
    axion_model::to_hex(&Sha256::digest(secret.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh key pair in Langfuse's format (`pk-lf-…`, `sk-lf-…`).
pub fn generate_key_pair() -> (String, String) {
    let mut bytes = [0u8; 32];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No OS randomness: fall back to the process's keyed hasher (still unpredictable).
        let id = axion_model::random_event_id() + &axion_model::random_event_id();
        bytes.copy_from_slice(&Sha256::digest(id.as_bytes()));
    }
    let uuid = |b: &[u8]| {
        let hex = axion_model::to_hex(b);
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    };
    (
        format!("pk-lf-{}", uuid(&bytes[..16])),
        format!("sk-lf-{}", uuid(&bytes[16..])),
    )
}

/// Checks credentials, remembering verified headers so each request costs one map lookup.
#[derive(Debug, Default)]
pub struct Authenticator {
    verified: RwLock<HashMap<String, Caller>>,
}

const HINT: &str = "Confirm that you've configured the correct host.";

impl Authenticator {
    /// The caller of an `Authorization` header verified before, if any: no store call, so the
    /// async handlers ask this first and send only a miss to the blocking pool.
    pub fn cached(&self, headers: &HeaderMap) -> Option<Caller> {
        let header = headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        self.verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(header)
            .cloned()
    }

    /// Resolves the `Authorization` header to a caller (a store call the first time a header
    /// is seen: run it off the async threads).
    pub fn authenticate(
        &self,
        store: &dyn Store,
        headers: &HeaderMap,
        ingestion: bool,
    ) -> Result<Caller, ApiError> {
        let unauthorized = |message: String| ApiError::Unauthorized { message, ingestion };
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("No authorization header".into()))?
            .to_str()
            .map_err(|_| unauthorized(format!("Invalid authorization header. {HINT}")))?;
        if let Some(caller) = self
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(header)
        {
            return Ok(caller.clone());
        }
        let caller = if let Some(encoded) = header.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| unauthorized(format!("Invalid basic auth encoding. {HINT}")))?;
            let (public_key, secret_key) = decoded
                .split_once(':')
                .ok_or_else(|| unauthorized(format!("Invalid basic auth credentials. {HINT}")))?;
            let key = find_key(store, public_key)?;
            let valid = key.as_ref().is_some_and(|key| {
                constant_time_eq(
                    key.secret_hash.as_bytes(),
                    hash_secret(secret_key).as_bytes(),
                )
            });
            let key = key
                .filter(|_| valid)
                .ok_or_else(|| unauthorized(format!("Invalid credentials. {HINT}")))?;
            Caller {
                project_id: key.project_id,
                scope: Scope::Project,
            }
        } else if let Some(public_key) = header.strip_prefix("Bearer ") {
            let key = find_key(store, public_key.trim())?
                .ok_or_else(|| unauthorized(format!("Invalid public key. {HINT}")))?;
            Caller {
                project_id: key.project_id,
                scope: Scope::ScoresOnly,
            }
        } else {
            return Err(unauthorized(format!(
                "Invalid authorization header: use Basic base64(publicKey:secretKey). {HINT}"
            )));
        };
        let mut verified = self.verified.write().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= 1024 {
            verified.clear();
        }
        verified.insert(header.to_owned(), caller.clone());
        Ok(caller)
    }

    /// Forgets verified credentials (after keys change).
    pub fn forget(&self) {
        self.verified
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

fn find_key(store: &dyn Store, public_key: &str) -> Result<Option<ApiKey>, ApiError> {
    Ok(store.api_key(public_key)?)
}

/// Requires full project access (everything but score writes).
pub fn require_project(caller: &Caller) -> Result<(), ApiError> {
    match caller.scope {
        Scope::Project => Ok(()),
        Scope::ScoresOnly => Err(ApiError::Forbidden(
            "Access denied: a public key alone (Bearer) may only send scores; use Basic auth with the secret key"
                .into(),
        )),
    }
}
