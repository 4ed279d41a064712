//! The steps by name, and running one.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use crate::{notify, refund, reserve, route, validate, Error};

/// One step of an order's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// A storefront request parsed, checked against catalogue prices and stored.
    Validate,
    /// The order's units held where the planner would ship them from.
    Reserve,
    /// The cheapest plan with the fewest shipments, allocated from the order's holds.
    Route,
    /// A refund request valued and booked against the shipped order's ledger.
    Refund,
    /// An event serialized and signed as a Standard Webhooks delivery.
    Notify,
}

impl Step {
    /// Every step, in lifecycle order.
    pub const ALL: [Step; 5] = [
        Step::Validate,
        Step::Reserve,
        Step::Route,
        Step::Refund,
        Step::Notify,
    ];

    /// The step's name (as in `POST /<name>` to the `steps` component).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Validate => "validate",
            Step::Reserve => "reserve",
            Step::Route => "route",
            Step::Refund => "refund",
            Step::Notify => "notify",
        }
    }
}

impl FromStr for Step {
    type Err = Error;
    fn from_str(s: &str) -> Result<Step, Error> {
        Step::ALL
            .into_iter()
            .find(|step| step.as_str() == s)
            .ok_or_else(|| Error::UnknownStep(s.to_string()))
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Runs `step` on `input` (the step's JSON document, see [`crate::input`]); its JSON output.
///
/// # Errors
/// [`Error::Json`] for a malformed document, [`Error::Domain`] when a domain value does not
/// parse, [`Error::Step`] when the step refuses or fails (as its function would answer),
/// [`Error::Secret`] for a bad signing secret (notify).
pub fn run(step: Step, input: &[u8]) -> Result<Vec<u8>, Error> {
    match step {
        Step::Validate => validate::run(input),
        Step::Reserve => reserve::run(input),
        Step::Route => route::run(input),
        Step::Refund => refund::run(input),
        Step::Notify => notify::run(input),
    }
}

/// Runs `step` `times` times over, each run from the input bytes; the last output. Measures how
/// fast the step executes apart from what calling it costs.
///
/// # Errors
/// As [`run`], at the first run that fails.
pub fn run_repeated(step: Step, input: &[u8], times: NonZeroU32) -> Result<Vec<u8>, Error> {
    let mut output = run(step, input)?;
    for _ in 1..times.get() {
        // Keeps the optimizer from treating the runs as one.
        output = run(step, std::hint::black_box(input))?;
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for step in Step::ALL {
            assert_eq!(step.as_str().parse::<Step>().unwrap(), step);
        }
        assert!(matches!("ship".parse::<Step>(), Err(Error::UnknownStep(s)) if s == "ship"));
    }

    #[test]
    fn a_repeated_run_answers_what_one_run_does() {
        for step in Step::ALL {
            let input = crate::input(step);
            let three = NonZeroU32::new(3).unwrap();
            assert_eq!(
                run_repeated(step, &input, three).unwrap(),
                run(step, &input).unwrap(),
                "{step}"
            );
        }
    }
}
