//! Steps and checks on API objects: `delete`, `patch`, `wait` (for an object, its fields, or a
//! number of objects) and `expect.objects`. Field paths are dotted into the object's JSON and
//! compared as strings after `${}` rendering; AzureAssignedIdentities are counted for this
//! trial's pods only, so trials can share MIC.

use std::time::Duration;

use podid_reports::Failure;
use podid_scenario::reference;
use podid_scenario::{ObjectExpect, ObjectKind, ObjectRef, PatchStep, WaitFor, WaitStep};
use podid_wait::{Check, Poll, WaitError};
use serde_json::Value;

use super::{POLL, render};
use crate::objects;
use crate::runner::error::StepError;
use crate::runner::scenario_run::ScenarioRun;

/// Default deadline of a `wait` step.
const WAIT_DEFAULT: Duration = Duration::from_secs(30);
/// How many objects a count mismatch lists by name.
const LISTED: usize = 10;

pub(super) async fn delete(run: &mut ScenarioRun<'_>, r: &ObjectRef) -> Result<(), StepError> {
    let name = render(&r.name, &run.inst, "name")?;
    if r.kind.value == ObjectKind::Pod && run.delete_pod(&name).await? {
        return Ok(());
    }
    let ns = run
        .inst
        .object_namespace(r.kind.value, r.namespace.as_ref().map(|n| n.as_str()));
    let key = objects::key_of(r.kind.value, &ns, &name);
    if !run.env.provider.cluster.objects().delete(&key).await? {
        return Err(StepError::MissingObject(key.to_string()));
    }
    Ok(())
}

pub(super) async fn patch(run: &mut ScenarioRun<'_>, p: &PatchStep) -> Result<(), StepError> {
    let name = render(&p.name, &run.inst, "name")?;
    let ns = run
        .inst
        .object_namespace(p.kind.value, p.namespace.as_ref().map(|n| n.as_str()));
    let mut body = reference::render_json(&p.patch.value, &run.inst)
        .map_err(StepError::reference("the patch"))?;
    let key = objects::key_of(p.kind.value, &ns, &name);
    objects::with_trial_selectors(&key.kind, &mut body, &run.inst);
    Ok(run
        .env
        .provider
        .cluster
        .objects()
        .merge_patch(&key, &body)
        .await?)
}

/// What must hold of the objects of one kind, with every reference resolved.
pub(super) struct Query {
    kind: ObjectKind,
    namespace: String,
    name: Option<String>,
    /// Dotted path and wanted value.
    fields: Vec<(String, String)>,
    count: Option<u32>,
    absent: bool,
}

/// What one look found: it holds, or what was wanted and what there was.
pub(super) enum Look {
    Holds,
    Differs { expected: String, actual: String },
}

