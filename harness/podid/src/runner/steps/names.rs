//! Readable names for steps that have no `name` of their own, derived from the action.

use podid_scenario::{Action, CloudStep, Component, ComponentTarget, RoleAssignmentDecl, Step};

/// A readable name for a step (its own `name`, else derived from the action).
pub fn step_name(step: &Step) -> String {
    if let Some(n) = &step.name {
        return n.clone();
    }
    match step.action() {
        Some(Action::Token(t)) => {
            let mut s = format!("token from {}", t.pod.value);
            if let Some(c) = &t.client_id {
                s.push_str(&format!(" (client_id {})", c.value));
            }
            if let Some(n) = &t.concurrent {
                s.push_str(&format!(", {} at once", n.value));
            }
            s
        }
        Some(Action::Blob(b)) => format!(
            "blob {:?} {}/{} from {}",
            b.op, b.account.value, b.container.value, b.pod.value
        )
        .to_lowercase(),
        Some(Action::Apply(_)) => "apply objects".into(),
        Some(Action::Delete(r)) => format!("delete {:?} {}", r.kind.value, r.name.value),
        Some(Action::Patch(p)) => format!("patch {:?} {}", p.kind.value, p.name.value),
        Some(Action::Wait(w)) => match (&w.kind, &w.name, &w.count) {
            (Some(kind), _, Some(count)) => {
                format!("wait for {} {:?} object(s)", count.value, kind.value)
            }
            (Some(kind), Some(name), None) => {
                format!(
                    "wait for {:?} {} ({:?})",
                    kind.value, name.value, w.condition
                )
            }
            _ => format!("wait for {} cloud request expectation(s)", w.requests.len()),
        },
        Some(Action::Sleep(d)) => format!("sleep {d}"),
        Some(Action::Cloud(c)) => cloud_name(c),
        Some(Action::Lifecycle(a, t)) => format!("{} {}", a.keyword(), target_name(t)),
        Some(Action::Health(t)) => format!("health of {}", target_name(t)),
        Some(Action::Exec(e)) => match &e.client {
            Some(c) => format!(
                "{} client in {}: {}",
                c.value.as_str(),
                e.pod.value,
                e.args
                    .iter()
                    .map(|a| a.value.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            None => format!(
                "run `{}` in {}",
                e.command
                    .iter()
                    .map(|a| a.value.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                e.pod.value
            ),
        },
        None => "invalid step".into(),
    }
}

fn role_name(r: &RoleAssignmentDecl) -> String {
    let role = serde_json::to_value(r.role.value)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let scope = match (&r.account, &r.container) {
        (Some(a), Some(c)) => format!("{}/{}", a.value, c.value),
        (Some(a), None) => a.value.clone(),
        (None, _) => "the subscription".to_string(),
    };
    format!("{role} for {} on {scope}", r.principal.value)
}

fn cloud_name(c: &CloudStep) -> String {
    if let Some(a) = &c.assign {
        return format!("assign {} to {}", a.identity.value, a.node.value);
    }
    if let Some(a) = &c.unassign {
        return format!("unassign {} from {}", a.identity.value, a.node.value);
    }
    if let Some(node) = &c.enable_system_assigned {
        return format!("enable the system-assigned identity of {}", node.value);
    }
    if let Some(r) = &c.add_role {
        return format!("add role {}", role_name(r));
    }
    if let Some(r) = &c.remove_role {
        return format!("remove role {}", role_name(r));
    }
    if let Some(n) = &c.delete_identity {
        return format!("delete identity {}", n.value);
    }
    if let Some(n) = &c.recreate_identity {
        return format!("recreate identity {}", n.value);
    }
    "change the cloud".into()
}

/// `nmi on node-0`, `mic (leader)`, `apiserver`.
pub fn target_name(t: &ComponentTarget) -> String {
    let mut s = match t.component.value {
        Component::Nmi => "nmi",
        Component::Mic => "mic",
        Component::Apiserver => "apiserver",
    }
    .to_string();
    if let Some(node) = &t.node {
        s.push_str(&format!(" on {}", node.value));
    }
    if let Some(r) = &t.replica {
        s.push_str(&format!(" ({:?})", r.value).to_lowercase());
    }
    s
}
