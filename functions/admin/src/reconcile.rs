//! The reconciler's entry points: one pass of [`oms_edge::reconcile`] over the owed-work index
//! (re-publish events still in an order's outbox, re-drive an order whose next step never ran,
//! drop entries of orders at rest), on demand over HTTP or every minute from a cron trigger.
//! Both are safe to run at any time and concurrently: every step is idempotent on the order's
//! state and a re-published event keeps its id.
//!
//! Where there is no cron trigger (SpinKube), a scheduler calls the HTTP route instead, e.g.
//! a Kubernetes CronJob (infra/spinkube) or
//! `while sleep 60; do curl -fsS -X POST -H "authorization: Bearer $T" $OMS/v1/admin/reconcile; done`.

use chrono::Duration;
use oms_edge::{json_response, query_param, FunctionError, Problem, Reconciled, SpinEnv};
use spin_sdk::http::{Params, Request, Response};

/// Seconds an index entry may stand before the reconciler acts on it: longer than a step
/// normally takes, so a pass does not race steps still under way.
const DEFAULT_GRACE_SECONDS: i64 = 60;
/// Entries acted on per pass: bounds one pass's run time (the rest wait for the next pass).
const DEFAULT_LIMIT: usize = 500;
/// Upper bounds of the parameters (one week; what one request can finish in its deadline).
const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3600;
const MAX_LIMIT: usize = 10_000;

/// One pass's parameters.
#[derive(Debug, PartialEq, Eq)]
struct Pass {
    grace: Duration,
    limit: usize,
}

impl Default for Pass {
    fn default() -> Self {
        Pass {
            grace: Duration::seconds(DEFAULT_GRACE_SECONDS),
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Pass {
    /// The pass a request asks for: `grace_seconds` (0..=604800) and `limit` (1..=10000),
    /// each defaulted when absent.
    ///
    /// # Errors
    /// A 422 problem naming the parameter that is not a number in its range.
    fn from_request(req: &Request) -> Result<Pass, FunctionError> {
        let mut pass = Pass::default();
        if let Some(raw) = query_param(req, "grace_seconds") {
            let secs = bounded(&raw, "grace_seconds", 0, MAX_GRACE_SECONDS)?;
            pass.grace = Duration::seconds(secs);
        }
        if let Some(raw) = query_param(req, "limit") {
            let limit = bounded(&raw, "limit", 1, MAX_LIMIT as i64)?;
            pass.limit = usize::try_from(limit).unwrap_or(DEFAULT_LIMIT);
        }
        Ok(pass)
    }

    /// Runs the pass against the component's stores and bus.
    ///
    /// # Errors
    /// A store not granted (`default`, `owed`), the bus unreachable at open, or a storage
    /// error during the pass (entries not handled stay for the next one).
    fn run(&self) -> Result<Reconciled, FunctionError> {
        oms_edge::reconcile(&SpinEnv::open()?, self.grace, self.limit)
    }
}

fn bounded(raw: &str, name: &str, min: i64, max: i64) -> Result<i64, FunctionError> {
    match raw.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Problem::field(
            422,
            "validation",
            "Invalid request",
            name,
            "out_of_range",
            format!("{name} is a whole number from {min} to {max}"),
        )
        .into()),
    }
}

/// `POST /v1/admin/reconcile?grace_seconds=N&limit=M`: one pass; 200 with its report.
///
/// # Errors
/// 422 for a bad parameter; 500 when the pass cannot run (see [`Pass::run`]).
pub(crate) fn http(req: &Request, _: &Params) -> Result<Response, FunctionError> {
    let report = Pass::from_request(req)?.run()?;
    Ok(json_response(200, &report))
}

/// The cron trigger's export: `handle-cron-event`, the world of Spin's cron trigger plugin
/// (its WIT is vendored in the host, `host/wit`), generated with spin-sdk's wit-bindgen
/// re-exports as in reserve's expiry sweeper.
mod cron {
    #![allow(missing_docs)]
    spin_sdk::wit_bindgen::generate!({
        path: "../../host/wit",
        world: "oms:host/cron-trigger",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });
    use super::Scheduled;
    export!(Scheduled);
}

use cron::fermyon::spin_cron::cron_types::{Error as CronError, Metadata};

/// The scheduled pass (defaults: 60 s grace, 500 entries).
struct Scheduled;

impl cron::Guest for Scheduled {
    fn handle_cron_event(_: Metadata) -> Result<(), CronError> {
        match Pass::default().run() {
            Ok(report) => {
                if report.republished > 0 || !report.redriven.is_empty() || report.remaining > 0 {
                    eprintln!("admin: reconcile: {report:?}");
                }
                Ok(())
            }
            Err(e) => Err(CronError::Other(format!("reconcile failed: {e:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spin_sdk::http::Method;

    fn post(uri: &str) -> Request {
        Request::builder().method(Method::Post).uri(uri).build()
    }

    fn status(r: Result<Pass, FunctionError>) -> u16 {
        r.err().map(|e| *e.response().status()).unwrap_or(200)
    }

    #[test]
    fn defaults_when_no_parameters() {
        let pass = Pass::from_request(&post("/v1/admin/reconcile")).unwrap();
        assert_eq!(pass, Pass::default());
        assert_eq!(pass.grace, Duration::seconds(60));
        assert_eq!(pass.limit, 500);
    }

    #[test]
    fn takes_both_parameters() {
        let pass =
            Pass::from_request(&post("/v1/admin/reconcile?grace_seconds=0&limit=7")).unwrap();
        assert_eq!(
            pass,
            Pass {
                grace: Duration::zero(),
                limit: 7
            }
        );
    }

    #[test]
    fn refuses_parameters_out_of_range_or_not_numbers() {
        for q in [
            "grace_seconds=-1",
            "grace_seconds=abc",
            "grace_seconds=604801",
            "limit=0",
            "limit=10001",
            "limit=1.5",
        ] {
            let r = Pass::from_request(&post(&format!("/v1/admin/reconcile?{q}")));
            assert_eq!(status(r), 422, "{q}");
        }
    }
}
