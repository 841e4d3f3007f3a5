//! A small HTTP/1.1 client for plain `http` scrapes: one kept-alive connection per target,
//! driven from the scrape loop's own task.
//!
//! The general client (reqwest over hyper) costs about as much CPU per request as appending a few
//! hundred samples: a connection task beside the request task, a pool checkout, header maps.
//! A scrape is always the same `GET` to the same target, so this client writes a request head
//! built once per loop, reads the response straight into the body buffer and keeps the
//! connection for the next interval (as Prometheus' transport does). It handles `Content-Length`,
//! `chunked` and read-to-close bodies and `gzip`; everything else (TLS, redirects to follow,
//! credentials in the URL, `1xx` heads) goes through reqwest ([`Fetched::Fallback`]).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response head read (status line and headers).
const MAX_HEAD: usize = 64 << 10;
/// Bytes asked of the socket per read.
const READ_SIZE: usize = 64 << 10;

/// What a fetch through [`Client`] gave.
pub(crate) enum Fetched {
    /// A 2xx response whose (decompressed) body is in the caller's buffer.
    Body {
        /// The `Content-Type` header, if any.
        content_type: Option<String>,
    },
    /// The request failed; the message says why.
    Failed(String),
    /// Something this client leaves to the general one (a redirect to follow, a `1xx` head).
    Fallback,
}

/// Where a target lives and the fixed part of its request.
#[derive(Debug)]
pub(crate) struct Client {
    addr: Addr,
    /// `GET <path> HTTP/1.1` and the headers that never change, each line ending in CRLF.
    head: Vec<u8>,
    follow_redirects: bool,
    conn: Option<Conn>,
    /// The request of the current scrape (the head plus per-scrape headers).
    request: Vec<u8>,
    /// Compressed body bytes (gzip responses only).
    raw: Vec<u8>,
}

#[derive(Debug)]
enum Addr {
    Name(String, u16),
    Ip(std::net::SocketAddr),
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    /// Bytes read past what was consumed.
    buf: Vec<u8>,
    pos: usize,
}

/// Why an exchange stopped.
enum Fail {
    /// A reused connection closed before any byte of the response: retry on a new one.
    Stale,
    Msg(String),
    Fallback,
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Msg(s)
    }
}

/// The parts of a response head this client uses.
struct Head {
    status: u16,
    /// HTTP/1.1 (else 1.0).
    v11: bool,
    content_length: Option<u64>,
    chunked: bool,
    gzip: bool,
    close: bool,
    keep_alive: bool,
    content_type: Option<String>,
    /// Bytes of the head including the blank line.
    len: usize,
}

