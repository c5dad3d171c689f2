//! The operator CLI: each subcommand is one call of the management API, printing text or
//! (`--json`) the API's own JSON. Exit status 1 with the server's message on any error.

use crate::api;
use crate::cli::{ArtifactCommand, ClientArgs, DeviceCommand, RolloutCommand, TrustCommand};
use crate::store::{ArtifactRow, PatchRow};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// An admin session with the server.
struct Api {
    agent: ureq::Agent,
    base: String,
    token: String,
    json: bool,
}

impl Api {
    fn new(args: &ClientArgs) -> Result<Api> {
        let token = match (
            &args.admin_token_file,
            std::env::var("RUSTUPDATE_ADMIN_TOKEN"),
        ) {
            (Some(path), _) => std::fs::read_to_string(path)
                .with_context(|| format!("reading admin token {}", path.display()))?
                .trim()
                .to_owned(),
            (None, Ok(token)) => token.trim().to_owned(),
            (None, Err(_)) => bail!(
                "no admin token: pass --admin-token-file DATA_DIR/admin.token or set RUSTUPDATE_ADMIN_TOKEN"
            ),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .new_agent();
        Ok(Api {
            agent,
            base: args.server.trim_end_matches('/').to_owned(),
            token,
            json: args.json,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn answer<T: DeserializeOwned>(
        &self,
        what: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T> {
        let mut response =
            response.with_context(|| format!("{what}: cannot reach {}", self.base))?;
        let status = response.status();
        let text = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("{what}: reading the answer"))?;
        if !status.is_success() {
            let message = serde_json::from_str::<crate::error::ErrorBody>(&text)
                .map(|b| b.error)
                .unwrap_or(text);
            bail!("{what}: {} {message}", status.as_u16());
        }
        serde_json::from_str(&text).with_context(|| format!("{what}: unexpected answer {text:?}"))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let r = self
            .agent
            .get(&self.url(path))
            .header("Authorization", &self.auth())
            .call();
        self.answer(&format!("GET {path}"), r)
    }

    fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let url = self.url(path);
        let r = match method {
            "PUT" => self
                .agent
                .put(&url)
                .header("Authorization", &self.auth())
                .send_json(body),
            _ => self
                .agent
                .post(&url)
                .header("Authorization", &self.auth())
                .send_json(body),
        };
        self.answer(&format!("{method} {path}"), r)
    }

    fn print<T: Serialize>(&self, value: &T, text: impl FnOnce(&T)) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            text(value);
        }
        Ok(())
    }
}

fn print_artifact(a: &ArtifactRow) {
    println!(
        "{:>4}  {} {}  [{}]  {} bytes  {}  sha256 {}",
        a.id,
        a.name,
        a.version,
        a.device_types.join(","),
        a.size,
        a.kind,
        a.sha256
    );
}

pub fn artifact(command: ArtifactCommand) -> Result<()> {
    match command {
        ArtifactCommand::Upload {
            file,
            delta: Some(target),
            client,
            ..
        } => {
            let api = Api::new(&client)?;
            let body = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let r = api
                .agent
                .post(&api.url(&format!("/artifacts/{target}/patch")))
                .header("Authorization", &api.auth())
                .header("Content-Type", "application/octet-stream")
                .send(body);
            let rows: Vec<PatchRow> = api.answer(&format!("uploading {}", file.display()), r)?;
            api.print(&rows, |rows| rows.iter().for_each(print_patch))
        }
        ArtifactCommand::Deltas {
            artifact_id,
            from,
            client,
        } => {
            let api = Api::new(&client)?;
            let path = format!("/artifacts/{artifact_id}/deltas");
            let rows: Vec<PatchRow> = match from {
                Some(base) => api.send(
                    "POST",
                    &path,
                    &api::QueueDelta {
                        base_artifact_id: base,
                    },
                )?,
                None => api.get(&path)?,
            };
            api.print(&rows, |rows| rows.iter().for_each(print_patch))
        }
        ArtifactCommand::Upload {
            file,
            delta: None,
            foreign,
            name,
            version,
            device_types,
            client,
        } => {
            let api = Api::new(&client)?;
            let mut url = api.url("/artifacts");
            if foreign {
                let filename = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("the file name is not UTF-8")?;
                let (Some(name), Some(version)) = (name, version) else {
                    bail!("--foreign needs --name and --version");
                };
                if device_types.is_empty() {
                    bail!("--foreign needs at least one --device-type");
                }
                url = format!(
                    "{url}?foreign=true&name={}&version={}&device_types={}&filename={}",
                    encode(&name),
                    encode(&version),
                    encode(&device_types.join(",")),
                    encode(filename)
                );
            }
            let body = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let r = api
                .agent
                .post(&url)
                .header("Authorization", &api.auth())
                .header("Content-Type", "application/octet-stream")
                .send(body);
            let row: ArtifactRow = api.answer(&format!("uploading {}", file.display()), r)?;
            api.print(&row, print_artifact)
        }
        ArtifactCommand::List { client } => {
            let api = Api::new(&client)?;
            let rows: Vec<ArtifactRow> = api.get("/artifacts")?;
            api.print(&rows, |rows| rows.iter().for_each(print_artifact))
        }
    }
}

/// Percent-encoding for query values.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_patch(p: &PatchRow) {
    println!(
        "patch of artifact {} from image {} ({}): {}{}{}",
        p.target_artifact_id,
        p.base_sha256.get(..16).unwrap_or(&p.base_sha256),
        p.base_artifact_id.map_or_else(
            || "no stored release".to_owned(),
            |id| format!("artifact {id}")
        ),
        p.state,
        p.size.map_or(String::new(), |n| format!(", {n} bytes")),
        p.reason
            .as_ref()
            .map_or(String::new(), |why| format!(": {why}"))
    );
}

