//! Judging a step that got several answers at once (a pod group, `concurrent`, every instance
//! of a component): each answer must meet the expectations on its own, and the failures are
//! gathered per expectation, naming the answers that failed ("3 of 40 answers: status 404,
//! expected 200").

use std::time::Duration;

use podid_probe::HttpExchange;
use podid_reports::Failure;
use podid_scenario::Expect;
use podid_scenario::reference::Resolve;
use serde_json::Value;

use crate::expect::{self, Observed};

/// How many failed answers a failure lists by name.
const LISTED: usize = 5;

/// One answer and who gave it (`app-3`, `app-3 #1`, `nmi@node-0`).
pub(super) struct Answer<'a> {
    pub label: String,
    pub exchange: &'a HttpExchange,
    pub elapsed: Duration,
}

/// What judging every answer showed.
pub(super) struct Judged {
    pub failures: Vec<Failure>,
    /// Labels of the answers that failed any expectation.
    pub failed: Vec<String>,
}

/// The failed expectations over every answer. A lone answer's failures are returned as they
/// are, prefixed with its label when `label_alone` (a component instance is worth naming).
pub(super) fn judge(
    expect: &Expect,
    answers: &[Answer<'_>],
    signing_keys: Option<&Value>,
    resolver: &dyn Resolve,
    label_alone: bool,
) -> Judged {
    let per: Vec<(&str, Vec<Failure>)> = answers
        .iter()
        .map(|a| {
            let observed = Observed {
                response: Some(a.exchange),
                missing_reason: None,
                elapsed: a.elapsed,
                requests: &[],
                trial_requests: &[],
                signing_keys,
            };
            (
                a.label.as_str(),
                expect::check_answer(expect, &observed, resolver),
            )
        })
        .collect();
    let failed = per
        .iter()
        .filter(|(_, f)| !f.is_empty())
        .map(|(label, _)| label.to_string())
        .collect();
    let failures = match per.as_slice() {
        [(label, failures)] => failures
            .iter()
            .cloned()
            .map(|f| match label_alone {
                false => f,
                true => Failure {
                    message: format!("{label}: {}", f.message),
                    actual: format!("{label}: {}", f.actual),
                    ..f
                },
            })
            .collect(),
        _ => aggregate(per, answers.len()),
    };
    Judged { failures, failed }
}

/// One failure per expectation that failed for any answer.
fn aggregate(per: Vec<(&str, Vec<Failure>)>, total: usize) -> Vec<Failure> {
    let mut groups: Vec<(String, Vec<(&str, Failure)>)> = Vec::new();
    for (label, failures) in per {
        for f in failures {
            match groups.iter_mut().find(|(e, _)| *e == f.expectation) {
                Some((_, entries)) => entries.push((label, f)),
                None => groups.push((f.expectation.clone(), vec![(label, f)])),
            }
        }
    }
    groups
        .into_iter()
        .map(|(expectation, entries)| {
            let failed = entries.len();
            let mut messages: Vec<(&str, usize)> = Vec::new();
            for (_, f) in &entries {
                match messages.iter_mut().find(|(m, _)| *m == f.message) {
                    Some((_, n)) => *n += 1,
                    None => messages.push((&f.message, 1)),
                }
            }
            let said = match messages.as_slice() {
                [(only, _)] => only.to_string(),
                many => many
                    .iter()
                    .map(|(m, n)| format!("{m} ({n})"))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            let mut actual = entries
                .iter()
                .take(LISTED)
                .map(|(label, f)| format!("{label}: {}", f.actual))
                .collect::<Vec<_>>()
                .join("; ");
            if failed > LISTED {
                actual.push_str(&format!("; and {} more", failed - LISTED));
            }
            Failure {
                expectation,
                expected: entries[0].1.expected.clone(),
                actual,
                message: format!("{failed} of {total} answers: {said}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use podid_scenario::{Located, StatusExpect};

    fn exchange(status: u16) -> HttpExchange {
        HttpExchange {
            method: "GET".into(),
            url: "http://169.254.169.254/".into(),
            status: Some(status),
            headers: Vec::new(),
            body: String::new(),
            error: None,
            elapsed_ms: 1,
        }
    }

    struct Nothing;
    impl Resolve for Nothing {
        fn resolve(&self, _: &podid_scenario::reference::Reference) -> Option<String> {
            None
        }
    }

    #[test]
    fn failures_of_many_answers_are_counted_and_name_who_failed() {
        let expect = Expect {
            status: Some(Located::new(StatusExpect::One(200))),
            ..Expect::default()
        };
        let exchanges: Vec<HttpExchange> = (0..40)
            .map(|i| exchange(if i % 10 == 3 { 404 } else { 200 }))
            .collect();
        let answers: Vec<Answer> = exchanges
            .iter()
            .enumerate()
            .map(|(i, x)| Answer {
                label: format!("app-{i}"),
                exchange: x,
                elapsed: Duration::ZERO,
            })
            .collect();
        let judged = judge(&expect, &answers, None, &Nothing, false);
        assert_eq!(judged.failed, ["app-3", "app-13", "app-23", "app-33"]);
        let failures = judged.failures;
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(
            failures[0].message,
            "4 of 40 answers: status 404, expected 200"
        );
        assert!(
            failures[0].actual.starts_with("app-3: 404") && failures[0].actual.contains("app-33"),
            "{}",
            failures[0].actual
        );
    }
}
