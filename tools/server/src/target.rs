//! Which devices a rollout targets: its device type, every one of its tags, and every attribute
//! filter (`key=value`, exact). Pure.

use crate::store::{DeviceRow, RolloutRow};

pub fn matches(rollout: &RolloutRow, device: &DeviceRow) -> bool {
    device.device_type.as_deref() == Some(rollout.device_type.as_str())
        && rollout.tags.iter().all(|t| device.tags.contains(t))
        && rollout
            .attributes
            .iter()
            .all(|(k, v)| device.attributes.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn device(kind: &str, tags: &[&str], attrs: &[(&str, &str)]) -> DeviceRow {
        DeviceRow {
            id: 1,
            controller_id: "d".into(),
            device_type: Some(kind.into()),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            created_at: 0,
            last_seen: None,
            has_token: true,
        }
    }

    fn rollout(kind: &str, tags: &[&str], attrs: &[(&str, &str)]) -> RolloutRow {
        RolloutRow {
            id: 1,
            name: "r".into(),
            artifact_id: 1,
            device_type: kind.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            phases: "100".into(),
            success_threshold: 100,
            error_threshold: "1".into(),
            download_url: None,
            state: "running".into(),
            current_phase: 0,
            pause_reason: None,
            accepted_failures: 0,
            created_at: 0,
            started_at: None,
        }
    }

    #[test]
    fn needs_type_all_tags_and_all_attributes() {
        let d = device("board", &["eu", "beta"], &[("hw", "2")]);
        assert!(matches(&rollout("board", &[], &[]), &d));
        assert!(matches(
            &rollout("board", &["eu", "beta"], &[("hw", "2")]),
            &d
        ));
        assert!(!matches(&rollout("other", &[], &[]), &d));
        assert!(!matches(&rollout("board", &["us"], &[]), &d));
        assert!(!matches(&rollout("board", &[], &[("hw", "3")]), &d));
        let mut untyped = d.clone();
        untyped.device_type = None;
        assert!(!matches(&rollout("board", &[], &[]), &untyped));
    }
}
