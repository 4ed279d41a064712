//! A keep-alive HTTP/1.1 connection per load worker (as wrk and oha do), reconnecting after a
//! failure, so the figures measure the server and not connection set-up.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Where the server under test listens.
#[derive(Debug, Clone)]
pub struct Target {
    /// Resolved socket address.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: HeaderValue,
}

impl Target {
    /// Resolves `http://host:port`.
    ///
    /// # Errors
    /// Not an `http://` URL, or the host does not resolve.
    pub async fn parse(base: &str) -> anyhow::Result<Target> {
        let uri: http::Uri = base.parse().with_context(|| format!("bad URL {base}"))?;
        anyhow::ensure!(
            uri.scheme_str() == Some("http"),
            "only http:// is supported"
        );
        let authority = uri.authority().context("the URL has no host")?.clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await?
            .next()
            .with_context(|| format!("{} does not resolve", authority.host()))?;
        Ok(Target {
            addr,
            host: HeaderValue::from_str(authority.as_str())?,
        })
    }
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One keep-alive connection.
pub struct Conn {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection to `target`, opened on first use.
    pub fn new(target: Target) -> Conn {
        Conn {
            target,
            sender: None,
        }
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(self.target.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one request and reads the whole answer; the time taken is the caller's to measure.
    ///
    /// # Errors
    /// Connection or protocol failures (the connection is dropped and reopened next time).
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> anyhow::Result<Reply> {
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        sender.ready().await?;
        let mut req = Request::builder().method(method).uri(path);
        req = req.header(http::header::HOST, self.target.host.clone());
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let response = sender.send_request(req).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        self.sender = Some(sender);
        Ok(Reply { status, body })
    }
}

/// Waits until `target` accepts connections and answers `path`, up to `limit`.
///
/// # Errors
/// When it does not within `limit`.
pub async fn wait_ready(target: &Target, path: &str, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let mut conn = Conn::new(target.clone());
        if conn.send(Method::GET, path, &[], None).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "{} did not answer within {limit:?}",
            target.addr
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
