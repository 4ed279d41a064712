//! The cron trigger, in the format of Spin's cron trigger plugin (`[[trigger.cron]]` with
//! `component` and `cron_expression`): each schedule sleeps until its next fire time, then runs
//! the component's `handle-cron-event` in a fresh store (queue deadline, memory limit) and logs
//! the outcome. As with the plugin, times are UTC, the guest gets the scheduled instant in
//! seconds since the Unix epoch, and an instant that passes while no host runs is not caught
//! up. A run that fails is logged and not retried: the next instant is the retry.
//!
//! Once across hosts: several `oms up` processes sharing one key-value store fire each
//! scheduled instant once between them. Each schedule has one key in the host's internal
//! namespace holding the last instant fired; a host fires an instant only if it moves that key
//! from the value it read to the new instant by compare-and-swap, and skips it when the key
//! already holds that instant or a later one. Exactly one CAS per instant can succeed, and the
//! store never grows (one key per schedule).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::bindings::cron_trigger::fermyon::spin_cron::cron_types::{
    Error as GuestError, Metadata,
};
use crate::key_value::KvBackend;
use crate::manifest::App;
use crate::runtime::{within_deadline, Runtime};
use crate::schedule::{utc_now, CronSchedule};

/// Longest single sleep: the wall clock is looked at again at least this often, so a clock
/// step (NTP, a resumed VM) delays a fire time by at most this much.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Claim attempts on one instant before giving it up (each failure means another host wrote
/// the key meanwhile).
const MAX_CLAIM_ATTEMPTS: usize = 16;

/// Decides which host fires a scheduled instant.
pub trait FireClaims: Send + Sync + 'static {
    /// Claims `instant` (milliseconds since the Unix epoch) of the schedule `key`: `Ok(true)`
    /// for exactly one caller per (key, instant) among every host sharing the claims, and
    /// never for an instant at or before one already claimed.
    ///
    /// # Errors
    /// The claim store failing (the instant is then not fired by this host).
    fn claim(&self, key: &str, instant: i64) -> impl Future<Output = Result<bool, String>> + Send;
}

/// Claims kept in a key-value backend: one key per schedule holding the last instant fired
/// (decimal milliseconds), moved forward by compare-and-swap.
pub struct KvFireClaims {
    kv: Arc<dyn KvBackend>,
}

impl KvFireClaims {
    /// Claims in `kv` (the host's internal namespace, see `KvStores::internal`).
    pub fn new(kv: Arc<dyn KvBackend>) -> KvFireClaims {
        KvFireClaims { kv }
    }
}

impl FireClaims for KvFireClaims {
    async fn claim(&self, key: &str, instant: i64) -> Result<bool, String> {
        let key = format!("cron:{key}");
        let value = instant.to_string();
        for _ in 0..MAX_CLAIM_ATTEMPTS {
            let current = self
                .kv
                .get_with_token(&key)
                .await
                .map_err(|e| e.to_string())?;
            let expected = match &current {
                None => None,
                Some((last, token)) => {
                    let last = std::str::from_utf8(last)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok());
                    match last {
                        Some(last) if last >= instant => return Ok(false),
                        Some(_) => {}
                        None => {
                            tracing::warn!(%key, "cron claim key holds no instant; overwriting it")
                        }
                    }
                    Some(token)
                }
            };
            if self
                .kv
                .swap(&key, expected, value.as_bytes())
                .await
                .map_err(|e| e.to_string())?
            {
                return Ok(true);
            }
        }
        Err(format!(
            "the claim key {key:?} changed under {MAX_CLAIM_ATTEMPTS} attempts in a row"
        ))
    }
}

/// One schedule to run.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The claim key: the app, the component and the expression, and for a trigger repeated
    /// verbatim its ordinal among the repeats (so each repeat fires, as on the plugin).
    pub key: String,
    /// The component to run.
    pub component: String,
    /// When.
    pub expression: CronSchedule,
}

