//! The scenario's header: name, tags, modes, and the NMI and MIC settings.

use std::collections::HashSet;

use super::{Checker, Declared, Scope, is_dns_label};
use crate::model::*;

/// NMI flags podid sets itself, and why a scenario may not.
const NMI_OWNED_FLAGS: [(&str, &str); 5] = [
    ("--node", "the provider sets it per node"),
    ("--operation-mode", "it comes from `modes`"),
    (
        "--nmi-port",
        "the interception rule is fixed to the provider's port",
    ),
    ("--http-probe-port", "the provider picks free ports"),
    ("--prometheus-port", "the provider picks free ports"),
];

/// MIC flags podid sets itself, and why a scenario may not.
const MIC_OWNED_FLAGS: [(&str, &str); 5] = [
    ("--kubeconfig", "the provider points MIC at its cluster"),
    ("--cloudconfig", "the provider points MIC at the mock cloud"),
    (
        "--leader-election-instance",
        "the provider names MIC once per run so a restarted MIC leads at once",
    ),
    ("--http-probe-port", "the provider picks free ports"),
    ("--prometheus-port", "the provider picks free ports"),
];

pub(super) fn check_header(c: &mut Checker, s: &Scenario, declared: &Declared) {
    if s.name.len() > 50 || !is_dns_label(&s.name) {
        c.report(
            s.name.at,
            format!("scenario name `{}` is not a short lowercase name", s.name.value),
            "use lowercase letters, digits and `-`, at most 50 characters (it names the test trial)",
        );
    }
    for tag in &s.tags {
        if tag.trim().is_empty() || tag.contains(char::is_whitespace) || tag.contains(',') {
            c.report(
                tag.at,
                format!("tag `{}` is not a single word", tag.value),
                "tags are single words such as `smoke` or `denial`",
            );
        }
    }
    if s.modes.is_empty() {
        c.report(
            s.name.at,
            "`modes` is empty, so the scenario would never run",
            "list `managed`, `standard` or both",
        );
    }
    let mut seen_modes = HashSet::new();
    for m in &s.modes {
        if !seen_modes.insert(m.value) {
            c.report(
                m.at,
                format!("mode `{}` is listed twice", m.value.as_str()),
                "list each mode once",
            );
        }
    }
    check_component_settings(c, s, declared);
}

fn check_component_settings(c: &mut Checker, s: &Scenario, declared: &Declared) {
    let managed_only = s.modes.iter().all(|m| m.value == NmiMode::Managed);
    if !s.mic.flags.is_empty() && managed_only {
        c.report(
            s.mic.flags[0].at,
            "`mic.flags` is set but the scenario only runs in managed mode, where MIC does not run",
            "drop `mic.flags` or add `standard` to `modes`",
        );
    }
    if let Some(replicas) = &s.mic.replicas {
        if !(1..=2).contains(&replicas.value) {
            c.report(
                replicas.at,
                format!("MIC runs 1 or 2 replicas, not {}", replicas.value),
                "write `replicas: 2` for a leader and a follower (as upstream's chart runs it), or leave it out for one",
            );
        }
        if managed_only {
            c.report(
                replicas.at,
                "`mic.replicas` is set but the scenario only runs in managed mode, where MIC does not run",
                "drop `mic.replicas` or add `standard` to `modes`",
            );
        }
    }
    for flag in s.nmi.flags.iter().chain(&s.mic.flags) {
        if !flag.starts_with("--") {
            c.report(
                flag.at,
                format!("`{}` is not a flag", flag.value),
                "write flags in full, e.g. `--set-retry-after-header=true`",
            );
        }
        c.text(&flag.value, flag.at, declared, Scope::Flags);
    }
    for (flags, owned) in [
        (&s.nmi.flags, &NMI_OWNED_FLAGS),
        (&s.mic.flags, &MIC_OWNED_FLAGS),
    ] {
        for f in flags {
            let name = f.value.split('=').next().unwrap_or_default();
            if let Some((flag, why)) = owned.iter().find(|(flag, _)| *flag == name) {
                c.report(
                    f.at,
                    format!("`{flag}` cannot be overridden by a scenario"),
                    *why,
                );
            }
        }
    }
}
