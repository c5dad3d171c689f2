//! One HTTP/1.1 keep-alive connection over a tokio `TcpStream`: the thin shell around `http.rs`.
//!
//! Every exchange has a deadline covering connect, write and the whole response. A connection
//! whose exchange failed is dropped. A reused connection that the server closed while idle (EOF or
//! reset before the first response byte) is reopened and the request sent once more, as HTTP
//! clients do; that is counted as a reconnect, not an error.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::http::{self, BodyKind, ParseError};

const READ_CHUNK: usize = 16 * 1024;

/// Why an exchange failed, with the kinds the report counts.
#[derive(Debug)]
pub enum ExchangeError {
    Connect(io::Error),
    Timeout,
    Io(io::Error),
    /// The server closed the connection before or during the response.
    Closed,
    Protocol(ParseError),
}

impl ExchangeError {
    /// The error kind as reported (`errors` in the JSON report).
    pub fn kind(&self) -> &'static str {
        match self {
            ExchangeError::Connect(_) => "connect",
            ExchangeError::Timeout => "timeout",
            ExchangeError::Io(_) => "io",
            ExchangeError::Closed => "closed",
            ExchangeError::Protocol(_) => "protocol",
        }
    }
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Connect(e) => write!(f, "connect: {e}"),
            ExchangeError::Timeout => f.write_str("timed out"),
            ExchangeError::Io(e) => write!(f, "i/o: {e}"),
            ExchangeError::Closed => f.write_str("connection closed by server"),
            ExchangeError::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

/// An error inside one attempt; `stale` says no response byte had arrived yet.
struct Attempt {
    error: ExchangeError,
    stale: bool,
}

#[derive(Debug)]
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    rbuf: Vec<u8>,
    body: Vec<u8>,
    /// Transparent reopenings of connections the server had closed while idle.
    pub reconnects: u64,
    /// New TCP connections opened (including reconnects).
    pub connects: u64,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            rbuf: Vec::new(),
            body: Vec::new(),
            reconnects: 0,
            connects: 0,
        }
    }

    /// The body of the last successful exchange.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Closes the connection (the next exchange opens a new one) and frees the buffers, so that
    /// thousands of idle devices hold no memory between polls.
    pub fn close(&mut self) {
        self.stream = None;
        self.rbuf = Vec::new();
        self.body = Vec::new();
    }

    /// Sends `request` (fully encoded) and reads the response; returns its status, the body is
    /// in `body()`. The whole exchange, connect included, must end within `limit`.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        limit: Duration,
    ) -> Result<u16, ExchangeError> {
        let deadline = Instant::now() + limit;
        let result = match timeout_at(deadline, self.exchange_inner(request)).await {
            Ok(r) => r,
            Err(_) => Err(ExchangeError::Timeout),
        };
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange_inner(&mut self, request: &[u8]) -> Result<u16, ExchangeError> {
        let reused = self.stream.is_some();
        match self.attempt(request).await {
            Ok(s) => Ok(s),
            Err(a) if reused && a.stale => {
                self.stream = None;
                self.reconnects += 1;
                self.attempt(request).await.map_err(|a| a.error)
            }
            Err(a) => Err(a.error),
        }
    }

    async fn attempt(&mut self, request: &[u8]) -> Result<u16, Attempt> {
        let fresh = |error| Attempt {
            error,
            stale: false,
        };
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)
                .await
                .map_err(|e| fresh(ExchangeError::Connect(e)))?;
            s.set_nodelay(true)
                .map_err(|e| fresh(ExchangeError::Connect(e)))?;
            self.connects += 1;
            self.stream = Some(s);
        }
        // Set just above; the `None` arm cannot run.
        let Some(stream) = self.stream.as_mut() else {
            return Err(fresh(ExchangeError::Closed));
        };
        if let Err(e) = stream.write_all(request).await {
            return Err(Attempt {
                error: ExchangeError::Io(e),
                stale: true,
            });
        }

        self.rbuf.clear();
        let head = loop {
            match http::parse_head(&self.rbuf) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(e) => return Err(fresh(ExchangeError::Protocol(e))),
            }
            let nothing_yet = self.rbuf.is_empty();
            self.rbuf.reserve(READ_CHUNK);
            match stream.read_buf(&mut self.rbuf).await {
                Ok(0) => {
                    return Err(Attempt {
                        error: ExchangeError::Closed,
                        stale: nothing_yet,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    let stale = nothing_yet
                        && matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                        );
                    return Err(Attempt {
                        error: ExchangeError::Io(e),
                        stale,
                    });
                }
            }
        };

        self.body.clear();
        match head.body {
            BodyKind::Length(n) => {
                while self.rbuf.len() < head.len + n {
                    self.rbuf.reserve(READ_CHUNK);
                    match stream.read_buf(&mut self.rbuf).await {
                        Ok(0) => return Err(fresh(ExchangeError::Closed)),
                        Ok(_) => {}
                        Err(e) => return Err(fresh(ExchangeError::Io(e))),
                    }
                }
                self.body
                    .extend_from_slice(&self.rbuf[head.len..head.len + n]);
            }
            BodyKind::Chunked => loop {
                match http::decode_chunked(&self.rbuf[head.len..], &mut self.body) {
                    Ok(Some(_)) => break,
                    Ok(None) => {}
                    Err(e) => return Err(fresh(ExchangeError::Protocol(e))),
                }
                self.rbuf.reserve(READ_CHUNK);
                match stream.read_buf(&mut self.rbuf).await {
                    Ok(0) => return Err(fresh(ExchangeError::Closed)),
                    Ok(_) => {}
                    Err(e) => return Err(fresh(ExchangeError::Io(e))),
                }
            },
            BodyKind::UntilClose => {
                loop {
                    if self.rbuf.len() - head.len > http::MAX_BODY_BYTES {
                        return Err(fresh(ExchangeError::Protocol(ParseError::BodyTooLarge)));
                    }
                    self.rbuf.reserve(READ_CHUNK);
                    match stream.read_buf(&mut self.rbuf).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => return Err(fresh(ExchangeError::Io(e))),
                    }
                }
                self.body.extend_from_slice(&self.rbuf[head.len..]);
            }
        }
        if head.close {
            self.stream = None;
        }
        Ok(head.status)
    }
}
