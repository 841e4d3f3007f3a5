//! HTTP client settings shared by scrape configs, remote_write and Kubernetes discovery:
//! `basic_auth`, `authorization`, the legacy `bearer_token`/`bearer_token_file`, and `tls_config`,
//! in Prometheus' YAML shape.
//!
//! Secrets given as files are read at every request, so a rotated token file is picked up without
//! a reload (as Prometheus does for `credentials_file` and `password_file`).
//!
//! ```
//! use pharos_collector::auth::HttpClientConfig;
//! let c: HttpClientConfig = serde_norway::from_str("basic_auth: {username: u, password: p}\n").unwrap();
//! assert_eq!(c.auth_header().unwrap().unwrap(), "Basic dTpw");
//! ```

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// `basic_auth`: a user name and a password (inline or from a file).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password; mutually exclusive with `password_file`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// A file whose content (trailing whitespace trimmed) is the password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_file: String,
}

pub use pharos_model::http::{Authorization, TlsConfig, base64};

/// The HTTP client settings, flattened into scrape configs, `remote_write` entries and
/// `kubernetes_sd_configs`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpClientConfig {
    /// `basic_auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// `authorization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// Legacy: same as `authorization: {credentials: ...}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bearer_token: String,
    /// Legacy: same as `authorization: {credentials_file: ...}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bearer_token_file: String,
    /// `tls_config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    /// Follow HTTP redirects (true).
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
}

fn default_true() -> bool {
    true
}

impl HttpClientConfig {
    /// Checks the combinations Prometheus rejects at load.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidConfig(m.to_string()));
        let bearer = !self.bearer_token.is_empty() || !self.bearer_token_file.is_empty();
        if [
            self.basic_auth.is_some(),
            self.authorization.is_some(),
            bearer,
        ]
        .iter()
        .filter(|b| **b)
        .count()
            > 1
        {
            return bad(
                "at most one of basic_auth, authorization and bearer_token/bearer_token_file may be configured",
            );
        }
        if !self.bearer_token.is_empty() && !self.bearer_token_file.is_empty() {
            return bad("at most one of bearer_token and bearer_token_file may be configured");
        }
        if let Some(b) = &self.basic_auth
            && !b.password.is_empty()
            && !b.password_file.is_empty()
        {
            return bad("at most one of basic_auth password and password_file may be configured");
        }
        if let Some(a) = &self.authorization {
            if !a.credentials.is_empty() && !a.credentials_file.is_empty() {
                return bad(
                    "at most one of authorization credentials and credentials_file may be configured",
                );
            }
            if a.kind.eq_ignore_ascii_case("basic") {
                return bad(
                    "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
                );
            }
        }
        if let Some(t) = &self.tls_config
            && !matches!(
                t.min_version.as_str(),
                "" | "TLS10" | "TLS11" | "TLS12" | "TLS13"
            )
        {
            return Err(Error::InvalidConfig(format!(
                "unknown TLS version: {}",
                t.min_version
            )));
        }
        Ok(())
    }

    /// The `Authorization` header value to send, if any. Reads secret files now.
    pub fn auth_header(&self) -> Result<Option<String>> {
        if let Some(b) = &self.basic_auth {
            let password = if b.password_file.is_empty() {
                b.password.clone()
            } else {
                read_secret(&b.password_file)?
            };
            let raw = format!("{}:{password}", b.username);
            return Ok(Some(format!("Basic {}", base64(raw.as_bytes()))));
        }
        let (kind, credentials) = if let Some(a) = &self.authorization {
            let c = if a.credentials_file.is_empty() {
                a.credentials.clone()
            } else {
                read_secret(&a.credentials_file)?
            };
            (a.kind.as_str(), c)
        } else if !self.bearer_token_file.is_empty() {
            ("Bearer", read_secret(&self.bearer_token_file)?)
        } else if !self.bearer_token.is_empty() {
            ("Bearer", self.bearer_token.clone())
        } else {
            return Ok(None);
        };
        Ok(Some(format!("{kind} {credentials}")))
    }

    /// Adds the `Authorization` header to a request.
    pub fn apply(&self, req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder> {
        Ok(match self.auth_header()? {
            Some(h) => req.header(reqwest::header::AUTHORIZATION, h),
            None => req,
        })
    }
}

/// Reads a secret file, trimming trailing whitespace (a final newline).
fn read_secret(path: &str) -> Result<String> {
    pharos_model::http::read_secret(path).map_err(|e| Error::Io {
        context: format!("reading secret file {path}"),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_b64(input: &str, want: &str) {
        assert_eq!(base64(input.as_bytes()), want);
    }

    #[test]
    fn base64_rfc4648_vectors() {
        check_b64("", "");
        check_b64("f", "Zg==");
        check_b64("fo", "Zm8=");
        check_b64("foo", "Zm9v");
        check_b64("foob", "Zm9vYg==");
        check_b64("fooba", "Zm9vYmE=");
        check_b64("foobar", "Zm9vYmFy");
    }

    #[track_caller]
    fn check(yaml: &str, want: std::result::Result<Option<&str>, &str>) {
        let c: HttpClientConfig = serde_norway::from_str(yaml).unwrap();
        let got = c.validate().and_then(|_| c.auth_header());
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g.as_deref(), w, "{yaml}"),
            (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e} lacks {w}"),
            (g, w) => panic!("{yaml}: got {g:?}, want {w:?}"),
        }
    }

    #[test]
    fn headers_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let f = file.display();
        check("{}", Ok(None));
        check(
            "basic_auth: {username: Aladdin, password: 'open sesame'}",
            Ok(Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")),
        );
        check(
            &format!("basic_auth: {{username: u, password_file: '{f}'}}"),
            Ok(Some("Basic dTpzM2NyZXQ=")),
        );
        check("authorization: {credentials: abc}", Ok(Some("Bearer abc")));
        check(
            &format!("authorization: {{type: Token, credentials_file: '{f}'}}"),
            Ok(Some("Token s3cret")),
        );
        check("bearer_token: xyz", Ok(Some("Bearer xyz")));
        check(
            &format!("bearer_token_file: '{f}'"),
            Ok(Some("Bearer s3cret")),
        );
        check(
            "basic_auth: {username: u}\nbearer_token: x",
            Err("at most one of basic_auth"),
        );
        check(
            "authorization: {type: Basic, credentials: x}",
            Err("use \"basic_auth\""),
        );
        check(
            "authorization: {credentials: a, credentials_file: b}",
            Err("credentials and credentials_file"),
        );
        check(
            "bearer_token_file: /nonexistent/token",
            Err("reading secret file /nonexistent/token"),
        );
        check(
            "tls_config: {min_version: TLS9}",
            Err("unknown TLS version"),
        );
        check(
            "tls_config: {insecure_skip_verify: true, server_name: x}",
            Ok(None),
        );
    }
}
