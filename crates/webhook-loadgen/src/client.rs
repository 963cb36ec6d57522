//! Keep-alive HTTP/1.1 connections to one server, and a JSON call for provisioning.

use std::net::SocketAddr;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// One connection's request half.
pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// The server a set of URLs points at.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub(crate) address: SocketAddr,
    /// The `Host` header value.
    pub(crate) host: HeaderValue,
}

impl Server {
    /// The server of an `http://` URL, its name resolved once.
    pub(crate) async fn of(uri: &Uri) -> Result<Self> {
        if uri.scheme_str() != Some("http") {
            bail!("{uri}: only http:// URLs are supported");
        }
        let authority = uri.authority().with_context(|| format!("{uri}: no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let address = tokio::net::lookup_host((authority.host(), port))
            .await
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolves to no address"))?;
        let host = HeaderValue::from_str(authority.as_str())
            .with_context(|| format!("{authority} is not a valid Host header"))?;
        Ok(Self { address, host })
    }

    /// Opens a connection (`TCP_NODELAY`), its I/O driven by a task of its own.
    pub(crate) async fn connect(&self) -> Result<Sender> {
        let stream = TcpStream::connect(self.address)
            .await
            .with_context(|| format!("connecting to {}", self.address))?;
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .context("the HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            // A closed or broken connection shows up in the next request on `sender`.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// A `GET` without credentials: the answer's status and body.
    pub(crate) async fn get(&self, sender: &mut Sender, path: &str) -> Result<(StatusCode, Bytes)> {
        let request = Request::get(path)
            .header(HOST, self.host.clone())
            .body(Full::new(Bytes::new()))?;
        exchange(sender, request).await
    }

    /// One JSON request with a bearer key; the answer's status and JSON body (`null` if empty).
    pub(crate) async fn call_json(
        &self,
        sender: &mut Sender,
        method: Method,
        path: &str,
        api_key: &str,
        body: &Value,
    ) -> Result<(StatusCode, Value)> {
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, format!("Bearer {api_key}"))
            .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        let (status, bytes) = exchange(sender, request).await?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{method} {path} answered {status} with a body that is not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })?
        };
        Ok((status, value))
    }
}

/// Sends `request` once the connection is ready: the answer's status and whole body.
async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes)> {
    let what = format!("{} {}", request.method(), request.uri());
    sender.ready().await.context("the connection closed")?;
    let response = sender
        .send_request(request)
        .await
        .with_context(|| what.clone())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .with_context(|| format!("reading the answer to {what}"))?
        .to_bytes();
    Ok((status, body))
}
