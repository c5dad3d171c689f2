//! The hawkBit DDI v1 messages the simulated devices send and the parts of the answers they read.
//!
//! Deliberately independent of `rustupdate-ddi`: the benchmark also runs against other servers
//! and must not share a misreading of the wire format with the server under test. Answers are
//! read leniently (unknown fields ignored), as a device would.

use serde::{Deserialize, Serialize};

/// `PUT …/configData` body sent on first contact.
#[derive(Debug, Serialize)]
pub struct ConfigData {
    pub mode: &'static str,
    pub data: Attributes,
}

#[derive(Debug, Serialize)]
pub struct Attributes {
    pub device_type: &'static str,
    pub running_version: &'static str,
}

pub const BENCH_ATTRIBUTES: ConfigData = ConfigData {
    mode: "merge",
    data: Attributes {
        device_type: "bench-board",
        running_version: "1.0.0",
    },
};

/// `POST …/deploymentBase/{actionId}/feedback` body.
#[derive(Debug, Serialize)]
pub struct Feedback {
    pub status: FeedbackStatus,
}

#[derive(Debug, Serialize)]
pub struct FeedbackStatus {
    pub execution: &'static str,
    pub result: FeedbackResult,
    pub details: [&'static str; 1],
}

#[derive(Debug, Serialize)]
pub struct FeedbackResult {
    pub finished: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

#[derive(Debug, Serialize)]
pub struct Progress {
    pub cnt: u32,
    pub of: u32,
}

pub const FEEDBACK_PROCEEDING: Feedback = Feedback {
    status: FeedbackStatus {
        execution: "proceeding",
        result: FeedbackResult {
            finished: "none",
            progress: Some(Progress { cnt: 1, of: 2 }),
        },
        details: ["downloading"],
    },
};

pub const FEEDBACK_SUCCESS: Feedback = Feedback {
    status: FeedbackStatus {
        execution: "closed",
        result: FeedbackResult {
            finished: "success",
            progress: None,
        },
        details: ["installed by fleet-load"],
    },
};

/// The bodies every device sends, serialized once.
#[derive(Debug)]
pub struct Bodies {
    pub config_data: Vec<u8>,
    pub proceeding: Vec<u8>,
    pub success: Vec<u8>,
}

impl Bodies {
    pub fn new() -> serde_json::Result<Self> {
        Ok(Self {
            config_data: serde_json::to_vec(&BENCH_ATTRIBUTES)?,
            proceeding: serde_json::to_vec(&FEEDBACK_PROCEEDING)?,
            success: serde_json::to_vec(&FEEDBACK_SUCCESS)?,
        })
    }
}

/// The poll answer, reduced to the one link a device acts on here.
#[derive(Debug, Deserialize)]
pub struct PollAnswer {
    #[serde(rename = "_links", default)]
    pub links: PollLinks,
}

#[derive(Debug, Default, Deserialize)]
pub struct PollLinks {
    #[serde(rename = "deploymentBase")]
    pub deployment_base: Option<Link>,
}

#[derive(Debug, Deserialize)]
pub struct Link {
    pub href: String,
}

/// The deploymentBase answer, reduced to the artifact download links.
#[derive(Debug, Deserialize)]
pub struct DeploymentAnswer {
    pub deployment: Deployment,
}

#[derive(Debug, Deserialize)]
pub struct Deployment {
    #[serde(default)]
    pub chunks: Vec<Chunk>,
}

#[derive(Debug, Deserialize)]
pub struct Chunk {
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Deserialize)]
pub struct Artifact {
    #[serde(rename = "_links", default)]
    pub links: ArtifactLinks,
}

#[derive(Debug, Default, Deserialize)]
pub struct ArtifactLinks {
    #[serde(rename = "download-http")]
    pub download_http: Option<Link>,
    pub download: Option<Link>,
}

impl DeploymentAnswer {
    /// The first artifact's plain-HTTP download link (`download-http`, else `download`).
    pub fn first_download(&self) -> Option<&str> {
        let links = &self.deployment.chunks.first()?.artifacts.first()?.links;
        links
            .download_http
            .as_ref()
            .or(links.download.as_ref())
            .map(|l| l.href.as_str())
    }
}

/// The action id in a deploymentBase request target (`…/deploymentBase/{actionId}[?c=…]`).
pub fn action_id(target: &str) -> Option<&str> {
    let path = target.split('?').next().unwrap_or(target);
    let (_, rest) = path.rsplit_once("/deploymentBase/")?;
    let id = rest.split('/').next().unwrap_or(rest);
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_the_ddi_shapes() {
        let b = Bodies::new().unwrap();
        assert_eq!(
            std::str::from_utf8(&b.config_data).unwrap(),
            r#"{"mode":"merge","data":{"device_type":"bench-board","running_version":"1.0.0"}}"#
        );
        assert_eq!(
            std::str::from_utf8(&b.proceeding).unwrap(),
            r#"{"status":{"execution":"proceeding","result":{"finished":"none","progress":{"cnt":1,"of":2}},"details":["downloading"]}}"#
        );
        assert_eq!(
            std::str::from_utf8(&b.success).unwrap(),
            r#"{"status":{"execution":"closed","result":{"finished":"success"},"details":["installed by fleet-load"]}}"#
        );
    }

    #[test]
    fn poll_answers() {
        let a: PollAnswer =
            serde_json::from_str(r#"{"config":{"polling":{"sleep":"00:01:00"}},"_links":{}}"#)
                .unwrap();
        assert!(a.links.deployment_base.is_none());
        let a: PollAnswer = serde_json::from_str(
            r#"{"_links":{"deploymentBase":{"href":"http://h/T/controller/v1/d/deploymentBase/7?c=1"},"configData":{"href":"x"}}}"#,
        )
        .unwrap();
        assert_eq!(
            a.links.deployment_base.unwrap().href,
            "http://h/T/controller/v1/d/deploymentBase/7?c=1"
        );
        let a: PollAnswer = serde_json::from_str(r#"{"config":{}}"#).unwrap();
        assert!(a.links.deployment_base.is_none());
    }

    #[test]
    fn deployment_answer_links() {
        let a: DeploymentAnswer = serde_json::from_str(
            r#"{"id":"7","deployment":{"download":"forced","update":"forced","chunks":[{"part":"os","artifacts":[{"filename":"a","_links":{"download":{"href":"https://x/a"},"download-http":{"href":"http://x/a"}}}]}]}}"#,
        )
        .unwrap();
        assert_eq!(a.first_download(), Some("http://x/a"));
        let a: DeploymentAnswer =
            serde_json::from_str(r#"{"id":"7","deployment":{"chunks":[]}}"#).unwrap();
        assert_eq!(a.first_download(), None);
    }

    #[test]
    fn action_ids() {
        assert_eq!(
            action_id("/T/controller/v1/d/deploymentBase/7?c=-1"),
            Some("7")
        );
        assert_eq!(
            action_id("/T/controller/v1/d/deploymentBase/42"),
            Some("42")
        );
        assert_eq!(action_id("/T/controller/v1/d/deploymentBase/"), None);
        assert_eq!(action_id("/T/controller/v1/d"), None);
    }
}
