//! TLS for the collector's HTTP clients (scrapes, `remote_write`, Kubernetes discovery), built on
//! rustls with the `ring` provider.
//!
//! [`client_builder`] turns an optional [`TlsConfig`] into a `reqwest::ClientBuilder`:
//! - no `tls_config`: the system's trust store (rustls-platform-verifier), TLS 1.2 and 1.3;
//! - `ca_file`: only the CAs in that PEM file are trusted (as in Prometheus);
//! - `cert_file` + `key_file`: a client certificate (PEM; PKCS#8, PKCS#1 or SEC1 key);
//! - `server_name`: the certificate is verified for this name instead of the URL's host; to also
//!   send it as SNI in the handshake (as Prometheus does), build the client with [`sni_builder`],
//!   which routes the URL's connection through a resolver (see [`Endpoint`]);
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

/// Where to send requests for one URL so that `tls_config.server_name` is the SNI of the
/// handshake.
///
/// rustls (through reqwest) sends the request URL's host as SNI. With a DNS `server_name` on an
/// `https` URL whose host differs, [`sni_builder`] rewrites the URL's host to `server_name`,
/// installs a resolver that maps `server_name` to the original host's addresses (other names
/// resolve normally), and [`Endpoint::apply`] sends the original `host[:port]` as the `Host`
/// header. Otherwise the URL is unchanged. Error messages of such requests name the rewritten
/// URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL to request.
    pub url: reqwest::Url,
    /// The `Host` header to send (the original URL's authority), when the URL was rewritten.
    pub host: Option<String>,
}

impl Endpoint {
    /// Adds the `Host` header of a rewritten URL to `req`.
    pub fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.host {
            Some(h) => req.header(reqwest::header::HOST, h),
            None => req,
        }
    }
}

/// A client builder for requests to `url` (as [`client_builder`]) that sends
/// `tls_config.server_name` as SNI, and the [`Endpoint`] to request.
pub fn sni_builder(
    tls: Option<&TlsConfig>,
    url: &reqwest::Url,
) -> Result<(reqwest::ClientBuilder, Endpoint)> {
    let b = client_builder(tls)?;
    let unchanged = Endpoint {
        url: url.clone(),
        host: None,
    };
    let Some(t) = tls.filter(|t| !t.server_name.is_empty()) else {
        return Ok((b, unchanged));
    };
    let sni_is_dns = matches!(
        ServerName::try_from(t.server_name.as_str()),
        Ok(ServerName::DnsName(_))
    );
    let Some(host) = url.host_str() else {
        return Ok((b, unchanged));
    };
    // An IPv6 literal is bracketed in URLs, bare for the resolver.
    let original = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if url.scheme() != "https" || !sni_is_dns || original.eq_ignore_ascii_case(&t.server_name) {
        return Ok((b, unchanged));
    }
    let mut rewritten = url.clone();
    rewritten.set_host(Some(&t.server_name)).map_err(|e| {
        Error::InvalidConfig(format!(
            "tls_config: server_name {:?} cannot be a URL host: {e}",
            t.server_name
        ))
    })?;
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let resolver = SniResolver {
        server_name: t.server_name.to_ascii_lowercase(),
        original,
    };
    Ok((
        b.dns_resolver(Arc::new(resolver)),
        Endpoint {
            url: rewritten,
            host: Some(authority),
        },
    ))
}

/// Resolves `server_name` to the addresses of the URL's real host; other names as usual.
#[derive(Debug)]
struct SniResolver {
    server_name: String,
    original: String,
}

impl reqwest::dns::Resolve for SniResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = if name.as_str().eq_ignore_ascii_case(&self.server_name) {
            self.original.clone()
        } else {
            name.as_str().to_string()
        };
        Box::pin(async move {
            // Port 0: the connector puts the URL's port in.
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
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
