//! A stand-in agent: an HTTP/1.1 server on loopback that records every delivery and answers
//! 200 with a fixed body; or, started with [`Agent::holding`], first holds a number of
//! deliveries open without answering, as an agent that hangs would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the agent answers to every delivery.
pub(crate) const REPLY: &str = r#"{"accepted":true,"agent":"build"}"#;

/// One delivery as the agent received it.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// When it arrived.
    pub(crate) at: Instant,
    /// Whether the agent held it open instead of answering.
    pub(crate) held: bool,
}

impl Delivery {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

pub(crate) struct Agent {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Delivery>>>,
    accept: JoinHandle<()>,
    /// Lets the held deliveries go when the agent is dropped.
    _release: watch::Sender<bool>,
}

/// What every connection of the agent shares.
#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Delivery>>>,
    /// Deliveries still to hold open.
    to_hold: Arc<AtomicUsize>,
    released: watch::Receiver<bool>,
}

impl Shared {
    async fn answer(self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes);
        let held = self
            .to_hold
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        self.received.lock().unwrap().push(Delivery {
            headers: parts.headers,
            body: body.unwrap_or_default(),
            at: Instant::now(),
            held,
        });
        if held {
            let mut released = self.released;
            let _ = released.wait_for(|released| *released).await;
        }
        Ok(Response::new(Full::new(Bytes::from(REPLY))))
    }
}

impl Agent {
    pub(crate) async fn start() -> Self {
        Self::holding(0).await
    }

    /// An agent that holds the first `count` deliveries open, never answering them while it
    /// lives, and answers the others at once.
    pub(crate) async fn holding(count: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = watch::channel(false);
        let shared = Shared {
            received: Arc::clone(&received),
            to_hold: Arc::new(AtomicUsize::new(count)),
            released,
        };
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        shared.clone().answer(request)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            address,
            received,
            accept,
            _release: release,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub(crate) fn received(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
