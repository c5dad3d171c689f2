//! The links the server hands out, and the ids that go into them.
//!
//! - [`base_url`]: the scheme and host of every absolute link (DDI `_links`, artifact downloads).
//!   `public-url` when configured; otherwise the request's `Host` only if it is one of
//!   `allowed-hosts` or the listen address itself, else the listen address. A request can thus
//!   never make the server point a device (or a cache in between) at a host the operator did not
//!   name.
//! - [`segment`]: percent-encodes one path segment (RFC 3986 `pchar` minus `:` and `@`), for what a
//!   link carries that the server did not choose itself (an artifact's file name from its manifest).
//! - [`controller_id`]: the device ids the server accepts: `rustupdate_ddi::ControllerId` (up to
//!   256 characters, as hawkBit, of those a path carries unescaped) minus the path specials `.`
//!   and `..`, which a URL resolver removes.
//!
//! Pure: the settings and the headers are passed in.

use crate::config::Settings;
use crate::error::ApiError;
use axum::http::{HeaderMap, header};
use rustupdate_ddi::ControllerId;
use std::borrow::Cow;
use std::fmt::Write;

/// `https://host[:port][/prefix]` without a trailing slash: where links point.
pub fn base_url(settings: &Settings, host: Option<&str>) -> String {
    if let Some(url) = &settings.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let listen = settings.listen.to_string();
    let host = host
        .filter(|h| {
            h.eq_ignore_ascii_case(&listen)
                || settings
                    .allowed_hosts
                    .iter()
                    .any(|allowed| h.eq_ignore_ascii_case(allowed))
        })
        .unwrap_or(&listen);
    format!("{scheme}://{host}")
}

/// The `Host` header of a request, if it is text.
pub fn host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|h| h.to_str().ok())
}

/// One path segment, percent-encoded where needed (unreserved characters and `! $ & ' ( ) * + , ;
/// =` stay as they are).
pub fn segment(text: &str) -> Cow<'_, str> {
    // An id's characters (RFC 3986 pchar unescaped) minus `:` and `@`.
    let keep = |b: u8| rustupdate_ddi::path::id_byte(b) && b != b':' && b != b'@';
    // `.` and `..` alone are dot-segments, which resolvers remove: encode their dots.
    let dot_segment = text == "." || text == "..";
    if !dot_segment && text.bytes().all(keep) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if keep(b) && !(dot_segment && b == b'.') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// A device id as the server accepts it, or a 400 that states the rule.
pub fn controller_id(text: &str) -> Result<ControllerId, ApiError> {
    let rule = || {
        ApiError::BadRequest(format!(
            "controller id {:?} is not {} (and not . or ..)",
            text.chars()
                .take(rustupdate_ddi::path::MAX_ID_LEN + 1)
                .collect::<String>(),
            rustupdate_ddi::path::ID_RULE
        ))
    };
    if text == "." || text == ".." {
        return Err(rule());
    }
    ControllerId::new(text).map_err(|_| rule())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn settings(public_url: Option<&str>, allowed: &[&str]) -> Settings {
        let mut s = Settings::for_tests();
        s.public_url = public_url.map(str::to_owned);
        s.allowed_hosts = allowed.iter().map(|h| h.to_string()).collect();
        s
    }

    fn host(value: &str) -> Option<&str> {
        Some(value)
    }

    #[test]
    fn public_url_wins_over_any_host() {
        let s = settings(Some("https://updates.example.com/"), &[]);
        assert_eq!(
            base_url(&s, host("evil.example")),
            "https://updates.example.com"
        );
    }

    #[test]
    fn host_is_used_only_when_allowed() {
        let s = settings(None, &["fleet.lan:8080"]);
        assert_eq!(
            base_url(&s, host("FLEET.lan:8080")),
            "http://FLEET.lan:8080"
        );
        assert_eq!(base_url(&s, host("evil.example")), "http://127.0.0.1:8080");
        assert_eq!(base_url(&s, None), "http://127.0.0.1:8080");
        assert_eq!(
            base_url(&s, host("127.0.0.1:8080")),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn encodes_what_a_segment_cannot_carry() {
        assert_eq!(segment("demo-image-1.0.rua"), "demo-image-1.0.rua");
        assert_eq!(segment("a b/c?d#e%f"), "a%20b%2Fc%3Fd%23e%25f");
        assert_eq!(segment("é"), "%C3%A9");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("..."), "...");
    }

    #[test]
    fn ids_exclude_dot_segments() {
        assert!(controller_id("dev-01").is_ok());
        assert!(controller_id("aa:bb:cc").is_ok());
        for bad in [".", "..", "", "a/b", "a b", "a\u{7}", "é"] {
            let err = controller_id(bad).unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }
}
