//! The Redis trigger on the embedded queue: claims due messages and runs each subscriber's
//! `handle-message` in a fresh store, at most `concurrency` at a time. Success acknowledges the
//! message; an error, a trap or the deadline schedules a retry, then a dead letter.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::queue::{Delivery, EmbeddedQueue, Failure};
use crate::runtime::{is_deadline, Runtime};

/// Runs deliveries forever.
pub async fn run(runtime: Arc<Runtime>, queue: Arc<EmbeddedQueue>, concurrency: usize) {
    match queue.recover_in_flight() {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            messages = n,
            "re-delivering messages left in flight by a previous run"
        ),
        Err(e) => tracing::error!(error = %e, "cannot recover in-flight messages"),
    }
    let slots = Arc::new(Semaphore::new(concurrency));
    loop {
        let free = slots.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match queue.claim_due(free) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "queue read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        };
        let idle = claimed.is_empty();
        for delivery in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (runtime, queue) = (runtime.clone(), queue.clone());
            tokio::spawn(async move {
                deliver(&runtime, &queue, delivery).await;
                drop(permit);
                queue.wake();
            });
        }
        if idle {
            let wait = match queue.next_due() {
                Ok(Some(at)) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0);
                    Duration::from_millis((at - now).clamp(1, 1000) as u64)
                }
                _ => Duration::from_secs(1),
            };
            queue.wait(wait).await;
        }
    }
}

async fn deliver(runtime: &Runtime, queue: &EmbeddedQueue, d: Delivery) {
    let outcome = invoke(runtime, &d).await;
    let result = match outcome {
        Ok(()) => {
            tracing::info!(channel = %d.channel, component = %d.component, id = d.id, attempt = d.attempts + 1, "message handled");
            queue.ack(d.id).map(|_| ())
        }
        Err(error) => match queue.fail(&d, &error) {
            Ok(Failure::Retry(delay)) => {
                tracing::warn!(channel = %d.channel, component = %d.component, id = d.id,
                    attempt = d.attempts + 1, retry_in_ms = delay.as_millis() as u64, %error, "message failed; will retry");
                Ok(())
            }
            Ok(Failure::Dead) => {
                tracing::error!(channel = %d.channel, component = %d.component, id = d.id,
                    attempts = d.attempts + 1, %error, "message dead-lettered (see `oms queue dead`)");
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        tracing::error!(id = d.id, error = %e, "cannot record the delivery outcome; it will be re-delivered after a restart");
    }
}

async fn invoke(runtime: &Runtime, d: &Delivery) -> Result<(), String> {
    let component = runtime
        .component(&d.component)
        .ok_or_else(|| format!("component {} is not loaded", d.component))?;
    let pre = component
        .redis
        .clone()
        .ok_or_else(|| format!("component {} has no redis handler", d.component))?;
    let deadline = runtime.limits.queue_deadline;
    let mut store = runtime.new_store(&component, deadline);
    let run = async {
        let instance = pre.instantiate_async(&mut store).await?;
        instance
            .fermyon_spin_inbound_redis()
            .call_handle_message(&mut store, &d.payload)
            .await
    };
    match run.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("handler returned {e:?}")),
        Err(e) if is_deadline(&e) => {
            Err(format!("deadline of {} ms exceeded", deadline.as_millis()))
        }
        Err(e) => Err(format!("trap: {e:#}")),
    }
}
