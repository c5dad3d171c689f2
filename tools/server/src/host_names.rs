//! The hosts an operator may name in `allowed-hosts` (`Host` values links may be built from,
//! `links::base_url`): a name or `name:port`, never something that changes a URL's meaning.
//!
//! Apart from `config` and `links` so that both can use it: settings check entries with it, links
//! are built from settings.

/// Whether `host` is a valid `allowed-hosts` entry: `name` or `name:port`, visible ASCII without
/// the URL specials `/ ? # @ \ %`.
pub fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\' | b'%'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_are_plain_hosts() {
        assert!(valid_host("fleet.example.com"));
        assert!(valid_host("[::1]:8080"));
        for bad in ["", "a/b", "user@host", "a b", "h%41"] {
            assert!(!valid_host(bad), "{bad}");
        }
    }
}
