//! The device's side of hawkBit DDI v1 over HTTP(S): ureq with rustls, the CA bundle and client
//! certificate of the config, the target or gateway token from a 0600 file. Bodies are
//! `rustupdate-ddi`'s types; what to do with them is `rustupdate_core::daemon`'s business.
//! The daemon reaches the server through [`DdiTransport`], so that its steps can be tested
//! in-process against a recording fake.
//!
//! The server's JSON links are not followed blindly: resources on the server are addressed by
//! the action id parsed from the link and the paths of `rustupdate_ddi::path`, so the token only
//! ever goes to the configured server. Download links may point elsewhere (a CDN; artifacts
//! verify themselves): they get the token only when they are on the server's origin.

use crate::config::Server;
use crate::source::HttpReader;
use anyhow::{Context, Result, bail};
use rustupdate_ddi::{self as ddi, ControllerId, Tenant, path};
use serde::de::DeserializeOwned;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Largest JSON body accepted from the server (a deployment with many chunks stays far below).
const MAX_RESPONSE_LEN: u64 = 1 << 20;
/// A download connection that delivers nothing for this long is dropped and resumed.
const DOWNLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct HttpTransport {
    agent: ureq::Agent,
    download_agent: ureq::Agent,
    /// The configured URL without a trailing `/`.
    base: String,
    /// `scheme://host[:port]` of `base`, lowercase: where the token may be sent.
    origin: String,
    tenant: Tenant,
    id: ControllerId,
    authorization: Option<String>,
    allow_insecure_http: bool,
}

/// How the server took a final feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Accepted,
    /// The server already holds a final result for the action, or no longer knows it (409, 404,
    /// 410): sending it again cannot change anything.
    Settled(u16),
}

/// An artifact body as it arrives: read lazily; its length once the server announced it.
pub trait ArtifactStream: Read + Send {
    fn total(&self) -> Option<u64>;
}

impl ArtifactStream for HttpReader {
    fn total(&self) -> Option<u64> {
        HttpReader::total(self)
    }
}

/// The DDI requests of the daemon: [`HttpTransport`] over HTTP(S); a recording fake in the daemon's
/// tests.
pub trait DdiTransport {
    /// `GET /{tenant}/controller/v1/{id}`.
    fn poll(&self) -> Result<ddi::ControllerBase>;
    fn deployment(&self, action: u64) -> Result<ddi::DeploymentBase>;
    fn cancel_action(&self, action: u64) -> Result<ddi::CancelActionBase>;
    fn put_config_data(&self, data: &ddi::ConfigData) -> Result<()>;
    /// Feedback on a deployment (progress, or the final result).
    fn deployment_feedback(&self, action: u64, feedback: &ddi::ActionFeedback) -> Result<Delivery>;
    /// The answer to a cancel request.
    fn cancel_feedback(&self, action: u64, feedback: &ddi::ActionFeedback) -> Result<Delivery>;
    /// A streaming, resuming reader of an artifact link of a deployment (a delta install reads
    /// ranges of it).
    fn download(&self, href: &str) -> Result<HttpReader>;
    /// The artifact at `href` from its start, connected at the first read.
    fn artifact(&self, href: &str) -> Result<Box<dyn ArtifactStream>>;
    /// The artifact at `href` from byte `offset` on, connected now: fails when the server cannot
    /// serve the range.
    fn artifact_from(&self, href: &str, offset: u64) -> Result<Box<dyn ArtifactStream>>;
}