fn print_device(d: &api::Device) {
    println!(
        "{:<24} {:<16} {:<12} tags [{}]  last seen {}",
        d.controller_id,
        d.device_type.as_deref().unwrap_or("-"),
        d.running_version.as_deref().unwrap_or("-"),
        d.tags.join(","),
        d.last_seen
            .map_or("never".to_owned(), |t| format!("{t} ms")),
    );
    if let Some(reported) = &d.reported_device_type {
        println!(
            "{:<24} reports device type {reported:?}; the registered type stays",
            ""
        );
    }
}

pub fn device(command: DeviceCommand) -> Result<()> {
    match command {
        DeviceCommand::Add {
            controller_id,
            device_type,
            tags,
            client,
        } => {
            let api = Api::new(&client)?;
            let added: api::AddedDevice = api.send(
                "POST",
                "/devices",
                &api::AddDevice {
                    controller_id,
                    device_type,
                    tags,
                },
            )?;
            api.print(&added, |a| println!("{}", a.token))
        }
        DeviceCommand::List { client } => {
            let api = Api::new(&client)?;
            let devices: Vec<api::Device> = api.get("/devices")?;
            api.print(&devices, |ds| ds.iter().for_each(print_device))
        }
        DeviceCommand::Show {
            controller_id,
            client,
        } => {
            let api = Api::new(&client)?;
            let detail: api::DeviceDetail =
                api.get(&format!("/devices/{}", encode(&controller_id)))?;
            api.print(&detail, |d| {
                print_device(&d.device);
                for (k, v) in &d.device.attributes {
                    println!("  {k} = {v}");
                }
                for a in &d.actions {
                    println!(
                        "  action {} ({} {}): {}{}",
                        a.action.id,
                        a.rollout_name,
                        a.artifact_version,
                        a.action.state,
                        a.action
                            .reason
                            .as_ref()
                            .map_or(String::new(), |r| format!(": {r}"))
                    );
                    for f in &a.feedback {
                        println!(
                            "    {} {}/{} {}",
                            f.channel,
                            f.execution,
                            f.finished,
                            f.details.join(" | ")
                        );
                    }
                }
            })
        }
        DeviceCommand::Tag {
            controller_id,
            add,
            remove,
            client,
        } => {
            let api = Api::new(&client)?;
            let device: api::Device = api.send(
                "PUT",
                &format!("/devices/{}/tags", encode(&controller_id)),
                &api::ChangeTags { add, remove },
            )?;
            api.print(&device, print_device)
        }
    }
}