impl Client {
    /// A client for `url` if this module can scrape it (plain `http`, no credentials in the URL).
    pub fn new(url: &reqwest::Url, accept: &str, follow_redirects: bool) -> Option<Self> {
        if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let port = url.port_or_known_default()?;
        let host = url.host_str()?;
        let addr = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Addr::Ip((v6.parse::<std::net::Ipv6Addr>().ok()?, port).into())
        } else if let Ok(v4) = host.parse::<std::net::Ipv4Addr>() {
            Addr::Ip((v4, port).into())
        } else {
            Addr::Name(host.to_string(), port)
        };
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        if target.is_empty() || target.bytes().any(|c| c <= b' ' || c == 0x7f) {
            return None;
        }
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let head = format!(
            "GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: Pharos/{}\r\nAccept: {accept}\r\nAccept-Encoding: gzip\r\n",
            env!("CARGO_PKG_VERSION")
        );
        Some(Self {
            addr,
            head: head.into_bytes(),
            follow_redirects,
            conn: None,
            request: Vec::new(),
            raw: Vec::new(),
        })
    }

    /// GETs the target with `extra` headers (`Name: value` pairs) into `body` (cleared), at most
    /// `limit` bytes after decompression (0: no limit). A connection kept from the last scrape is
    /// reused; if it turns out closed before the response starts, the request goes once more on
    /// a new one. Dropping the future (a timeout) drops the connection.
    pub async fn get(&mut self, extra: &[(&str, &str)], limit: u64, body: &mut Vec<u8>) -> Fetched {
        self.request.clear();
        self.request.extend_from_slice(&self.head);
        for (k, v) in extra {
            if v.bytes().any(|c| c == b'\r' || c == b'\n') {
                return Fetched::Failed(format!("invalid value of request header {k}"));
            }
            self.request.extend_from_slice(k.as_bytes());
            self.request.extend_from_slice(b": ");
            self.request.extend_from_slice(v.as_bytes());
            self.request.extend_from_slice(b"\r\n");
        }
        self.request.extend_from_slice(b"\r\n");
        for attempt in 0..2 {
            let (mut conn, reused) = match self.conn.take() {
                Some(c) if attempt == 0 => (c, true),
                _ => match self.connect().await {
                    Ok(c) => (c, false),
                    Err(e) => return Fetched::Failed(e),
                },
            };
            body.clear();
            match self.exchange(&mut conn, reused, limit, body).await {
                Ok((head, keep)) => {
                    if keep {
                        self.conn = Some(conn);
                    }
                    return Fetched::Body {
                        content_type: head.content_type,
                    };
                }
                Err(Fail::Stale) => continue,
                Err(Fail::Msg(m)) => return Fetched::Failed(m),
                Err(Fail::Fallback) => return Fetched::Fallback,
            }
        }
        Fetched::Failed("connection closed before the response".to_string())
    }

    async fn connect(&self) -> Result<Conn, String> {
        let r = match &self.addr {
            Addr::Name(h, p) => TcpStream::connect((h.as_str(), *p)).await,
            Addr::Ip(a) => TcpStream::connect(a).await,
        };
        let stream = r.map_err(|e| format!("connecting to {}: {e}", self.addr_text()))?;
        // As reqwest does: requests are written whole, no Nagle delay on them.
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: Vec::new(),
            pos: 0,
        })
    }

    fn addr_text(&self) -> String {
        match &self.addr {
            Addr::Name(h, p) => format!("{h}:{p}"),
            Addr::Ip(a) => a.to_string(),
        }
    }

    /// Writes the request and reads the response; `true` with the head if the connection can
    /// carry the next request.
    async fn exchange(
        &mut self,
        c: &mut Conn,
        reused: bool,
        limit: u64,
        body: &mut Vec<u8>,
    ) -> Result<(Head, bool), Fail> {
        c.buf.clear();
        c.pos = 0;
        if let Err(e) = c.stream.write_all(&self.request).await {
            return Err(if reused {
                Fail::Stale
            } else {
                Fail::Msg(format!("sending the request: {e}"))
            });
        }
        // The head.
        let head = loop {
            if let Some(h) = parse_head(&c.buf)? {
                break h;
            }
            if c.buf.len() > MAX_HEAD {
                return Err(Fail::Msg(format!(
                    "response head larger than {MAX_HEAD} bytes"
                )));
            }
            match c.fill().await {
                Ok(0) if reused && c.buf.is_empty() => return Err(Fail::Stale),
                Ok(0) => {
                    return Err(Fail::Msg(
                        "connection closed before the end of the response head".into(),
                    ));
                }
                Ok(_) => {}
                Err(e) if reused && c.buf.is_empty() => {
                    let _ = e;
                    return Err(Fail::Stale);
                }
                Err(e) => return Err(Fail::Msg(format!("reading the response: {e}"))),
            }
        };
        c.pos = head.len;
        if (100..200).contains(&head.status) {
            return Err(Fail::Fallback);
        }
        if (300..400).contains(&head.status) && self.follow_redirects {
            return Err(Fail::Fallback);
        }
        if !(200..300).contains(&head.status) {
            let status = reqwest::StatusCode::from_u16(head.status)
                .map_or_else(|_| head.status.to_string(), |s| s.to_string());
            return Err(Fail::Msg(format!("server returned HTTP status {status}")));
        }
        // Compressed bytes may exceed the limit a little where the decompressed ones do not.
        let raw_limit = if limit == 0 {
            0
        } else if head.gzip {
            limit.saturating_add(limit / 8).saturating_add(1024)
        } else {
            limit
        };
        let over = || Fail::Msg(format!("body size limit exceeded: more than {limit} bytes"));
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        let out: &mut Vec<u8> = if head.gzip { &mut raw } else { body };
        let mut keep = head.v11 && !head.close || !head.v11 && head.keep_alive;
        let r = if head.status == 204 {
            // No body, whatever the headers say.
            Ok(())
        } else if head.chunked {
            c.read_chunked(out, raw_limit).await
        } else if let Some(n) = head.content_length {
            if raw_limit > 0 && n > raw_limit {
                self.raw = raw;
                return Err(over());
            }
            c.read_exact_into(out, n).await
        } else {
            keep = false;
            c.read_to_end(out, raw_limit).await
        };
        let r = match r {
            Ok(()) if head.gzip => gunzip(&raw, limit, body),
            r => r,
        };
        self.raw = raw;
        match r {
            Ok(()) => Ok((head, keep && c.pos == c.buf.len())),
            Err(Err::Over) => Err(over()),
            Err(Err::Msg(m)) => Err(Fail::Msg(m)),
        }
    }
}

