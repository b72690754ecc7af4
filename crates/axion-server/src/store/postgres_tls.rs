//! TLS to PostgreSQL with libpq's `sslmode` meanings, so the URL a managed database hands out
//! works as it does with `psql`:
//!
//! | `sslmode` | encrypted | certificate checked |
//! | --- | --- | --- |
//! | `disable` | no | |
//! | `prefer` (the default) | when the server offers it | no |
//! | `require` | yes | no |
//! | `verify-ca` | yes | chain, against the trusted roots |
//! | `verify-full` | yes | chain and host name |
//!
//! Trusted roots are the Mozilla set (`webpki-roots`) plus the certificates of the file named
//! by `sslrootcert` (PEM), as a cloud provider's CA bundle usually is. Both options, and the
//! pool's `pool_max_conns`, are taken out of the URL before the rest is parsed (the driver
//! knows none of `verify-*`, `sslrootcert` and `pool_max_conns`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::StoreError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A connection URL split into what the driver parses and how TLS is to be checked.
#[derive(Debug)]
pub(super) struct Split {
    /// The URL without `sslmode`, `sslrootcert` and `pool_max_conns`.
    pub(super) url: String,
    pub(super) mode: SslMode,
    pub(super) root_cert: Option<String>,
    /// `pool_max_conns` (pgx's name): how many connections the store opens at most.
    pub(super) max_connections: Option<usize>,
}

/// Takes `sslmode`, `sslrootcert` and `pool_max_conns` out of a `postgres://…?…` URL or a
/// `key=value` string.
pub(super) fn split(url: &str) -> Result<Split, StoreError> {
    let mut mode = None;
    let mut root_cert = None;
    let mut max_connections = None;
    let mut take = |key: &str, value: &str| -> Result<bool, StoreError> {
        match key {
            "sslmode" => {
                mode = Some(match value {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(StoreError::Database(format!(
                            "database URL: sslmode {other:?} is none of disable, prefer, require, verify-ca, verify-full"
                        )))
                    }
                });
                Ok(true)
            }
            "sslrootcert" => {
                root_cert = Some(value.to_owned());
                Ok(true)
            }
            "pool_max_conns" => match value.parse::<usize>() {
                Ok(count) if count > 0 => {
                    max_connections = Some(count);
                    Ok(true)
                }
                _ => Err(StoreError::Database(format!(
                    "database URL: pool_max_conns {value:?} is not a positive whole number"
                ))),
            },
            _ => Ok(false),
        }
    };
    let rest = if is_url(url) {
        match url.split_once('?') {
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|pair| !pair.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    let value = percent_decode(value);
                    if !take(key, &value)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_owned(),
        }
    } else {
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key.trim(), value.trim_matches('\''))? {
                kept.push(pair);
            }
        }
        kept.join(" ")
    };
    Ok(Split {
        url: rest,
        mode: mode.unwrap_or(SslMode::Prefer),
        root_cert,
        max_connections,
    })
}

/// Whether `text` is a `postgres://` (or `postgresql://`) URL.
fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// Whether `location` names a PostgreSQL database: a URL, or libpq's `host=… dbname=…` form.
pub(super) fn is_database(location: &str) -> bool {
    is_url(location)
        || location
            .split_whitespace()
            .any(|pair| pair.starts_with("host=") || pair.starts_with("dbname="))
}

/// `%XX` escapes of a URL's query value.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connector for `mode`, trusting the Mozilla roots and those in `root_cert`.
pub(super) fn connector(
    mode: SslMode,
    root_cert: Option<&str>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = root_cert {
        let certificates = CertificateDer::pem_file_iter(path)
            .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
            .map_err(|error| StoreError::Database(format!("sslrootcert {path}: {error}")))?;
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| StoreError::Database(format!("sslrootcert {path}: {error}")))?;
        }
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|error| StoreError::Database(format!("TLS roots: {error}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = Arc::new(Verifier {
        mode,
        webpki,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| StoreError::Database(format!("TLS: {error}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Checks a server's certificate as far as the mode asks. Whatever the mode, the handshake's
/// signatures are verified: the server holds the key of the certificate it shows.
#[derive(Debug)]
struct Verifier {
    mode: SslMode,
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let checked = || {
            self.webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )
        };
        match self.mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => {
                Ok(ServerCertVerified::assertion())
            }
            SslMode::VerifyFull => checked(),
            SslMode::VerifyCa => match checked() {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            },
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_leave_the_url_and_keep_the_rest() {
        let split = split(
            "postgres://u:p@db.example.com:5432/axion?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            split.url,
            "postgres://u:p@db.example.com:5432/axion?application_name=x"
        );
        assert_eq!(split.mode, SslMode::VerifyFull);
        assert_eq!(split.root_cert.as_deref(), Some("/etc/ca.pem"));

        let split = split_default("postgres://127.0.0.1/axion");
        assert_eq!(
            (split.url.as_str(), split.mode),
            ("postgres://127.0.0.1/axion", SslMode::Prefer)
        );
        let split = split_default("host=127.0.0.1 sslmode=require dbname=axion");
        assert_eq!(
            (split.url.as_str(), split.mode),
            ("host=127.0.0.1 dbname=axion", SslMode::Require)
        );
        assert!(super::split("postgres://h/d?sslmode=sometimes").is_err());
        let split = split_default("postgres://h/d?pool_max_conns=3&sslmode=disable");
        assert_eq!(
            (split.url.as_str(), split.max_connections),
            ("postgres://h/d", Some(3))
        );
        assert_eq!(
            split_default("host=h pool_max_conns=2").max_connections,
            Some(2)
        );
        assert_eq!(split_default("postgres://h/d").max_connections, None);
        for bad in ["0", "-1", "many", ""] {
            assert!(super::split(&format!("postgres://h/d?pool_max_conns={bad}")).is_err());
        }
    }

    fn split_default(url: &str) -> Split {
        super::split(url).unwrap()
    }
}
