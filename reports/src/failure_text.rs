//! Wording of failures shared by the renderers and the line reporter, so every output names a
//! failure the same way.

use std::fmt::Write as _;

use crate::model::{Failure, Outcome, ScenarioReport, StepReport};

/// Longest value shown inline in a one-line summary before it is cut.
const ONE_LINE_VALUE_LIMIT: usize = 80;

/// `step 3 (token app): status: expected 403, got 200`: the first thing a reader needs.
pub fn failure_one_liner(step: &StepReport, failure: &Failure) -> String {
    let subject = format!(
        "step {} ({}): {}",
        step.index, step.name, failure.expectation
    );
    if failure.expected.is_empty() && failure.actual.is_empty() {
        format!("{subject}: {}", single_line(&failure.message))
    } else {
        format!(
            "{subject}: expected {}, got {}",
            single_line(&failure.expected),
            single_line(&failure.actual)
        )
    }
}

/// One line saying why a scenario did not pass, or `None` if it passed or was skipped.
///
/// Uses the first failed expectation; for a step that broke without one, the first line of its
/// output.
pub fn scenario_one_liner(scenario: &ScenarioReport) -> Option<String> {
    match scenario.status {
        Outcome::Passed | Outcome::Skipped => return None,
        Outcome::Failed | Outcome::Errored => {}
    }
    let bad_steps = || {
        scenario
            .steps
            .iter()
            .filter(|step| step.status.is_failure())
    };
    if let Some((step, failure)) =
        bad_steps().find_map(|step| step.failures.first().map(|failure| (step, failure)))
    {
        return Some(failure_one_liner(step, failure));
    }
    if let Some(step) = bad_steps().next() {
        let detail = step
            .output
            .as_deref()
            .map(single_line)
            .filter(|line| !line.is_empty())
            .unwrap_or_else(|| step.status.as_str().to_owned());
        return Some(format!("step {} ({}): {detail}", step.index, step.name));
    }
    Some(match scenario.status {
        Outcome::Errored => "harness error outside any step".to_owned(),
        _ => "scenario failed outside any step".to_owned(),
    })
}

/// Multi-line expected/actual text for every step that did not pass, for JUnit and Markdown.
pub fn failed_steps_block(scenario: &ScenarioReport) -> String {
    let mut text = String::new();
    for step in scenario
        .steps
        .iter()
        .filter(|step| step.status.is_failure())
    {
        text.push_str(&step_block(step));
    }
    text
}

/// Expected/actual text for one step that did not pass.
pub fn step_block(step: &StepReport) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "step {} {} [{}]: {}",
        step.index,
        step.name,
        step.kind,
        step.status.as_str()
    );
    for failure in &step.failures {
        let _ = writeln!(text, "  {}", failure.expectation);
        if !(failure.expected.is_empty() && failure.actual.is_empty()) {
            write_labelled(&mut text, "expected", &failure.expected);
            write_labelled(&mut text, "actual", &failure.actual);
        }
        if !failure.message.is_empty() {
            write_labelled(&mut text, "message", &failure.message);
        }
    }
    if let Some(output) = step.output.as_deref().filter(|output| !output.is_empty()) {
        write_labelled(&mut text, "output", output);
    }
    text
}

/// `    label:   value`, continuing multi-line values under the first line.
fn write_labelled(text: &mut String, label: &str, value: &str) {
    let mut lines = value.lines();
    let first = lines.next().unwrap_or("");
    let _ = writeln!(text, "    {:<10}{first}", format!("{label}:"));
    for line in lines {
        let _ = writeln!(text, "              {line}");
    }
}

/// First line of `value`, cut to [`ONE_LINE_VALUE_LIMIT`] characters with a marker when longer.
pub fn single_line(value: &str) -> String {
    let mut lines = value.trim().lines();
    let first = lines.next().unwrap_or("").trim_end();
    let more_lines = lines.next().is_some();
    let mut chars = first.chars();
    let mut shown: String = chars.by_ref().take(ONE_LINE_VALUE_LIMIT).collect();
    if chars.next().is_some() || more_lines {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_cuts_long_and_multi_line_values() {
        assert_eq!(single_line("  403 \n"), "403");
        assert_eq!(single_line("a\nb"), "a…");
        let long = "x".repeat(200);
        assert_eq!(single_line(&long).chars().count(), ONE_LINE_VALUE_LIMIT + 1);
    }
}