/// Why a body could not be read.
enum Err {
    /// More than the body size limit.
    Over,
    Msg(String),
}

impl Conn {
    /// Reads more bytes into `buf`; the number read (0 at end of stream).
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.reserve(READ_SIZE);
        self.stream.read_buf(&mut self.buf).await
    }

    /// The unread buffered bytes.
    fn buffered(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Appends exactly `n` body bytes to `out`.
    async fn read_exact_into(&mut self, out: &mut Vec<u8>, n: u64) -> Result<(), Err> {
        let n = usize::try_from(n).map_err(|_| Err::Msg(format!("body of {n} bytes")))?;
        let have = self.buffered().len().min(n);
        out.reserve(n.min(16 << 20));
        out.extend_from_slice(&self.buffered()[..have]);
        self.pos += have;
        let mut rest = n - have;
        while rest > 0 {
            out.reserve(rest.min(16 << 20));
            let got = (&mut self.stream)
                .take(rest as u64)
                .read_buf(out)
                .await
                .map_err(|e| Err::Msg(format!("reading the body: {e}")))?;
            if got == 0 {
                return Err(Err::Msg(format!(
                    "connection closed {rest} bytes before the end of the body"
                )));
            }
            rest -= got;
        }
        Ok(())
    }

    /// Appends everything up to the end of the stream to `out`.
    async fn read_to_end(&mut self, out: &mut Vec<u8>, limit: u64) -> Result<(), Err> {
        out.extend_from_slice(self.buffered());
        self.pos = self.buf.len();
        loop {
            if limit > 0 && out.len() as u64 > limit {
                return Err(Err::Over);
            }
            out.reserve(READ_SIZE);
            let got = self
                .stream
                .read_buf(out)
                .await
                .map_err(|e| Err::Msg(format!("reading the body: {e}")))?;
            if got == 0 {
                return if limit > 0 && out.len() as u64 > limit {
                    Err(Err::Over)
                } else {
                    Ok(())
                };
            }
        }
    }

    /// The next CRLF-terminated line (without the CRLF), consumed.
    async fn line(&mut self) -> Result<String, Err> {
        loop {
            let b = self.buffered();
            if let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
                let s = String::from_utf8_lossy(&b[..i]).into_owned();
                self.pos += i + 2;
                return Ok(s);
            }
            if b.len() > 4096 {
                return Err(Err::Msg("chunk header line too long".into()));
            }
            match self.fill().await {
                Ok(0) => {
                    return Err(Err::Msg("connection closed inside a chunked body".into()));
                }
                Ok(_) => {}
                Err(e) => return Err(Err::Msg(format!("reading the body: {e}"))),
            }
        }
    }

    /// A `Transfer-Encoding: chunked` body, its trailers skipped.
    async fn read_chunked(&mut self, out: &mut Vec<u8>, limit: u64) -> Result<(), Err> {
        loop {
            let line = self.line().await?;
            let size = line.split(';').next().unwrap_or("").trim();
            let n = u64::from_str_radix(size, 16)
                .map_err(|_| Err::Msg(format!("invalid chunk size {size:?}")))?;
            if n == 0 {
                // Trailers up to the blank line.
                while !self.line().await?.is_empty() {}
                return Ok(());
            }
            if limit > 0 && (out.len() as u64).saturating_add(n) > limit {
                return Err(Err::Over);
            }
            self.read_exact_into(out, n).await?;
            if !self.line().await?.is_empty() {
                return Err(Err::Msg("chunk not followed by CRLF".into()));
            }
        }
    }
}