impl HttpTransport {
    pub fn new(server: &Server, hostname_file: &Path) -> Result<HttpTransport> {
        let id = match &server.controller_id {
            Some(id) => id.clone(),
            None => std::fs::read_to_string(hostname_file)
                .with_context(|| format!("reading the host name from {}", hostname_file.display()))?
                .trim()
                .to_owned(),
        };
        let id = ControllerId::new(&id).context("controller id")?;
        let tenant = Tenant::new(&server.tenant)?;
        let authorization = match (&server.token_file, &server.gateway_token_file) {
            (Some(file), _) => Some(format!("TargetToken {}", read_secret(file)?)),
            (None, Some(file)) => Some(format!("GatewayToken {}", read_secret(file)?)),
            (None, None) => None,
        };
        let tls = tls_config(server)?;
        let timeout = Duration::from_secs(server.request_timeout_secs);
        let build = |global: Option<Duration>, per_read: Duration| -> ureq::Agent {
            ureq::Agent::config_builder()
                .tls_config(tls.clone())
                .https_only(!server.allow_insecure_http)
                .http_status_as_error(false)
                .timeout_global(global)
                .timeout_connect(Some(timeout))
                .timeout_recv_response(Some(timeout))
                .timeout_per_read(Some(per_read))
                .user_agent(concat!("rustupdate/", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        };
        let base = server.url.trim_end_matches('/').to_owned();
        Ok(HttpTransport {
            agent: build(Some(timeout), timeout),
            // No overall limit for an image download; a stalled connection is dropped and resumed.
            download_agent: build(None, DOWNLOAD_IDLE_TIMEOUT),
            origin: origin(&base).with_context(|| format!("server url {base}"))?,
            base,
            tenant,
            id,
            authorization,
            allow_insecure_http: server.allow_insecure_http,
        })
    }

    pub fn controller_id(&self) -> &ControllerId {
        &self.id
    }

    fn feedback(&self, path: &str, feedback: &ddi::ActionFeedback) -> Result<Delivery> {
        let (status, body) = self.send("POST", path, feedback)?;
        match status {
            200..=299 => Ok(Delivery::Accepted),
            404 | 409 | 410 => {
                log::info!(
                    "POST {path}: status {status} ({}): the server already settled it",
                    body.trim()
                );
                Ok(Delivery::Settled(status))
            }
            _ => bail!("POST {path}: status {status}: {}", body.trim()),
        }
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = self.agent.get(&url).header("Accept", "application/json");
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        let mut response = request.call().with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body =
            bounded_body(&mut response).with_context(|| format!("GET {url}: reading the body"))?;
        if status != 200 {
            bail!(
                "GET {url}: status {status}: {}",
                String::from_utf8_lossy(&body).trim()
            );
        }
        serde_json::from_slice(&body).with_context(|| format!("GET {url}: unexpected JSON"))
    }

    fn send<T: serde::Serialize>(
        &self,
        method: &str,
        path: &str,
        body: &T,
    ) -> Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let json = serde_json::to_vec(body)?;
        let mut request = match method {
            "PUT" => self.agent.put(&url),
            _ => self.agent.post(&url),
        }
        .header("Content-Type", "application/json");
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        let mut response = request
            .send(&json[..])
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let text = bounded_body(&mut response).unwrap_or_default();
        Ok((status, String::from_utf8_lossy(&text).into_owned()))
    }
}

impl DdiTransport for HttpTransport {
    fn poll(&self) -> Result<ddi::ControllerBase> {
        self.get_json(&path::controller(&self.tenant, &self.id))
    }

    fn deployment(&self, action: u64) -> Result<ddi::DeploymentBase> {
        self.get_json(&path::deployment_base(&self.tenant, &self.id, action))
    }

    fn cancel_action(&self, action: u64) -> Result<ddi::CancelActionBase> {
        self.get_json(&path::cancel_action(&self.tenant, &self.id, action))
    }

    fn put_config_data(&self, data: &ddi::ConfigData) -> Result<()> {
        let path = path::config_data(&self.tenant, &self.id);
        let status = self.send("PUT", &path, data)?.0;
        if !(200..300).contains(&status) {
            bail!("PUT {path}: status {status}");
        }
        Ok(())
    }

    fn deployment_feedback(&self, action: u64, feedback: &ddi::ActionFeedback) -> Result<Delivery> {
        self.feedback(
            &path::deployment_feedback(&self.tenant, &self.id, action),
            feedback,
        )
    }

    fn cancel_feedback(&self, action: u64, feedback: &ddi::ActionFeedback) -> Result<Delivery> {
        self.feedback(
            &path::cancel_feedback(&self.tenant, &self.id, action),
            feedback,
        )
    }

    fn download(&self, href: &str) -> Result<HttpReader> {
        let lower = href.to_ascii_lowercase();
        if lower.starts_with("http://") && !self.allow_insecure_http {
            bail!("download link {href} is plain http (allow-insecure-http is not set)");
        }
        if !lower.starts_with("http://") && !lower.starts_with("https://") {
            bail!("download link {href:?} is not an http(s) URL");
        }
        let same_origin = origin(href).is_ok_and(|o| o == self.origin);
        let authorization = if same_origin {
            self.authorization.clone()
        } else {
            None
        };
        Ok(HttpReader::new(
            self.download_agent.clone(),
            href,
            authorization,
        ))
    }

    fn artifact(&self, href: &str) -> Result<Box<dyn ArtifactStream>> {
        Ok(Box::new(self.download(href)?))
    }

