//! A webhook receiver on loopback: the OMS's notify step delivers the settling events of every
//! order here (`order.routed`, `order.backordered`, `order.rejected`), so "reached routed and
//! was notified" is observed from the outside, as a subscriber would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// The first settling event seen for an order.
#[derive(Debug, Clone)]
pub struct Settled {
    /// `order.routed`, `order.backordered` or `order.rejected`.
    pub event: String,
    /// When the webhook arrived.
    pub at: Instant,
}

/// Received webhooks by order id.
#[derive(Default)]
pub struct Sink {
    orders: Mutex<HashMap<String, Settled>>,
    deliveries: Mutex<u64>,
}

impl Sink {
    /// Starts the receiver on a free loopback port; its URL is `http://{addr}/hook`.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start() -> anyhow::Result<(Arc<Sink>, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sink = Arc::new(Sink::default());
        let serving = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let sink = sink.clone();
                            async move {
                                let body = req.into_body().collect().await?.to_bytes();
                                sink.receive(&body);
                                Ok::<_, hyper::Error>(
                                    Response::builder()
                                        .status(StatusCode::NO_CONTENT)
                                        .body(Full::new(Bytes::new()))
                                        .expect("static response"),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok((sink, addr))
    }

    fn receive(&self, body: &[u8]) {
        *self.deliveries.lock().expect("sink lock") += 1;
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let (Some(kind), Some(order)) = (event["type"].as_str(), event["order_id"].as_str()) else {
            return;
        };
        self.orders
            .lock()
            .expect("sink lock")
            .entry(order.to_string())
            .or_insert(Settled {
                event: kind.to_string(),
                at: Instant::now(),
            });
    }

    /// What is known of `order` so far.
    pub fn settled(&self, order: &str) -> Option<Settled> {
        self.orders.lock().expect("sink lock").get(order).cloned()
    }

    /// Waits until every order in `ids` has settled, or `limit` passes; the ones still missing.
    pub async fn wait_all(&self, ids: &[String], limit: Duration) -> Vec<String> {
        let started = Instant::now();
        loop {
            let missing: Vec<String> = {
                let orders = self.orders.lock().expect("sink lock");
                ids.iter()
                    .filter(|id| !orders.contains_key(*id))
                    .cloned()
                    .collect()
            };
            if missing.is_empty() || started.elapsed() > limit {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