/// Decompresses a gzip body into `out`, at most `limit` bytes (0: no limit).
fn gunzip(raw: &[u8], limit: u64, out: &mut Vec<u8>) -> Result<(), Err> {
    use std::io::Read;
    let cap = if limit == 0 {
        u64::MAX
    } else {
        limit.saturating_add(1)
    };
    flate2::read::GzDecoder::new(raw)
        .take(cap)
        .read_to_end(out)
        .map_err(|e| Err::Msg(format!("decompressing the gzip body: {e}")))?;
    if limit > 0 && out.len() as u64 > limit {
        return Err(Err::Over);
    }
    Ok(())
}

/// The response head at the start of `b`, `None` if incomplete.
fn parse_head(b: &[u8]) -> Result<Option<Head>, Fail> {
    let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let bad = |what: &str| Fail::Msg(format!("malformed HTTP response: {what}"));
    let text = std::str::from_utf8(&b[..end]).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let v11 = match parts.next() {
        Some("HTTP/1.1") => true,
        Some("HTTP/1.0") => false,
        _ => return Err(bad(&format!("status line {status_line:?}"))),
    };
    let status = parts
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(&format!("status line {status_line:?}")))?;
    let mut h = Head {
        status,
        v11,
        content_length: None,
        chunked: false,
        gzip: false,
        close: false,
        keep_alive: false,
        content_type: None,
        len: end + 4,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(&format!("header line {line:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<u64>()
                .map_err(|_| bad(&format!("Content-Length {value:?}")))?;
            if h.content_length.is_some_and(|m| m != n) {
                return Err(bad("conflicting Content-Length headers"));
            }
            h.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or("").trim();
            if last.eq_ignore_ascii_case("chunked") {
                h.chunked = true;
            } else {
                return Err(Fail::Fallback);
            }
        } else if name.eq_ignore_ascii_case("content-encoding") {
            for enc in value.split(',').map(str::trim) {
                if enc.eq_ignore_ascii_case("gzip") || enc.eq_ignore_ascii_case("x-gzip") {
                    if h.gzip {
                        return Err(Fail::Fallback);
                    }
                    h.gzip = true;
                } else if !enc.is_empty() && !enc.eq_ignore_ascii_case("identity") {
                    return Err(Fail::Fallback);
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for t in value.split(',').map(str::trim) {
                h.close |= t.eq_ignore_ascii_case("close");
                h.keep_alive |= t.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            h.content_type = Some(value.to_string());
        }
    }
    Ok(Some(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_head(text: &str, want: Option<(u16, Option<u64>, bool, bool, bool)>) {
        let got = match parse_head(text.as_bytes()) {
            Ok(h) => h.map(|h| (h.status, h.content_length, h.chunked, h.gzip, h.close)),
            Err(_) => None,
        };
        assert_eq!(got, want, "{text:?}");
    }

    #[test]
    fn heads() {
        check_head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            Some((200, Some(5), false, false, false)),
        );
        check_head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: gzip\r\n\r\n",
            Some((200, None, true, true, false)),
        );
        check_head(
            "HTTP/1.0 503 Service Unavailable\r\nConnection: close\r\n\r\n",
            Some((503, None, false, false, true)),
        );
        check_head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", None);
        check_head("HTTP/2 200\r\n\r\n", None);
        check_head("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", None);
        check_head("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", None);
    }

    /// A server on 127.0.0.1 answering each request on a connection with the next of `replies`
    /// (raw bytes), closing after the last; returns its URL.
    async fn serve(replies: Vec<Vec<u8>>) -> reqwest::Url {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for r in replies {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                s.write_all(&r).await.unwrap();
            }
        });
        format!("http://{addr}/metrics?x=1").parse().unwrap()
    }

    async fn get(c: &mut Client, limit: u64) -> Result<String, String> {
        let mut body = Vec::new();
        match c.get(&[("X-A", "b")], limit, &mut body).await {
            Fetched::Body { .. } => Ok(String::from_utf8(body).unwrap()),
            Fetched::Failed(e) => Err(e),
            Fetched::Fallback => Err("fallback".into()),
        }
    }

    #[tokio::test]
    async fn bodies_on_one_connection() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"zipped 1\n").unwrap();
        let gz = gz.finish().unwrap();
        let mut gz_reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gz.len()
        )
        .into_bytes();
        gz_reply.extend_from_slice(&gz);
        let url = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\na 1\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nb \r\n2\r\n2\n\r\n0\r\nT: 1\r\n\r\n".to_vec(),
            gz_reply,
            b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n".to_vec(),
        ])
        .await;
        let mut c = Client::new(&url, "text/plain", true).unwrap();
        assert_eq!(get(&mut c, 0).await.unwrap(), "a 1\n");
        assert_eq!(get(&mut c, 0).await.unwrap(), "b 2\n");
        assert_eq!(get(&mut c, 0).await.unwrap(), "zipped 1\n");
        assert_eq!(
            get(&mut c, 10).await.unwrap_err(),
            "body size limit exceeded: more than 10 bytes"
        );
        // The server is gone: a fresh connection is refused.
        assert!(
            get(&mut c, 0)
                .await
                .unwrap_err()
                .starts_with("connecting to 127.0.0.1:")
        );
    }

    #[tokio::test]
    async fn statuses_limits_and_closed_connections() {
        let url = serve(vec![
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ])
        .await;
        let mut c = Client::new(&url, "text/plain", true).unwrap();
        assert_eq!(
            get(&mut c, 0).await.unwrap_err(),
            "server returned HTTP status 500 Internal Server Error"
        );
        let url = serve(vec![b"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n".to_vec()]).await;
        let mut c = Client::new(&url, "text/plain", true).unwrap();
        assert_eq!(get(&mut c, 0).await.unwrap_err(), "fallback");
        let url = serve(vec![b"HTTP/1.0 200 OK\r\n\r\nuntil close\n".to_vec()]).await;
        let mut c = Client::new(&url, "text/plain", true).unwrap();
        assert_eq!(get(&mut c, 0).await.unwrap(), "until close\n");
        // 204 has no body (no waiting for the connection to close), and keeps the connection.
        let url = serve(vec![
            b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ])
        .await;
        let mut c = Client::new(&url, "text/plain", true).unwrap();
        assert_eq!(get(&mut c, 0).await.unwrap(), "");
        assert_eq!(get(&mut c, 0).await.unwrap(), "ok");
        let url = serve(vec![b"HTTP/1.0 200 OK\r\n\r\nuntil close\n".to_vec()]).await;
        let mut c = Client::new(&url, "text/plain", true).unwrap();
        assert!(
            get(&mut c, 5)
                .await
                .unwrap_err()
                .starts_with("body size limit")
        );
        let url = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort".to_vec(),
        ])
        .await;
        let mut c = Client::new(&url, "text/plain", true).unwrap();
        assert!(
            get(&mut c, 0)
                .await
                .unwrap_err()
                .contains("before the end of the body")
        );
        // A kept connection the server closed meanwhile: retried on a new one (refused here).
        let url = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ])
        .await;
        let mut c = Client::new(&url, "text/plain", true).unwrap();
        assert_eq!(get(&mut c, 0).await.unwrap(), "ok");
        assert!(
            get(&mut c, 0)
                .await
                .unwrap_err()
                .starts_with("connecting to")
        );
        let https: reqwest::Url = "https://127.0.0.1:1/metrics".parse().unwrap();
        assert!(Client::new(&https, "text/plain", true).is_none());
        let creds: reqwest::Url = "http://u:p@127.0.0.1:1/metrics".parse().unwrap();
        assert!(Client::new(&creds, "text/plain", true).is_none());
    }
}