fn print_rollout(r: &api::Rollout) {
    let row = &r.rollout;
    println!(
        "rollout {} {:?}: {} {} -> {}  {}{}",
        row.id,
        row.name,
        r.artifact.name,
        r.artifact.version,
        row.device_type,
        row.state,
        row.pause_reason
            .as_ref()
            .map_or(String::new(), |p| format!(" ({p})"))
    );
    for (i, p) in r.phases.iter().enumerate() {
        let current = if i as i64 == row.current_phase {
            "*"
        } else {
            " "
        };
        println!(
            " {current} phase {} (to {:>3}%): {} devices, {} succeeded, {} failed, {} in progress",
            i + 1,
            p.percent,
            p.counts.members,
            p.counts.succeeded,
            p.counts.failed,
            p.counts.in_progress
        );
    }
    println!(
        "  downloads: {}",
        crate::deltas::downloads_summary(&r.downloads, r.artifact.size)
    );
}

pub fn rollout(command: RolloutCommand) -> Result<()> {
    match command {
        RolloutCommand::Create {
            name,
            artifact,
            device_type,
            tags,
            attributes,
            phases,
            success_threshold,
            error_threshold,
            download_url,
            start,
            client,
        } => {
            let api = Api::new(&client)?;
            let attributes = crate::admin_api::rollouts::parse_attribute_filters(&attributes)
                .map_err(anyhow::Error::msg)?;
            let created: api::Rollout = api.send(
                "POST",
                "/rollouts",
                &api::CreateRollout {
                    name,
                    artifact_id: artifact,
                    device_type,
                    tags,
                    attributes,
                    phases,
                    success_threshold,
                    error_threshold,
                    download_url,
                    start,
                },
            )?;
            api.print(&created, print_rollout)
        }
        RolloutCommand::List { client } => {
            let api = Api::new(&client)?;
            let rollouts: Vec<api::Rollout> = api.get("/rollouts")?;
            api.print(&rollouts, |rs| rs.iter().for_each(print_rollout))
        }
        RolloutCommand::Status { id, client } => {
            let api = Api::new(&client)?;
            let r: api::Rollout = api.get(&format!("/rollouts/{id}"))?;
            api.print(&r, print_rollout)
        }
        RolloutCommand::Start { id, client } => steer(&client, id, "start"),
        RolloutCommand::Pause { id, client } => steer(&client, id, "pause"),
        RolloutCommand::Resume { id, client } => steer(&client, id, "resume"),
        RolloutCommand::Cancel { id, client } => steer(&client, id, "cancel"),
    }
}

fn steer(client: &ClientArgs, id: i64, command: &str) -> Result<()> {
    let api = Api::new(client)?;
    let r: api::Rollout = api.send("POST", &format!("/rollouts/{id}/{command}"), &())?;
    api.print(&r, print_rollout)
}

fn print_trust(t: &api::TrustSummary) {
    println!("trust document version {}", t.version);
    println!(
        "  root keys    {} of [{}]",
        t.root_threshold,
        t.root_keys.join(", ")
    );
    println!(
        "  release keys {} of [{}]",
        t.release_threshold,
        t.release_keys.join(", ")
    );
    println!("  revoked      [{}]", t.revoked.join(", "));
}

pub fn trust(command: TrustCommand) -> Result<()> {
    match command {
        TrustCommand::Set { file, client } => {
            let api = Api::new(&client)?;
            let body =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let r = api
                .agent
                .put(&api.url("/trust"))
                .header("Authorization", &api.auth())
                .header("Content-Type", "application/json")
                .send(&body[..]);
            let summary: api::TrustSummary =
                api.answer(&format!("setting the trust document {}", file.display()), r)?;
            api.print(&summary, print_trust)
        }
        TrustCommand::Show { client } => {
            let api = Api::new(&client)?;
            let summary: api::TrustSummary = api.get("/trust/summary")?;
            api.print(&summary, print_trust)
        }
    }
}
