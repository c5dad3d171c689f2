//! A minimal HTTP/1.1 client codec: pure functions that encode a request and decode a response
//! from bytes. The socket side lives in `conn.rs`.
//!
//! Enough of HTTP/1.1 for a load generator talking to DDI servers on loopback: `http://` URLs only,
//! `Content-Length`, `Transfer-Encoding: chunked` and read-to-close bodies, `Connection: close`.
//! It does not do TLS, redirects, trailers (skipped), 1xx interim responses, or header folding.

use std::fmt::Write as _;

/// Largest response head accepted; a server that sends more is broken for our purposes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest response body kept in memory (the `--download` Range answer is 1 KiB; a server that
/// ignores Range and sends a whole artifact is cut off here as a protocol error).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A parsed `http://host[:port][/prefix]` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Host as written (name or IP literal, without brackets), for connecting.
    pub host: String,
    pub port: u16,
    /// `Host:` header value as written in the URL (`host:port`).
    pub authority: String,
    /// Path prefix without a trailing slash ("" for the root).
    pub prefix: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum UrlError {
    Scheme(String),
    Port(String),
    Host(String),
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlError::Scheme(u) => write!(f, "only http:// URLs are supported: {u}"),
            UrlError::Port(u) => write!(f, "bad port in URL: {u}"),
            UrlError::Host(u) => write!(f, "no host in URL: {u}"),
        }
    }
}

impl std::error::Error for UrlError {}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| UrlError::Scheme(url.to_owned()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            // [::1]:8080
            let (h, tail) = v6
                .split_once(']')
                .ok_or_else(|| UrlError::Host(url.to_owned()))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| UrlError::Port(url.to_owned()))?,
                None => 80,
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_owned(),
                    p.parse().map_err(|_| UrlError::Port(url.to_owned()))?,
                ),
                None => (authority.to_owned(), 80),
            }
        };
        if host.is_empty() {
            return Err(UrlError::Host(url.to_owned()));
        }
        Ok(Self {
            host,
            port,
            authority: authority.to_owned(),
            prefix: path.trim_end_matches('/').to_owned(),
        })
    }
}

/// The request target (path and query) of an `href` from a server answer: absolute URLs lose
/// their scheme and authority (every request goes to the `--url` server), paths are kept.
pub fn href_target(href: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = href.strip_prefix(scheme) {
            return match rest.find('/') {
                Some(i) => &rest[i..],
                None => "/",
            };
        }
    }
    href
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Post,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
        }
    }
}

/// Encodes a request with a JSON body (if any) into `out` (cleared first). `extra_headers` are
/// complete `Name: value` lines without the CRLF.
pub fn encode_request(
    out: &mut Vec<u8>,
    method: Method,
    target: &str,
    authority: &str,
    extra_headers: &[&str],
    json_body: Option<&[u8]>,
) {
    out.clear();
    let mut head = String::with_capacity(256);
    // Writing to a String cannot fail.
    let _ = write!(
        head,
        "{} {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: fleet-load/{}\r\nAccept: application/hal+json, application/json\r\n",
        method.as_str(),
        env!("CARGO_PKG_VERSION"),
    );
    for h in extra_headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if let Some(body) = json_body {
        let _ = write!(
            head,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
    if let Some(body) = json_body {
        out.extend_from_slice(body);
    }
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub body: BodyKind,
    /// The server will close (or HTTP/1.0 without keep-alive): do not reuse the connection.
    pub close: bool,
    /// Bytes of the head including the blank line.
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    StatusLine,
    Header,
    ContentLength,
    HeadTooLarge,
    BodyTooLarge,
    Chunk,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::StatusLine => f.write_str("malformed status line"),
            ParseError::Header => f.write_str("malformed header line"),
            ParseError::ContentLength => f.write_str("bad Content-Length"),
            ParseError::HeadTooLarge => {
                write!(f, "response head larger than {MAX_HEAD_BYTES} bytes")
            }
            ParseError::BodyTooLarge => {
                write!(f, "response body larger than {MAX_BODY_BYTES} bytes")
            }
            ParseError::Chunk => f.write_str("malformed chunked body"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses a response head from the start of `buf`. `Ok(None)`: not complete yet.
pub fn parse_head(buf: &[u8]) -> Result<Option<ResponseHead>, ParseError> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD_BYTES {
            Err(ParseError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| ParseError::Header)?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or(ParseError::StatusLine)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().ok_or(ParseError::StatusLine)?;
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(ParseError::StatusLine),
    };
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or(ParseError::StatusLine)?;

    let mut length = None;
    let mut chunked = false;
    let mut close = http10;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(ParseError::Header)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().map_err(|_| ParseError::ContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(ParseError::ContentLength);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    close = false;
                }
            }
        }
    }
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    let body = if no_body {
        BodyKind::Length(0)
    } else if chunked {
        BodyKind::Chunked
    } else if let Some(n) = length {
        if n > MAX_BODY_BYTES {
            return Err(ParseError::BodyTooLarge);
        }
        BodyKind::Length(n)
    } else {
        close = true;
        BodyKind::UntilClose
    };
    Ok(Some(ResponseHead {
        status,
        body,
        close,
        len: end + 4,
    }))
}

