//! TLS for the collector's HTTP clients (scrapes, `remote_write`, Kubernetes discovery), built on
//! rustls with the `ring` provider.
//!
//! [`client_builder`] turns an optional [`TlsConfig`] into a `reqwest::ClientBuilder`:
//! - no `tls_config`: the system's trust store (rustls-platform-verifier), TLS 1.2 and 1.3;
//! - `ca_file`: only the CAs in that PEM file are trusted (as in Prometheus);
//! - `cert_file` + `key_file`: a client certificate (PEM; PKCS#8, PKCS#1 or SEC1 key);
//! - `server_name`: the certificate is verified for this name instead of the URL's host (the SNI
//!   sent is still the URL's host);
//! - `insecure_skip_verify`: any certificate is accepted (handshake signatures are still checked);
//! - `min_version`: `TLS13` allows only TLS 1.3; `TLS10`, `TLS11`, `TLS12` and empty allow 1.2
//!   and 1.3 (rustls implements nothing older).
//!
//! Files are read when the client is built (at config load and reload); a missing or malformed
//! file rejects the config with its path.
//!
//! [`install_provider`] makes `ring` the process' default rustls provider; reqwest (built with
//! `rustls-no-provider`) needs one before any `reqwest::Client` is built. The binary calls it at
//! start; [`client_builder`] calls it too.
//!
//! ```
//! use pharos_collector::auth::TlsConfig;
//! let tls = TlsConfig { insecure_skip_verify: true, ..TlsConfig::default() };
//! let client = pharos_collector::tls::client_builder(Some(&tls)).unwrap().build().unwrap();
//! # drop(client);
//! ```

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::auth::TlsConfig;
use crate::{Error, Result};

/// Installs `ring` as the process-wide default rustls provider, unless one is installed already.
/// Idempotent and cheap; call it before building any `reqwest::Client`.
pub fn install_provider() {
    if CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing one is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A `reqwest::ClientBuilder` whose TLS follows `tls` (`None`: system roots, TLS 1.2+). Reads the
/// CA, certificate and key files now.
pub fn client_builder(tls: Option<&TlsConfig>) -> Result<reqwest::ClientBuilder> {
    install_provider();
    let b = reqwest::Client::builder();
    match tls {
        None => Ok(b),
        Some(t) if *t == TlsConfig::default() => Ok(b),
        Some(t) => Ok(b.tls_backend_preconfigured(rustls_config(t)?)),
    }
}

/// The rustls client configuration for `t`.
pub fn rustls_config(t: &TlsConfig) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match t.min_version.as_str() {
        "" | "TLS10" | "TLS11" | "TLS12" => &[&rustls::version::TLS13, &rustls::version::TLS12],
        "TLS13" => &[&rustls::version::TLS13],
        other => {
            return Err(Error::InvalidConfig(format!(
                "tls_config: unknown TLS version: {other}"
            )));
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| Error::HttpClient(format!("tls_config: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if t.insecure_skip_verify {
        Arc::new(AcceptAny(provider.clone()))
    } else if !t.ca_file.is_empty() {
        let mut roots = rustls::RootCertStore::empty();
        let certs = read_certs(&t.ca_file, "ca_file")?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::InvalidConfig(format!(
                "tls_config: unable to use specified CA cert {}: no usable certificate",
                t.ca_file
            )));
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| Error::HttpClient(format!("tls_config: ca_file {}: {e}", t.ca_file)))?
    } else {
        Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| Error::HttpClient(format!("tls_config: system roots: {e}")))?,
        )
    };
    let verifier: Arc<dyn ServerCertVerifier> =
        if t.server_name.is_empty() || t.insecure_skip_verify {
            verifier
        } else {
            let name = ServerName::try_from(t.server_name.clone()).map_err(|e| {
                Error::InvalidConfig(format!("tls_config: server_name {:?}: {e}", t.server_name))
            })?;
            Arc::new(FixedName {
                inner: verifier,
                name,
            })
        };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (t.cert_file.is_empty(), t.key_file.is_empty()) {
        (true, true) => builder.with_no_client_auth(),
        (false, false) => {
            let certs = read_certs(&t.cert_file, "cert_file")?;
            let key = PrivateKeyDer::from_pem_file(&t.key_file).map_err(|e| {
                Error::InvalidConfig(format!(
                    "tls_config: unable to load client key file {}: {e}",
                    t.key_file
                ))
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                Error::InvalidConfig(format!(
                    "tls_config: client cert {} and key {}: {e}",
                    t.cert_file, t.key_file
                ))
            })?
        }
        (false, true) => {
            return Err(Error::InvalidConfig(format!(
                "tls_config: client cert file {:?} specified without client key file",
                t.cert_file
            )));
        }
        (true, false) => {
            return Err(Error::InvalidConfig(format!(
                "tls_config: client key file {:?} specified without client cert file",
                t.key_file
            )));
        }
    };
    Ok(config)
}

/// All certificates of a PEM file; none is an error.
fn read_certs(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let err = |m: String| Error::InvalidConfig(format!("tls_config: {what} {path}: {m}"));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(certs)
}

/// `insecure_skip_verify`: any certificate, any name; signatures still checked.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `server_name`: verifies the certificate for a fixed name instead of the URL's host.
#[derive(Debug)]
struct FixedName {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
