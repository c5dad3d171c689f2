//! DDI v1 bodies with hawkBit's JSON names. Responses are built by the server and read by the
//! daemon; requests the other way round. Optional fields are skipped when absent, as hawkBit does.

use crate::PollSleep;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A hypermedia link: `{"href": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
}

impl Link {
    pub fn new(href: impl Into<String>) -> Link {
        Link { href: href.into() }
    }
}

/// `GET /{tenant}/controller/v1/{controllerId}`: the poll answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerBase {
    pub config: Config,
    #[serde(rename = "_links", default)]
    pub links: ControllerLinks,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub polling: Polling,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Polling {
    pub sleep: PollSleep,
}

/// What the server wants from the device now; at most one of deployment and cancel is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerLinks {
    #[serde(
        rename = "deploymentBase",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub deployment_base: Option<Link>,
    #[serde(
        rename = "cancelAction",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cancel_action: Option<Link>,
    /// Present when the server wants the device's attributes (again).
    #[serde(
        rename = "configData",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub config_data: Option<Link>,
    #[serde(
        rename = "installedBase",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub installed_base: Option<Link>,
    /// rustupdate's extension (hawkBit clients ignore unknown links): the tenant's current trust
    /// document (docs/trust.md), `…/trust/{version}`; see [`crate::path::trust_document_version`].
    #[serde(
        rename = "trustDocument",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub trust_document: Option<Link>,
}

/// `GET …/deploymentBase/{actionId}` (and `installedBase/{actionId}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentBase {
    /// The action id, a decimal string as hawkBit writes it.
    pub id: String,
    pub deployment: Deployment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub download: HandlingType,
    pub update: HandlingType,
    #[serde(
        rename = "maintenanceWindow",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub maintenance_window: Option<MaintenanceWindow>,
    pub chunks: Vec<Chunk>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlingType {
    Skip,
    Attempt,
    Forced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaintenanceWindow {
    Available,
    Unavailable,
}

/// A software module: for rustupdate, one `os` chunk holding the `.rua` artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub part: String,
    pub version: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<Metadata>,
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub filename: String,
    pub size: u64,
    pub hashes: Hashes,
    #[serde(rename = "_links")]
    pub links: ArtifactLinks,
}

/// Lowercase hex digests of the whole artifact file. hawkBit clients check sha1 or md5 (SWUpdate's
/// suricatta), so rustupdate-server sends all three. Other servers send fewer (gooseBit: sha1
/// only), so each may be missing on reading. A rustupdate device does not rely on them: the
/// artifact's signature and chunk hashes vouch for every byte it writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashes {
    #[serde(default)]
    pub sha1: String,
    #[serde(default)]
    pub md5: String,
    #[serde(default)]
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactLinks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<Link>,
    #[serde(
        rename = "download-http",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub download_http: Option<Link>,
}

impl ArtifactLinks {
    /// The link a client should use: hawkBit sends `download` (https) and `download-http`.
    pub fn best(&self) -> Option<&Link> {
        self.download.as_ref().or(self.download_http.as_ref())
    }
}

/// `POST …/deploymentBase/{actionId}/feedback` and `…/cancelAction/{actionId}/feedback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionFeedback {
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub execution: Execution,
    pub result: ResultStatus,
    /// Free-text lines: progress notes, health-check output, the reason of a failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// Optional numeric code (hawkBit 0.4+); rustupdate sends its exit code on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Execution {
    Closed,
    Proceeding,
    Canceled,
    Scheduled,
    Rejected,
    Resumed,
    Downloaded,
    Download,
}

