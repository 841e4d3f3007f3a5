//! HTTP client settings in Prometheus' YAML shape shared by the collector (scrapes, remote_write,
//! Kubernetes discovery) and the notifier (Alertmanagers), and the helpers both use to make an
//! `Authorization` header.

use serde::{Deserialize, Serialize};

fn default_auth_type() -> String {
    "Bearer".into()
}

/// `authorization`: an `Authorization: <type> <credentials>` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme (`Bearer`); `Basic` is rejected, use `basic_auth`.
    #[serde(default = "default_auth_type", rename = "type")]
    pub kind: String,
    /// The credentials; mutually exclusive with `credentials_file`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credentials: String,
    /// A file whose content (trailing whitespace trimmed) is the credentials, read at every
    /// request.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credentials_file: String,
}

/// `tls_config` (applied by the collector's TLS client code).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate file to verify the server with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    /// Client certificate file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert_file: String,
    /// Client key file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_file: String,
    /// Server name to verify and send as SNI.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    /// Skip certificate verification.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Minimum TLS version (`TLS12`, `TLS13`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub min_version: String,
}

/// Reads a secret file, trimming trailing whitespace (a final newline).
pub fn read_secret(path: &str) -> std::io::Result<String> {
    std::fs::read_to_string(path).map(|s| s.trim_end().to_string())
}

/// Standard base64 with padding (RFC 4648), for `Basic` credentials.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