impl Query {
    fn new<'f>(
        run: &ScenarioRun<'_>,
        kind: ObjectKind,
        namespace: Option<&str>,
        name: Option<&podid_scenario::Template>,
        fields: impl IntoIterator<Item = (&'f String, &'f podid_scenario::Template)>,
    ) -> Result<Self, StepError> {
        let mut rendered = Vec::new();
        for (path, value) in fields {
            rendered.push((path.clone(), render(value, &run.inst, path)?));
        }
        Ok(Self {
            kind,
            namespace: run.inst.object_namespace(kind, namespace),
            name: name.map(|n| render(n, &run.inst, "name")).transpose()?,
            fields: rendered,
            count: None,
            absent: false,
        })
    }

    pub(super) fn of_wait(run: &ScenarioRun<'_>, w: &WaitStep) -> Result<Self, StepError> {
        let kind = w
            .kind
            .as_ref()
            .map(|k| k.value)
            .ok_or(StepError::NoAction)?;
        let ns = w.namespace.as_ref().map(|n| n.as_str());
        let mut query = Self::new(run, kind, ns, w.name.as_ref(), &w.fields)?;
        query.count = w.count.as_ref().map(|c| c.value);
        query.absent = w.condition == WaitFor::Deleted;
        Ok(query)
    }

    pub(super) fn of_expect(run: &ScenarioRun<'_>, e: &ObjectExpect) -> Result<Self, StepError> {
        let ns = e.namespace.as_ref().map(|n| n.as_str());
        let mut query = Self::new(run, e.kind.value, ns, e.name.as_ref(), &e.fields)?;
        query.count = e.count.as_ref().map(|c| c.value);
        query.absent = e.absent;
        Ok(query)
    }

    fn key(&self, name: &str) -> crate::provider::ObjectKey {
        objects::key_of(self.kind, &self.namespace, name)
    }

    /// `AzureAssignedIdentity in default`, `Pod app in ns-1`.
    fn describe(&self) -> String {
        let place = match self.kind.is_namespaced() {
            true => format!(" in {}", self.namespace),
            false => String::new(),
        };
        match &self.name {
            Some(name) => format!("{:?} {name}{place}", self.kind),
            None => format!("{:?}{place}", self.kind),
        }
    }

    fn wanted_fields(&self) -> String {
        self.fields
            .iter()
            .map(|(p, v)| format!("{p}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The fields that differ in `object`, as `path=actual` (empty when all match).
    fn mismatches(&self, object: &Value) -> Vec<String> {
        self.fields
            .iter()
            .filter_map(|(path, want)| {
                let got = field(object, path);
                (got.as_deref() != Some(want.as_str()))
                    .then(|| format!("{path}={}", got.as_deref().unwrap_or("(absent)")))
            })
            .collect()
    }

    /// Looks at the cluster once.
    pub(super) async fn look(&self, run: &ScenarioRun<'_>) -> Result<Look, StepError> {
        let store = run.env.provider.cluster.objects();
        if let Some(name) = &self.name {
            let found = store.get(&self.key(name)).await?;
            return Ok(match (found, self.absent) {
                (None, true) => Look::Holds,
                (Some(_), true) => Look::Differs {
                    expected: format!("no {}", self.describe()),
                    actual: "it exists".into(),
                },
                (None, false) => Look::Differs {
                    expected: self.describe_wanted(),
                    actual: "it does not exist".into(),
                },
                (Some(object), false) => match self.mismatches(&object) {
                    wrong if wrong.is_empty() => Look::Holds,
                    wrong => Look::Differs {
                        expected: self.describe_wanted(),
                        actual: wrong.join(", "),
                    },
                },
            });
        }
        let listed = store.list(&self.key("")).await?;
        let pod_namespaces = run.inst.pod_namespaces();
        let mut mine: Vec<&Value> = listed
            .iter()
            .filter(|o| {
                self.kind != ObjectKind::AzureAssignedIdentity
                    || field(o, "spec.podNamespace").is_some_and(|ns| pod_namespaces.contains(&ns))
            })
            .collect();
        mine.sort_by_key(|o| field(o, "metadata.name"));
        let (matching, others): (Vec<&Value>, Vec<&Value>) =
            mine.iter().partition(|o| self.mismatches(o).is_empty());
        let holds = match self.count {
            Some(n) => matching.len() == n as usize,
            None => !matching.is_empty(),
        };
        if holds {
            return Ok(Look::Holds);
        }
        let names = |objects: &[&Value], with_fields: bool| {
            let mut listed: Vec<String> = objects
                .iter()
                .take(LISTED)
                .map(|o| {
                    let name = field(o, "metadata.name").unwrap_or_default();
                    match with_fields {
                        true => format!("{name} ({})", self.mismatches(o).join(", ")),
                        false => name,
                    }
                })
                .collect();
            if objects.len() > LISTED {
                listed.push(format!("and {} more", objects.len() - LISTED));
            }
            listed.join(", ")
        };
        let mut actual = format!("{} matching: [{}]", matching.len(), names(&matching, false));
        if !self.fields.is_empty() && !others.is_empty() {
            actual.push_str(&format!(
                "; {} not matching: [{}]",
                others.len(),
                names(&others, true)
            ));
        }
        Ok(Look::Differs {
            expected: self.describe_wanted(),
            actual,
        })
    }

    fn describe_wanted(&self) -> String {
        let mut s = match (&self.name, self.count) {
            (Some(_), _) => self.describe(),
            (None, Some(n)) => format!("{n} × {}", self.describe()),
            (None, None) => format!("at least one {}", self.describe()),
        };
        if self.kind == ObjectKind::AzureAssignedIdentity && self.name.is_none() {
            s.push_str(" for this trial's pods");
        }
        if !self.fields.is_empty() {
            s.push_str(&format!(" with {}", self.wanted_fields()));
        }
        s
    }
}

/// The value at a dotted path, as a string (numbers and booleans written out, objects as
/// JSON); `None` when the path leads nowhere. A key that itself holds dots (a label such as
/// `podid.io/run`) is found too.
pub(super) fn field(object: &Value, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('.').collect();
    lookup(object, &segments).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn lookup<'v>(value: &'v Value, segments: &[&str]) -> Option<&'v Value> {
    if segments.is_empty() {
        return Some(value);
    }
    match value {
        Value::Object(map) => (1..=segments.len()).find_map(|take| {
            let key = segments[..take].join(".");
            map.get(&key).and_then(|v| lookup(v, &segments[take..]))
        }),
        Value::Array(items) => {
            let index: usize = segments[0].parse().ok()?;
            lookup(items.get(index)?, &segments[1..])
        }
        _ => None,
    }
}

/// A `wait` step: for cloud requests, or until the objects look as it says.
pub(super) async fn wait(run: &ScenarioRun<'_>, w: &WaitStep) -> Result<Vec<Failure>, StepError> {
    let timeout = run
        .env
        .scaled(w.timeout.map(|t| t.0).unwrap_or(WAIT_DEFAULT));
    if w.kind.is_none() {
        return Ok(super::state::wait_for_requests(run, &w.requests, timeout).await);
    }
    let query = Query::of_wait(run, w)?;
    let waited = podid_wait::until(Poll::every(POLL, timeout), || async {
        match query.look(run).await {
            Ok(Look::Holds) => Check::Done(()),
            Ok(differs) => Check::Pending(Ok(differs)),
            Err(e) => Check::Failed(Err(e)),
        }
    })
    .await;
    match waited {
        Ok(()) => Ok(Vec::new()),
        Err(WaitError::Failed { state: Err(e), .. }) => Err(e),
        Err(end) => {
            let secs = end.waited().as_secs();
            let (expected, actual) = match end.into_state() {
                Ok(Look::Differs { expected, actual }) => (expected, actual),
                _ => (query.describe_wanted(), "unknown".into()),
            };
            Ok(vec![Failure {
                expectation: "wait".into(),
                message: format!("timed out after {secs}s waiting for {expected}"),
                expected,
                actual,
            }])
        }
    }
}

/// `expect.objects`, each looked at once.
pub(super) async fn check(
    run: &ScenarioRun<'_>,
    expects: &[podid_scenario::Located<ObjectExpect>],
) -> Result<Vec<Failure>, StepError> {
    let mut failures = Vec::new();
    for e in expects {
        let query = Query::of_expect(run, &e.value)?;
        if let Look::Differs { expected, actual } = query.look(run).await? {
            failures.push(Failure {
                expectation: format!("objects.{:?}", query.kind),
                message: format!("{} is not as expected", query.describe()),
                expected,
                actual,
            });
        }
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_found_by_dotted_paths_and_written_as_strings() {
        let object = json!({
            "metadata": {"name": "a", "labels": {"podid.io/run": "r1", "nodename": "n0"}},
            "spec": {"replicas": 2, "ready": true, "ports": [{"port": 80}]},
        });
        assert_eq!(field(&object, "metadata.name").as_deref(), Some("a"));
        assert_eq!(
            field(&object, "metadata.labels.podid.io/run").as_deref(),
            Some("r1")
        );
        assert_eq!(field(&object, "spec.replicas").as_deref(), Some("2"));
        assert_eq!(field(&object, "spec.ready").as_deref(), Some("true"));
        assert_eq!(field(&object, "spec.ports.0.port").as_deref(), Some("80"));
        assert_eq!(field(&object, "spec.missing"), None);
    }
}
