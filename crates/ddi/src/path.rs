//! Validated ids and the path of every DDI resource, relative to the server's base URL.

use std::fmt;

/// Longest tenant or controller id accepted: hawkBit's limit.
pub const MAX_ID_LEN: usize = 256;

/// The rule of [`Tenant`] and [`ControllerId`], as error messages state it.
pub const ID_RULE: &str = "1 to 256 visible ASCII characters that a URL path carries as they are \
                           (A-Z a-z 0-9 and - . _ ~ ! $ & ' ( ) * + , ; = : @)";

/// Whether `b` may be in an id: RFC 3986's `pchar` without percent-encoding (unreserved,
/// sub-delims, `:` and `@`). hawkBit allows any visible character; those it allows beyond this set
/// (`` / ? # % [ ] " < > \ ^ ` { | } ``) would have to be escaped in every path a device or the
/// server builds, so they are refused rather than trusted to be escaped everywhere.
pub fn id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not {ID_RULE}")]
pub struct IdError {
    what: &'static str,
    value: String,
}

fn check_id(what: &'static str, value: &str) -> Result<(), IdError> {
    let ok = !value.is_empty() && value.len() <= MAX_ID_LEN && value.bytes().all(id_byte);
    if ok {
        Ok(())
    } else {
        Err(IdError {
            what,
            value: value.chars().take(MAX_ID_LEN + 1).collect(),
        })
    }
}

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: &str) -> Result<$name, IdError> {
                check_id($what, value)?;
                Ok($name(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(Tenant, "tenant");
id_type!(ControllerId, "controller id");

/// `/{tenant}/controller/v1/{controllerId}`, the base of every other path.
pub fn controller(tenant: &Tenant, id: &ControllerId) -> String {
    format!("/{tenant}/controller/v1/{id}")
}

pub fn deployment_base(tenant: &Tenant, id: &ControllerId, action: u64) -> String {
    format!("{}/deploymentBase/{action}", controller(tenant, id))
}

pub fn deployment_feedback(tenant: &Tenant, id: &ControllerId, action: u64) -> String {
    format!("{}/feedback", deployment_base(tenant, id, action))
}

pub fn installed_base(tenant: &Tenant, id: &ControllerId, action: u64) -> String {
    format!("{}/installedBase/{action}", controller(tenant, id))
}

pub fn cancel_action(tenant: &Tenant, id: &ControllerId, action: u64) -> String {
    format!("{}/cancelAction/{action}", controller(tenant, id))
}

pub fn cancel_feedback(tenant: &Tenant, id: &ControllerId, action: u64) -> String {
    format!("{}/feedback", cancel_action(tenant, id, action))
}

pub fn config_data(tenant: &Tenant, id: &ControllerId) -> String {
    format!("{}/configData", controller(tenant, id))
}

/// rustupdate's extension: the trust document of `version`.
pub fn trust_document(tenant: &Tenant, id: &ControllerId, version: u64) -> String {
    format!("{}/trust/{version}", controller(tenant, id))
}

/// The version at the end of a `trustDocument` link (`…/trust/7`), if it ends in one.
pub fn trust_document_version(href: &str) -> Option<u64> {
    let path = href.split(['?', '#']).next().unwrap_or_default();
    let (rest, version) = path.rsplit_once('/')?;
    if !rest.ends_with("/trust")
        || version.is_empty()
        || !version.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    version.parse().ok()
}

/// Where rustupdate-server serves an artifact to a device: by content hash, with the file name
/// last so that clients that name the download after the URL get a sensible name.
pub fn artifact_download(
    tenant: &Tenant,
    id: &ControllerId,
    sha256: &str,
    filename: &str,
) -> String {
    format!("{}/artifacts/{sha256}/{filename}", controller(tenant, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_document_links_carry_their_version() {
        let t = Tenant::new("DEFAULT").unwrap();
        let c = ControllerId::new("dev-01").unwrap();
        let href = format!("https://fleet{}", trust_document(&t, &c, 7));
        assert_eq!(href, "https://fleet/DEFAULT/controller/v1/dev-01/trust/7");
        assert_eq!(trust_document_version(&href), Some(7));
        assert_eq!(trust_document_version(&format!("{href}?c=1")), Some(7));
        for bad in [
            "https://fleet/x/trust/",
            "https://fleet/x/trust/-1",
            "https://fleet/x/7",
        ] {
            assert_eq!(trust_document_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn builds_hawkbit_paths() {
        let t = Tenant::new("DEFAULT").unwrap();
        let c = ControllerId::new("dev-01").unwrap();
        assert_eq!(controller(&t, &c), "/DEFAULT/controller/v1/dev-01");
        assert_eq!(
            deployment_feedback(&t, &c, 7),
            "/DEFAULT/controller/v1/dev-01/deploymentBase/7/feedback"
        );
        assert_eq!(
            cancel_feedback(&t, &c, 7),
            "/DEFAULT/controller/v1/dev-01/cancelAction/7/feedback"
        );
    }

    #[test]
    fn rejects_ids_that_could_escape_a_path() {
        for bad in [
            "",
            "a/b",
            "..%2f",
            "a b",
            "é",
            "a?b",
            "a#b",
            "a\\b",
            "{a}",
            "a\u{7f}",
            &"x".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(ControllerId::new(bad).is_err(), "{bad}");
        }
        for good in [
            "AA:BB:CC:00:11:22",
            "serial+42@line-3",
            "o'brien(1),x;y=z*!$&~",
            &"x".repeat(MAX_ID_LEN),
        ] {
            assert!(ControllerId::new(good).is_ok(), "{good}");
        }
    }
}