impl Execution {
    /// The name on the wire (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Execution::Closed => "closed",
            Execution::Proceeding => "proceeding",
            Execution::Canceled => "canceled",
            Execution::Scheduled => "scheduled",
            Execution::Rejected => "rejected",
            Execution::Resumed => "resumed",
            Execution::Downloaded => "downloaded",
            Execution::Download => "download",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultStatus {
    pub finished: Finished,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finished {
    Success,
    Failure,
    None,
}

impl Finished {
    /// The name on the wire (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Finished::Success => "success",
            Finished::Failure => "failure",
            Finished::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub cnt: u64,
    pub of: u64,
}

impl ActionFeedback {
    /// A feedback without progress.
    pub fn new(execution: Execution, finished: Finished, details: Vec<String>) -> ActionFeedback {
        ActionFeedback {
            status: Status {
                execution,
                result: ResultStatus {
                    finished,
                    progress: None,
                },
                details,
                code: None,
            },
        }
    }
}

/// `PUT …/configData`: the device's inventory attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigData {
    #[serde(default = "ConfigDataMode::default_merge")]
    pub mode: ConfigDataMode,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigDataMode {
    Merge,
    Replace,
    Remove,
}

impl ConfigDataMode {
    fn default_merge() -> ConfigDataMode {
        ConfigDataMode::Merge
    }
}

/// `GET …/cancelAction/{actionId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelActionBase {
    pub id: String,
    #[serde(rename = "cancelAction")]
    pub cancel_action: CancelAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAction {
    /// The id of the action to stop.
    #[serde(rename = "stopId")]
    pub stop_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bodies as hawkBit's DDI documentation shows them (fields of other revisions included).
    const POLL: &str = r#"{"config":{"polling":{"sleep":"12:00:00"}},"_links":{"deploymentBase":{"href":"https://h/DEFAULT/controller/v1/dev1/deploymentBase/5?c=-2129030598"},"configData":{"href":"https://h/DEFAULT/controller/v1/dev1/configData"}}}"#;
    const DEPLOYMENT: &str = r#"{"id":"8","deployment":{"download":"forced","update":"forced","maintenanceWindow":"available","chunks":[{"part":"jvm","version":"1.0.75","name":"oneapp runtime","artifacts":[{"filename":"binary.tgz","hashes":{"sha1":"986ce5c7a2bc0a04c1d5cd0c6d4a55ebf6e1a5ae","md5":"bb75a0d4e2c8f6fc21b1f5f3f7a1a2f0","sha256":"a0a7e4f95d0e5b8d2b6d1a1d2c7e6f8b9a0a7e4f95d0e5b8d2b6d1a1d2c7e6f8"},"size":11,"_links":{"download":{"href":"https://h/d"},"download-http":{"href":"http://h/d"}}}]}]},"actionHistory":{"status":"RUNNING","messages":["x"]}}"#;
    const SURICATTA_FEEDBACK: &str = r#"{"id":"8","time":"20261128T010000","status":{"result":{"progress":{"cnt":1,"of":2},"finished":"none"},"execution":"proceeding","details":["Installing"]}}"#;

    #[test]
    fn reads_hawkbit_poll() {
        let poll: ControllerBase = serde_json::from_str(POLL).unwrap();
        assert_eq!(poll.config.polling.sleep.as_secs(), 43200);
        assert!(
            poll.links
                .deployment_base
                .unwrap()
                .href
                .ends_with("?c=-2129030598")
        );
        assert!(poll.links.cancel_action.is_none());
    }

    #[test]
    fn reads_hawkbit_deployment_ignoring_history() {
        let d: DeploymentBase = serde_json::from_str(DEPLOYMENT).unwrap();
        assert_eq!(d.id, "8");
        assert_eq!(d.deployment.update, HandlingType::Forced);
        let artifact = &d.deployment.chunks[0].artifacts[0];
        assert_eq!(artifact.size, 11);
        assert_eq!(artifact.links.best().unwrap().href, "https://h/d");
        // gooseBit lists only sha1.
        let goosebit = DEPLOYMENT.replace(
            r#""md5":"bb75a0d4e2c8f6fc21b1f5f3f7a1a2f0","sha256":"a0a7e4f95d0e5b8d2b6d1a1d2c7e6f8b9a0a7e4f95d0e5b8d2b6d1a1d2c7e6f8""#,
            r#""x":"1""#,
        );
        let d: DeploymentBase = serde_json::from_str(&goosebit).unwrap();
        let hashes = &d.deployment.chunks[0].artifacts[0].hashes;
        assert_eq!((hashes.md5.as_str(), hashes.sha256.as_str()), ("", ""));
    }

    #[test]
    fn reads_feedback_with_older_fields() {
        let f: ActionFeedback = serde_json::from_str(SURICATTA_FEEDBACK).unwrap();
        assert_eq!(f.status.execution, Execution::Proceeding);
        assert_eq!(f.status.result.progress, Some(Progress { cnt: 1, of: 2 }));
    }

    #[test]
    fn writes_links_with_hawkbit_names_and_skips_absent_ones() {
        let poll = ControllerBase {
            config: Config {
                polling: Polling {
                    sleep: PollSleep::from_secs(60),
                },
            },
            links: ControllerLinks {
                cancel_action: Some(Link::new("u")),
                ..ControllerLinks::default()
            },
        };
        assert_eq!(
            serde_json::to_string(&poll).unwrap(),
            r#"{"config":{"polling":{"sleep":"00:01:00"}},"_links":{"cancelAction":{"href":"u"}}}"#
        );
    }

    #[test]
    fn config_data_mode_defaults_to_merge() {
        let c: ConfigData = serde_json::from_str(r#"{"data":{"a":"1"}}"#).unwrap();
        assert_eq!(c.mode, ConfigDataMode::Merge);
    }

    #[test]
    fn names_are_the_wire_names() {
        use Execution::*;
        for e in [
            Closed, Proceeding, Canceled, Scheduled, Rejected, Resumed, Downloaded, Download,
        ] {
            assert_eq!(
                serde_json::to_string(&e).unwrap(),
                format!("\"{}\"", e.as_str())
            );
        }
        for f in [Finished::Success, Finished::Failure, Finished::None] {
            assert_eq!(
                serde_json::to_string(&f).unwrap(),
                format!("\"{}\"", f.as_str())
            );
        }
    }

    #[test]
    fn unknown_execution_is_an_error() {
        let bad = SURICATTA_FEEDBACK.replace("proceeding", "exploded");
        assert!(serde_json::from_str::<ActionFeedback>(&bad).is_err());
    }
}
