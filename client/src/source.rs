//! Where an artifact comes from: a file, stdin (`-`), or an `http(s)://` URL streamed without a
//! local copy. A dropped HTTP connection is resumed with a `Range` request (a few bounded retries);
//! every byte is verified by the artifact reader anyway, so a resumed stream cannot smuggle data in.

use anyhow::{Context, Result};
use std::io::Read;
use std::time::Duration;

/// Attempts per download (first try plus resumptions).
const HTTP_ATTEMPTS: u32 = 5;
const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A connection that delivers nothing for this long is dropped (and resumed).
const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens the artifact; also returns its length when the source knows it (a file's size, the
/// length an HTTP server announced; not stdin), so that a damaged length is refused before
/// anything is written.
pub fn open(location: &str) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
    if location == "-" {
        return Ok((Box::new(std::io::stdin()), None));
    }
    if location.starts_with("http://") || location.starts_with("https://") {
        let mut reader = HttpReader::new(plain_agent(), location, None);
        reader
            .connect_now()
            .with_context(|| format!("opening artifact {location}"))?;
        let len = reader.total();
        return Ok((Box::new(reader), len));
    }
    let file =
        std::fs::File::open(location).with_context(|| format!("opening artifact {location}"))?;
    let len = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    Ok((Box::new(file), len))
}

/// An agent for artifact URLs given by hand: the built-in roots, no client certificate.
pub fn plain_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(HTTP_CONNECT_TIMEOUT))
        .timeout_recv_response(Some(HTTP_IDLE_TIMEOUT))
        .timeout_per_read(Some(HTTP_IDLE_TIMEOUT))
        .build()
        .into()
}

/// A streaming HTTP body that reconnects with `Range: bytes=N-` after a dropped connection.
pub struct HttpReader {
    agent: ureq::Agent,
    url: String,
    /// `Authorization` header value, for the fleet server's own download links.
    authorization: Option<String>,
    offset: u64,
    /// Last byte wanted (a bounded `Range`), when only part of the file is read.
    end: Option<u64>,
    total: Option<u64>,
    body: Option<Box<dyn Read + Send>>,
    attempts_left: u32,
}

impl HttpReader {
    /// `agent` must not turn HTTP status codes into errors by itself (the status is checked here)
    /// and should have no overall body timeout (large images take long; idle time is bounded).
    pub fn new(agent: ureq::Agent, url: &str, authorization: Option<String>) -> HttpReader {
        HttpReader {
            agent,
            url: url.into(),
            authorization,
            offset: 0,
            end: None,
            total: None,
            body: None,
            attempts_left: HTTP_ATTEMPTS,
        }
    }

    /// Starts at byte `offset` of the artifact (a `Range` request).
    pub fn starting_at(mut self, offset: u64) -> HttpReader {
        self.offset = offset;
        self
    }

    /// Reads only `len` bytes from `offset` (`Range: bytes=offset-end`): the server then sends,
    /// and counts, only those. A server without Range support sends the whole file from the
    /// start, which is accepted for `offset` 0 (the caller reads `len` bytes of it).
    pub fn range(mut self, offset: u64, len: u64) -> HttpReader {
        self.offset = offset;
        self.end = Some(offset + len.max(1) - 1);
        self
    }

    /// The artifact's whole length, once a response announced it.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// Connects now rather than at the first read: a server that cannot serve the requested
    /// range says so here, before anything depends on it.
    pub fn connect_now(&mut self) -> std::io::Result<()> {
        if self.body.is_none() {
            self.connect()?;
        }
        Ok(())
    }

    fn connect(&mut self) -> std::io::Result<()> {
        let mut request = self.agent.get(&self.url);
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        match self.end {
            Some(end) => {
                request = request.header("Range", format!("bytes={}-{end}", self.offset));
            }
            None if self.offset > 0 => {
                request = request.header("Range", format!("bytes={}-", self.offset));
            }
            None => {}
        }
        let response = request
            .call()
            .map_err(|err| std::io::Error::other(format!("GET {}: {err}", self.url)))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(std::io::Error::other(format!(
                "GET {}: status {status}",
                self.url
            )));
        }
        if self.offset > 0 && status != 206 {
            return Err(std::io::Error::other(format!(
                "GET {}: server does not resume (status {status})",
                self.url
            )));
        }
        let length = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if self.total.is_none() {
            self.total = length.map(|l| l + self.offset);
        }
        self.body = Some(Box::new(response.into_body().into_reader()));
        Ok(())
    }

    fn retry_or(&mut self, err: std::io::Error) -> std::io::Result<()> {
        self.body = None;
        if self.attempts_left <= 1 {
            return Err(std::io::Error::other(format!(
                "download of {} failed at byte {}: {err}",
                self.url, self.offset
            )));
        }
        self.attempts_left -= 1;
        let attempt = HTTP_ATTEMPTS - self.attempts_left;
        log::warn!(
            "download of {} interrupted at byte {} ({err}); resuming (attempt {attempt})",
            self.url,
            self.offset
        );
        // Bounded backoff: 0.5 s, 1 s, 2 s, 4 s.
        std::thread::sleep(Duration::from_millis(500 << (attempt - 1).min(3)));
        Ok(())
    }
}

impl Read for HttpReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.body.is_none()
                && let Err(err) = self.connect()
            {
                self.retry_or(err)?;
                continue;
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match body.read(buf) {
                Ok(0) if self.total.is_some_and(|t| self.offset < t) => {
                    self.retry_or(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed early",
                    ))?;
                }
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => self.retry_or(err)?,
            }
        }
    }
}