    fn artifact_from(&self, href: &str, offset: u64) -> Result<Box<dyn ArtifactStream>> {
        let mut body = self.download(href)?.starting_at(offset);
        body.connect_now()
            .context("requesting the rest of the artifact")?;
        Ok(Box::new(body))
    }
}

/// A response body of at most [`MAX_RESPONSE_LEN`] bytes (a longer one is an error).
fn bounded_body(response: &mut ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, ureq::Error> {
    response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_LEN)
        .read_to_vec()
}

/// The action id at the end of a DDI link's path (`…/deploymentBase/42?c=…`).
pub fn action_of(link: &ddi::Link) -> Result<u64> {
    let path = link.href.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    last.parse()
        .with_context(|| format!("link {} does not end in an action id", link.href))
}

/// `scheme://host[:port]` of an http(s) URL, lowercase.
fn origin(url: &str) -> Result<String> {
    let (scheme, rest) = url.split_once("://").context("no scheme")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        bail!("no host, or credentials in the URL");
    }
    Ok(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    ))
}

/// A token file: must not be readable by group or others (a leaked target token lets anyone
/// impersonate the device).
fn read_secret(file: &Path) -> Result<String> {
    let meta = std::fs::metadata(file).with_context(|| format!("token file {}", file.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "token file {} has mode {mode:04o}: it must not be accessible to group or others (chmod 600)",
            file.display()
        );
    }
    let token =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let token = token.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "token file {} is empty or holds more than one printable word",
            file.display()
        );
    }
    Ok(token.to_owned())
}

fn tls_config(server: &Server) -> Result<ureq::tls::TlsConfig> {
    use ureq::tls::{ClientCert, PemItem, RootCerts, TlsConfig, parse_pem};
    let read_pem = |file: &Path| -> Result<Vec<PemItem<'static>>> {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        parse_pem(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{}: not PEM", file.display()))
    };
    let certificates = |items: Vec<PemItem<'static>>| -> Vec<ureq::tls::Certificate<'static>> {
        items
            .into_iter()
            .filter_map(|item| match item {
                PemItem::Certificate(cert) => Some(cert),
                _ => None,
            })
            .collect()
    };
    let mut tls = TlsConfig::builder();
    if let Some(ca) = &server.ca_file {
        let certs = certificates(read_pem(ca)?);
        if certs.is_empty() {
            bail!("ca-file {} holds no certificate", ca.display());
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    if let (Some(cert), Some(key_file)) = (&server.client_cert, &server.client_key) {
        let chain = certificates(read_pem(cert)?);
        if chain.is_empty() {
            bail!("client-cert {} holds no certificate", cert.display());
        }
        let key = read_pem(key_file)?
            .into_iter()
            .find_map(|item| match item {
                PemItem::PrivateKey(key) => Some(key),
                _ => None,
            })
            .with_context(|| format!("client-key {} holds no private key", key_file.display()))?;
        let read = |file: &Path| {
            std::fs::read(file).with_context(|| format!("reading {}", file.display()))
        };
        check_client_cert(&read(cert)?, &read(key_file)?).with_context(|| {
            format!("client-cert {}: not usable with client-key", cert.display())
        })?;
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(tls.build())
}

/// Whether rustls accepts the client certificate and key (ureq would panic on them otherwise):
/// an X.509 v3 end-entity certificate whose public key matches the private key.
fn check_client_cert(cert_pem: &[u8], key_pem: &[u8]) -> Result<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(chain, key)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_ids_from_links() {
        let link = ddi::Link::new("https://s/DEFAULT/controller/v1/d/deploymentBase/42?c=-21");
        assert_eq!(action_of(&link).unwrap(), 42);
        assert!(action_of(&ddi::Link::new("https://s/x/deploymentBase/")).is_err());
        assert!(action_of(&ddi::Link::new("https://s/x/deploymentBase/4a")).is_err());
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin("HTTPS://Fleet.Example:8443/a/b?c").unwrap(),
            "https://fleet.example:8443"
        );
        assert_eq!(origin("http://10.0.2.2:80").unwrap(), "http://10.0.2.2:80");
        assert!(origin("https://user:pw@host/").is_err());
        assert!(origin("nonsense").is_err());
    }

    #[test]
    fn token_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "abc123\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = format!("{:#}", read_secret(&file).unwrap_err());
        assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret(&file).unwrap(), "abc123");
        std::fs::write(&file, "two words").unwrap();
        assert!(read_secret(&file).is_err());
    }
}