/// The app's cron triggers whose component this host serves (loaded with a cron export).
pub fn schedules(app: &App, runtime: &Runtime) -> Vec<Schedule> {
    let mut out: Vec<Schedule> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for t in &app.cron_triggers {
        let serves = runtime
            .component(&t.component)
            .is_some_and(|c| c.cron.is_some());
        let base = format!("{}:{}:{}", app.name, t.component, t.expression);
        let repeats = seen.iter().filter(|b| **b == base).count();
        let key = format!("{base}:{repeats}");
        seen.push(base);
        if serves {
            out.push(Schedule {
                key,
                component: t.component.clone(),
                expression: t.expression.clone(),
            });
        } else {
            tracing::info!(component = %t.component, schedule = %t.expression,
                "cron trigger not run here: component not served by this host");
        }
    }
    out
}

/// Runs every schedule until the process ends.
pub async fn run<C: FireClaims>(runtime: Arc<Runtime>, schedules: Vec<Schedule>, claims: Arc<C>) {
    let mut tasks = tokio::task::JoinSet::new();
    for s in schedules {
        let (runtime, claims) = (runtime.clone(), claims.clone());
        tasks.spawn(async move {
            let component = s.component.clone();
            run_schedule(&s, claims.as_ref(), move |at| {
                let (runtime, component) = (runtime.clone(), component.clone());
                tokio::spawn(async move {
                    let started = Instant::now();
                    match invoke(&runtime, &component, at).await {
                        Ok(()) => tracing::info!(%component, instant = %at.to_rfc3339(),
                            ms = started.elapsed().as_millis() as u64, "cron run done"),
                        Err(error) => tracing::error!(%component, instant = %at.to_rfc3339(),
                            ms = started.elapsed().as_millis() as u64, %error, "cron run failed"),
                    }
                });
            })
            .await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// One schedule's loop: sleep until the next fire time, claim it, call `fire` when this host
/// won it. Returns only when the schedule has no fire time left.
pub async fn run_schedule<C: FireClaims>(
    s: &Schedule,
    claims: &C,
    mut fire: impl FnMut(DateTime<Utc>),
) {
    let mut after = utc_now();
    loop {
        let Some(at) = s.expression.next_after(after) else {
            tracing::info!(component = %s.component, schedule = %s.expression, "cron schedule has no fire time left");
            return;
        };
        sleep_until(at).await;
        let now = utc_now();
        let late = now - at;
        if late > chrono::TimeDelta::seconds(1) {
            tracing::warn!(component = %s.component, instant = %at.to_rfc3339(),
                late_ms = late.num_milliseconds(), "cron trigger woke late; instants passed meanwhile are skipped");
        }
        // Next time, the first fire time after whichever is later: this one, or now.
        after = at.max(now);
        match claims.claim(&s.key, at.timestamp_millis()).await {
            Ok(true) => fire(at),
            Ok(false) => {
                tracing::debug!(component = %s.component, instant = %at.to_rfc3339(), "cron instant fired by another host")
            }
            Err(error) => {
                tracing::error!(component = %s.component, instant = %at.to_rfc3339(), %error, "cannot claim the cron instant; not firing it")
            }
        }
    }
}

/// Sleeps until the wall clock reaches `at`.
async fn sleep_until(at: DateTime<Utc>) {
    loop {
        let left = at - utc_now();
        let Ok(left) = left.to_std() else { return };
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(MAX_SLEEP)).await;
    }
}

/// Runs `component`'s cron handler for the instant `at` in a fresh store.
async fn invoke(runtime: &Runtime, component: &str, at: DateTime<Utc>) -> Result<(), String> {
    let c = runtime
        .component(component)
        .ok_or_else(|| format!("component {component} is not loaded"))?;
    let pre = c
        .cron
        .clone()
        .ok_or_else(|| format!("component {component} has no cron handler"))?;
    let deadline = runtime.limits.queue_deadline;
    let mut store = runtime.new_store(&c, deadline);
    let metadata = Metadata {
        timestamp: u64::try_from(at.timestamp()).unwrap_or(0),
    };
    let mut watch = runtime
        .metrics()
        .watch(&c.id, crate::metrics::Trigger::Cron);
    let run = async {
        let instance = watch.instantiated(pre.instantiate_async(&mut store).await)?;
        watch.finished(instance.call_handle_cron_event(&mut store, metadata).await)
    };
    match within_deadline(deadline, run).await? {
        Ok(()) => Ok(()),
        Err(GuestError::Other(message)) => Err(format!("handler returned an error: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::key_value::sqlite::SqliteDb;

    /// Claims in memory, shared by the schedulers of one test: one mutex, so exactly one
    /// caller moves each key forward.
    #[derive(Default, Clone)]
    struct MemClaims(Arc<Mutex<std::collections::HashMap<String, i64>>>);

    impl FireClaims for MemClaims {
        async fn claim(&self, key: &str, instant: i64) -> Result<bool, String> {
            let mut last = self.0.lock().unwrap();
            let last = last.entry(key.to_string()).or_insert(i64::MIN);
            Ok(instant > std::mem::replace(last, instant.max(*last)))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_schedulers_sharing_claims_fire_each_second_once() {
        let s = Schedule {
            key: "app:ticker:* * * * * *:0".into(),
            component: "ticker".into(),
            expression: CronSchedule::parse("* * * * * *").unwrap(),
        };
        let claims = MemClaims::default();
        let fired = Arc::new(Mutex::new(Vec::new()));
        let start = utc_now();
        let mut loops = Vec::new();
        for host in 0..2 {
            let (s, fired, claims) = (s.clone(), fired.clone(), claims.clone());
            loops.push(tokio::spawn(async move {
                run_schedule(&s, &claims, |at| {
                    fired.lock().unwrap().push((host, at, utc_now()))
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(3_300)).await;
        for l in &loops {
            l.abort();
        }
        let end = utc_now();
        let mut instants: Vec<i64> = fired
            .lock()
            .unwrap()
            .iter()
            .map(|(_, at, _)| at.timestamp())
            .collect();
        instants.sort();
        let expected: Vec<i64> = (start.timestamp() + 1..=end.timestamp()).collect();
        // Every whole second that passed fired once (the last may be in flight at the abort).
        assert!(
            instants == expected || instants == expected[..expected.len() - 1],
            "fired {instants:?}, seconds passed {expected:?}"
        );
        // On time: each instant is a whole second, fired within a few hundred ms of it.
        for (_, at, when) in fired.lock().unwrap().iter() {
            assert_eq!(at.timestamp_subsec_millis(), 0);
            let late = (*when - *at).num_milliseconds();
            assert!((0..500).contains(&late), "fired {late} ms after {at}");
        }
    }

    fn claims_in(dir: &std::path::Path) -> KvFireClaims {
        let db = SqliteDb::open(&dir.join("kv.db")).unwrap();
        KvFireClaims::new(Arc::new(db.store(crate::key_value::INTERNAL_LABEL)))
    }

    #[tokio::test]
    async fn an_instant_is_claimed_once_and_never_again() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (claims_in(dir.path()), claims_in(dir.path()));
        assert!(a.claim("app:c:* * * * * *:0", 1000).await.unwrap());
        assert!(!b.claim("app:c:* * * * * *:0", 1000).await.unwrap());
        assert!(!a.claim("app:c:* * * * * *:0", 1000).await.unwrap());
        // An earlier instant (a host with a slow clock) is not fired again.
        assert!(!b.claim("app:c:* * * * * *:0", 0).await.unwrap());
        assert!(b.claim("app:c:* * * * * *:0", 2000).await.unwrap());
        // Another schedule has its own key.
        assert!(a.claim("app:c:* * * * * *:1", 1000).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_hosts_claim_each_instant_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let hosts: Vec<Arc<KvFireClaims>> =
            (0..4).map(|_| Arc::new(claims_in(dir.path()))).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for h in &hosts {
            let h = h.clone();
            tasks.spawn(async move {
                let mut won = Vec::new();
                for instant in 1..=50 {
                    if h.claim("race", instant).await.unwrap() {
                        won.push(instant);
                    }
                }
                won
            });
        }
        let mut all: Vec<i64> = Vec::new();
        while let Some(won) = tasks.join_next().await {
            all.extend(won.unwrap());
        }
        all.sort();
        // No instant twice; with every host seeing every instant in order, none is lost.
        assert_eq!(all, (1..=50).collect::<Vec<_>>());
    }
}
