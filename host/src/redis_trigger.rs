//! The Redis trigger: claims due deliveries for the components this host runs from the queue
//! backend and runs each subscriber's `handle-message` in a fresh store, at most `concurrency`
//! at a time. Success acknowledges the delivery; an error, a trap or the deadline schedules a
//! retry, then a dead letter. A backend outage is logged and retried with backoff; delivery
//! resumes when the backend does.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::metrics::{Delivered, Trigger};
use crate::queue::{Delivery, Failure, QueueBackend};
use crate::runtime::{within_deadline, Runtime};

/// Longest idle wait before claiming again (retries coming due, takeovers to try).
const MAX_IDLE: Duration = Duration::from_secs(1);
/// How often what every subscriber acknowledged is trimmed away.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Runs deliveries for `components` forever.
pub async fn run(
    runtime: Arc<Runtime>,
    queue: Arc<dyn QueueBackend>,
    components: BTreeSet<String>,
    concurrency: usize,
) {
    if components.is_empty() {
        return;
    }
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut outage: Option<(Instant, u32)> = None;
    let mut last_trim = Instant::now();
    loop {
        // One free slot at least before claiming: a claimed delivery starts at once.
        let Ok(first) = slots.clone().acquire_owned().await else {
            return;
        };
        let free = slots.available_permits() + 1;
        let claimed = match queue.claim(&components, free).await {
            Ok(c) => {
                if let Some((since, _)) = outage.take() {
                    tracing::info!(down_ms = since.elapsed().as_millis() as u64, queue = %queue.describe(), "queue reachable again; delivering");
                }
                c
            }
            Err(e) => {
                drop(first);
                let (since, failures) = outage.get_or_insert((Instant::now(), 0));
                *failures += 1;
                if *failures == 1 || failures.is_power_of_two() {
                    tracing::error!(error = %e, failures = *failures, down_ms = since.elapsed().as_millis() as u64,
                        "queue read failed; retrying with backoff");
                }
                let backoff = Duration::from_millis(100)
                    .saturating_mul(1 << (*failures).min(5))
                    .min(Duration::from_secs(2));
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        if claimed.is_empty() {
            drop(first);
            if last_trim.elapsed() >= TRIM_EVERY {
                last_trim = Instant::now();
                match queue.trim().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(entries = n, "trimmed acknowledged queue entries"),
                    Err(e) => tracing::warn!(error = %e, "queue trim failed; will try again"),
                }
            }
            queue.wait_for_work(MAX_IDLE).await;
            continue;
        }
        let mut first = Some(first);
        for delivery in claimed {
            let permit = match first.take() {
                Some(p) => p,
                None => match slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (runtime, queue) = (runtime.clone(), queue.clone());
            tokio::spawn(async move {
                deliver(&runtime, queue.as_ref(), delivery).await;
                drop(permit);
            });
        }
    }
}

async fn deliver(runtime: &Runtime, queue: &dyn QueueBackend, d: Delivery) {
    let outcome = invoke(runtime, &d).await;
    let count = |outcome| {
        runtime
            .metrics()
            .delivered(&d.channel, &d.component, outcome)
    };
    let result = match outcome {
        Ok(()) => {
            tracing::info!(channel = %d.channel, component = %d.component, id = %d.id, attempt = d.attempts + 1, "message handled");
            count(Delivered::Acked);
            queue.ack(&d).await
        }
        Err(error) => match queue.fail(&d, &error).await {
            Ok(Failure::Retry(delay)) => {
                count(Delivered::Retried);
                tracing::warn!(channel = %d.channel, component = %d.component, id = %d.id,
                    attempt = d.attempts + 1, retry_in_ms = delay.as_millis() as u64, %error, "message failed; will retry");
                Ok(())
            }
            Ok(Failure::Dead) => {
                count(Delivered::DeadLettered);
                tracing::error!(channel = %d.channel, component = %d.component, id = %d.id,
                    attempts = d.attempts + 1, %error, "message dead-lettered (see `oms queue dead`)");
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        tracing::error!(id = %d.id, error = %e, "cannot record the delivery outcome; it will be delivered again");
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
    let mut watch = runtime.metrics().watch(&component.id, Trigger::Redis);
    let run = async {
        let instance = watch.instantiated(pre.instantiate_async(&mut store).await)?;
        let handled = instance
            .fermyon_spin_inbound_redis()
            .call_handle_message(&mut store, &d.payload)
            .await;
        watch.finished(handled)
    };
    match within_deadline(deadline, run).await? {
        Ok(()) => Ok(()),
        Err(e) => Err(format!("handler returned {e:?}")),
    }
}
