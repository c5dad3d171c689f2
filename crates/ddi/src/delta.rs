//! Our DDI extension for delta patches (docs/server.md, "Delta patches"): a device that reports
//! [`attributes::ACCEPTS_DELTA`](crate::attributes::ACCEPTS_DELTA) may find, beside the `.rua`
//! artifact of a deployment's chunk, a second artifact named `*.rudelta`: a patch that rebuilds
//! that `.rua` from the image it reported. A device that leaves the patch for the full artifact
//! says why in a feedback details line that starts with [`FALLBACK_PREFIX`].

/// File name suffix of a delta patch artifact.
pub const PATCH_SUFFIX: &str = ".rudelta";
/// Start of the feedback details line that reports a fallback to the full artifact.
pub const FALLBACK_PREFIX: &str = "delta fallback: ";

/// The reason of the first fallback line among feedback details.
pub fn fallback_reason(details: &[String]) -> Option<&str> {
    details
        .iter()
        .find_map(|line| line.strip_prefix(FALLBACK_PREFIX))
}

/// The feedback details line that reports a fallback.
pub fn fallback_line(why: &str) -> String {
    format!("{FALLBACK_PREFIX}{why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_lines_round_trip() {
        let details = vec![
            "written 100%".to_owned(),
            fallback_line("patch made for another base"),
        ];
        assert_eq!(
            fallback_reason(&details),
            Some("patch made for another base")
        );
        assert_eq!(fallback_reason(&details[..1]), None);
    }
}
