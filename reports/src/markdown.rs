//! Markdown summary for a CI job page (for example a GitHub step summary): counts first, a table
//! of scenarios, then what went wrong in each failed scenario and where its artifacts are.

use std::fmt::Write as _;

use crate::failure_text::{failed_steps_block, scenario_one_liner};
use crate::human_duration::format_duration;
use crate::model::{Outcome, RunReport, ScenarioReport};

/// Renders the redacted run as a Markdown summary.
pub fn render_markdown(report: &RunReport) -> String {
    let report = report.redacted();
    let mut text = String::new();
    write_headline(&mut text, &report);
    write_table(&mut text, &report);
    let failed: Vec<&ScenarioReport> = report
        .scenarios
        .iter()
        .filter(|scenario| scenario.status.is_failure())
        .collect();
    if !failed.is_empty() {
        text.push_str("\n### Failures\n");
        for scenario in failed {
            write_failure_section(&mut text, scenario);
        }
    }
    text
}

fn write_headline(text: &mut String, report: &RunReport) {
    let counts = report.counts();
    let icon = if counts.is_success() { "✅" } else { "❌" };
    let _ = writeln!(
        text,
        "## {icon} podid: {} passed, {} failed, {} errored, {} skipped in {}\n",
        counts.passed,
        counts.failed,
        counts.errored,
        counts.skipped,
        format_duration(report.duration)
    );
    let _ = writeln!(
        text,
        "Run {} on provider {}, started {}.",
        inline_code(&report.run_id),
        inline_code(&report.provider),
        report
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    if !report.environment.is_empty() {
        let components: Vec<String> = report
            .environment
            .iter()
            .map(|(name, version)| format!("{} {}", escape_text(name), inline_code(version)))
            .collect();
        let _ = writeln!(text, "Environment: {}.", components.join(", "));
    }
}

fn write_table(text: &mut String, report: &RunReport) {
    if report.scenarios.is_empty() {
        text.push_str("\nNo scenarios were selected.\n");
        return;
    }
    text.push_str("\n| | Scenario | Mode | Duration | Note |\n|---|---|---|---:|---|\n");
    for scenario in &report.scenarios {
        let note = match scenario.status {
            Outcome::Skipped => scenario.skip_reason.clone().unwrap_or_default(),
            _ => scenario_one_liner(scenario).unwrap_or_default(),
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} |",
            icon(scenario.status),
            escape_text(&scenario.name),
            escape_text(&scenario.mode),
            format_duration(scenario.duration),
            escape_text(&note)
        );
    }
}

fn write_failure_section(text: &mut String, scenario: &ScenarioReport) {
    let _ = writeln!(
        text,
        "\n#### {} {}\n\nFile {}, mode {}, {}.\n",
        icon(scenario.status),
        escape_text(&scenario.name),
        inline_code(&scenario.file),
        inline_code(&scenario.mode),
        scenario.status.as_str()
    );
    let block = failed_steps_block(scenario);
    if let Some(summary) = scenario_one_liner(scenario).filter(|_| block.is_empty()) {
        let _ = writeln!(text, "{}\n", escape_text(&summary));
    }
    if !block.is_empty() {
        let fence = fence_for(&block);
        let _ = writeln!(text, "{fence}text\n{block}{fence}\n");
    }
    if !scenario.attachments.is_empty() {
        text.push_str("Attachments:\n");
        for attachment in &scenario.attachments {
            let _ = writeln!(
                text,
                "- {}: {}",
                escape_text(&attachment.name),
                inline_code(&attachment.path.to_string_lossy())
            );
        }
    }
}

fn icon(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "✅",
        Outcome::Failed => "❌",
        Outcome::Errored => "💥",
        Outcome::Skipped => "⏭️",
    }
}

/// Text safe inside a table cell or heading: one line, no table separators, no raw HTML.
fn escape_text(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '|' => escaped.push_str("\\|"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '\r' => {}
            '\n' => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

/// An inline code span that stays one span whatever backticks the value holds.
fn inline_code(value: &str) -> String {
    let value = value.replace(['\r', '\n'], " ");
    let ticks = "`".repeat(longest_backtick_run(&value) + 1);
    if value.starts_with('`') || value.ends_with('`') {
        format!("{ticks} {value} {ticks}")
    } else {
        format!("{ticks}{value}{ticks}")
    }
}

/// A code fence longer than any backtick run in `content`, so the content cannot close it.
fn fence_for(content: &str) -> String {
    "`".repeat((longest_backtick_run(content) + 1).max(3))
}

fn longest_backtick_run(value: &str) -> usize {
    value.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_text_keeps_table_cells_intact() {
        assert_eq!(escape_text("a|b\n<c>"), "a\\|b &lt;c&gt;");
    }

    #[test]
    fn inline_code_and_fences_outgrow_embedded_backticks() {
        assert_eq!(inline_code("x"), "`x`");
        assert_eq!(inline_code("a`b"), "``a`b``");
        assert_eq!(inline_code("`a"), "`` `a ``");
        assert_eq!(fence_for("plain"), "```");
        assert_eq!(fence_for("has ```` inside"), "`````");
    }
}