/// Decodes a complete chunked body from the start of `buf` into `out`. Returns the number of
/// bytes consumed, or `Ok(None)` if more input is needed (`out` is then left cleared).
pub fn decode_chunked(buf: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, ParseError> {
    out.clear();
    let mut pos = 0;
    loop {
        let Some(line_end) = find(&buf[pos..], b"\r\n") else {
            out.clear();
            return if buf.len() - pos > 1024 {
                Err(ParseError::Chunk)
            } else {
                Ok(None)
            };
        };
        let line = std::str::from_utf8(&buf[pos..pos + line_end]).map_err(|_| ParseError::Chunk)?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| ParseError::Chunk)?;
        pos += line_end + 2;
        if size == 0 {
            // Trailers (ignored), then the final CRLF.
            loop {
                let Some(end) = find(&buf[pos..], b"\r\n") else {
                    out.clear();
                    return Ok(None);
                };
                pos += end + 2;
                if end == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        if out.len() + size > MAX_BODY_BYTES {
            return Err(ParseError::BodyTooLarge);
        }
        if buf.len() < pos + size + 2 {
            out.clear();
            return Ok(None);
        }
        out.extend_from_slice(&buf[pos..pos + size]);
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(ParseError::Chunk);
        }
        pos += size + 2;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_forms() {
        let u = BaseUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("127.0.0.1", 8080, "")
        );
        let u = BaseUrl::parse("http://localhost/api/").unwrap();
        assert_eq!((u.port, u.prefix.as_str()), (80, "/api"));
        let u = BaseUrl::parse("http://[::1]:9/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 9, "[::1]:9")
        );
        assert!(matches!(
            BaseUrl::parse("https://x"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            BaseUrl::parse("http://x:y"),
            Err(UrlError::Port(_))
        ));
        assert!(matches!(
            BaseUrl::parse("http://:80"),
            Err(UrlError::Host(_))
        ));
    }

    #[test]
    fn href_targets() {
        assert_eq!(
            href_target("http://h:1/T/controller/v1/d/deploymentBase/3?c=-1"),
            "/T/controller/v1/d/deploymentBase/3?c=-1"
        );
        assert_eq!(href_target("/a/b"), "/a/b");
        assert_eq!(href_target("http://h"), "/");
    }

    #[test]
    fn encodes_put_with_body() {
        let mut out = Vec::new();
        encode_request(
            &mut out,
            Method::Put,
            "/x",
            "h:1",
            &["Authorization: GatewayToken t"],
            Some(b"{}"),
        );
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("PUT /x HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(s.contains("Authorization: GatewayToken t\r\n"));
        assert!(s.ends_with("Content-Length: 2\r\n\r\n{}"));
    }

    #[test]
    fn head_with_length() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nX: y\r\n\r\nhello";
        let h = parse_head(raw).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.body, BodyKind::Length(5));
        assert!(!h.close);
        assert_eq!(&raw[h.len..], b"hello");
    }

    #[test]
    fn head_incomplete_and_errors() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert_eq!(
            parse_head(b"HTTP/2 200 OK\r\n\r\n"),
            Err(ParseError::StatusLine)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n"),
            Err(ParseError::Header)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(ParseError::ContentLength)
        );
        let big = vec![b'a'; MAX_HEAD_BYTES + 1];
        assert_eq!(parse_head(&big), Err(ParseError::HeadTooLarge));
    }

    #[test]
    fn head_close_and_chunked() {
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.body, BodyKind::Chunked);
        assert!(h.close);
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.body, BodyKind::UntilClose);
        assert!(h.close);
        let h = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, BodyKind::Length(0));
    }

    #[test]
    fn chunked_bodies() {
        let mut out = Vec::new();
        let raw = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT";
        assert_eq!(decode_chunked(raw, &mut out), Ok(Some(raw.len() - 4)));
        assert_eq!(out, b"hello world");
        let raw = b"0\r\nTrailer: x\r\n\r\n";
        assert_eq!(decode_chunked(raw, &mut out), Ok(Some(raw.len())));
        assert!(out.is_empty());
        for cut in 0..raw.len() {
            assert_eq!(decode_chunked(&raw[..cut], &mut out), Ok(None), "cut {cut}");
        }
        assert_eq!(decode_chunked(b"zz\r\n", &mut out), Err(ParseError::Chunk));
        assert_eq!(
            decode_chunked(b"1\r\nab\r\n", &mut out),
            Err(ParseError::Chunk)
        );
    }
}
