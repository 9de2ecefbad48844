//! Edits to a workload's pod template, on the JSON form of upstream's object. Each edit adds
//! or replaces exactly one thing and leaves the rest (security context, probes, service
//! account, volumes upstream mounts) as upstream wrote it.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::InclusterError;

/// A workload's pod template (`spec.template`), to be edited in place.
pub struct PodTemplate<'a> {
    /// `Kind namespace/name` of the workload, for messages.
    what: String,
    template: &'a mut Map<String, Value>,
}

impl<'a> PodTemplate<'a> {
    /// The template of `workload`, or an error naming what is missing.
    pub fn of(workload: &'a mut Value, what: String) -> Result<Self, InclusterError> {
        let template = workload
            .pointer_mut("/spec/template")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| InclusterError::render(&what, "no spec.template"))?;
        Ok(Self { what, template })
    }

    fn spec(&mut self) -> Result<&mut Map<String, Value>, InclusterError> {
        self.template
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| InclusterError::render(&self.what, "no spec.template.spec"))
    }

    /// The containers (not init containers: upstream has none, and NMI and MIC are one
    /// container each).
    fn containers(&mut self) -> Result<&mut Vec<Value>, InclusterError> {
        let what = self.what.clone();
        self.spec()?
            .get_mut("containers")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| InclusterError::render(what, "no containers in the pod template"))
    }

    /// The container called `name`.
    pub fn container(&mut self, name: &str) -> Result<&mut Map<String, Value>, InclusterError> {
        let what = self.what.clone();
        self.containers()?
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            .ok_or_else(|| InclusterError::render(what, format!("no container named {name:?}")))
    }

    /// Sets `image` on container `name`.
    pub fn set_image(&mut self, name: &str, image: &str) -> Result<(), InclusterError> {
        self.container(name)?
            .insert("image".into(), Value::String(image.into()));
        Ok(())
    }

    /// Sets `imagePullPolicy` on every container.
    pub fn set_pull_policy(&mut self, policy: &str) -> Result<(), InclusterError> {
        for container in self
            .containers()?
            .iter_mut()
            .filter_map(Value::as_object_mut)
        {
            container.insert("imagePullPolicy".into(), Value::String(policy.into()));
        }
        Ok(())
    }

    /// Appends `extra` to container `name`'s `args`, after upstream's.
    pub fn append_args(&mut self, name: &str, extra: &[String]) -> Result<(), InclusterError> {
        if extra.is_empty() {
            return Ok(());
        }
        let what = self.what.clone();
        let container = self.container(name)?;
        let args = container
            .entry("args")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| InclusterError::render(what, format!("{name}: args is not a list")))?;
        args.extend(extra.iter().cloned().map(Value::String));
        Ok(())
    }

    /// The `args` of container `name` as written.
    pub fn args(&mut self, name: &str) -> Result<Vec<String>, InclusterError> {
        Ok(self
            .container(name)?
            .get("args")
            .and_then(Value::as_array)
            .map(|args| {
                args.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The `env` entry called `var` of container `name`.
    pub fn env_var(&mut self, name: &str, var: &str) -> Result<Option<Value>, InclusterError> {
        Ok(self
            .container(name)?
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(var))
            .cloned())
    }

    /// Sets (or replaces, by name) environment variables on every container.
    pub fn upsert_env<T: Serialize>(&mut self, vars: &[T]) -> Result<(), InclusterError> {
        let vars = to_values(vars, &self.what)?;
        for container in self
            .containers()?
            .iter_mut()
            .filter_map(Value::as_object_mut)
        {
            upsert_named(container, "env", &vars);
        }
        Ok(())
    }

    /// Adds (or replaces, by name) a volume, and mounts it into every container.
    pub fn add_volume<V: Serialize, M: Serialize>(
        &mut self,
        volume: &V,
        mount: &M,
    ) -> Result<(), InclusterError> {
        let volume = to_values(std::slice::from_ref(volume), &self.what)?;
        let mount = to_values(std::slice::from_ref(mount), &self.what)?;
        upsert_named(self.spec()?, "volumes", &volume);
        for container in self
            .containers()?
            .iter_mut()
            .filter_map(Value::as_object_mut)
        {
            upsert_named(container, "volumeMounts", &mount);
        }
        Ok(())
    }

    /// Appends `hostAliases` entries to the pod spec.
    pub fn add_host_aliases<T: Serialize>(&mut self, aliases: &[T]) -> Result<(), InclusterError> {
        if aliases.is_empty() {
            return Ok(());
        }
        let aliases = to_values(aliases, &self.what)?;
        let what = self.what.clone();
        self.spec()?
            .entry("hostAliases")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| InclusterError::render(what, "hostAliases is not a list"))?
            .extend(aliases);
        Ok(())
    }

    /// `(secret, key)` of every `env[].valueFrom.secretKeyRef` in container `name`.
    pub fn secret_key_refs(&mut self, name: &str) -> Result<Vec<(String, String)>, InclusterError> {
        let container = self.container(name)?;
        let env = container.get("env").and_then(Value::as_array);
        Ok(env
            .into_iter()
            .flatten()
            .filter_map(|var| var.pointer("/valueFrom/secretKeyRef"))
            .filter_map(|r| {
                Some((
                    r.get("name")?.as_str()?.to_string(),
                    r.get("key")?.as_str()?.to_string(),
                ))
            })
            .collect())
    }

    /// The `hostPath` volume mounted at `mount_path` in container `name`, as `(path, type)`.
    pub fn host_path_mounted_at(
        &mut self,
        name: &str,
        mount_path: &str,
    ) -> Result<Option<(String, Option<String>)>, InclusterError> {
        let volume_name = self
            .container(name)?
            .get("volumeMounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|m| m.get("mountPath").and_then(Value::as_str) == Some(mount_path))
            .and_then(|m| m.get("name").and_then(Value::as_str))
            .map(str::to_string);
        let Some(volume_name) = volume_name else {
            return Ok(None);
        };
        let volume = self
            .spec()?
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(volume_name.as_str()));
        Ok(volume.and_then(|v| v.get("hostPath")).map(|host_path| {
            (
                host_path
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                host_path
                    .get("type")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            )
        }))
    }
}

fn to_values<T: Serialize>(items: &[T], what: &str) -> Result<Vec<Value>, InclusterError> {
    items
        .iter()
        .map(|item| {
            serde_json::to_value(item)
                .map_err(|e| InclusterError::render(what, format!("serialising a patch: {e}")))
        })
        .collect()
}

/// In the list `field` of `object`, replaces the entries whose `name` matches one of `items`
/// and appends the others (creating the list if needed).
fn upsert_named(object: &mut Map<String, Value>, field: &str, items: &[Value]) {
    let list = object
        .entry(field)
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    let Value::Array(list) = list else {
        unreachable!("made an array above")
    };
    for item in items {
        let name = item.get("name");
        match list.iter_mut().find(|e| e.get("name") == name) {
            Some(existing) => *existing = item.clone(),
            None => list.push(item.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workload() -> Value {
        json!({
            "spec": {"template": {"spec": {
                "containers": [
                    {"name": "main", "args": ["--a"], "env": [
                        {"name": "KEEP", "value": "1"},
                        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "K"}}}
                    ], "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]},
                    {"name": "side"}
                ],
                "volumes": [{"name": "cfg", "hostPath": {"path": "/etc/cfg", "type": "FileOrCreate"}}]
            }}}
        })
    }

    #[test]
    fn env_is_replaced_by_name_and_added_to_every_container() {
        let mut w = workload();
        let mut t = PodTemplate::of(&mut w, "w".into()).unwrap();
        t.upsert_env(&[
            json!({"name": "KEEP", "value": "2"}),
            json!({"name": "NEW", "value": "3"}),
        ])
        .unwrap();
        assert_eq!(
            w.pointer("/spec/template/spec/containers/0/env").unwrap(),
            &json!([
                {"name": "KEEP", "value": "2"},
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "K"}}},
                {"name": "NEW", "value": "3"}
            ])
        );
        assert_eq!(
            w.pointer("/spec/template/spec/containers/1/env").unwrap(),
            &json!([{"name": "KEEP", "value": "2"}, {"name": "NEW", "value": "3"}])
        );
    }

    #[test]
    fn args_are_appended_after_upstreams() {
        let mut w = workload();
        let mut t = PodTemplate::of(&mut w, "w".into()).unwrap();
        t.append_args("main", &["--b".into()]).unwrap();
        t.append_args("side", &["--c".into()]).unwrap();
        assert_eq!(t.args("main").unwrap(), ["--a", "--b"]);
        assert_eq!(t.args("side").unwrap(), ["--c"]);
    }

    #[test]
    fn finds_secret_refs_and_host_path_mounts() {
        let mut w = workload();
        let mut t = PodTemplate::of(&mut w, "w".into()).unwrap();
        assert_eq!(
            t.secret_key_refs("main").unwrap(),
            [("s".to_string(), "K".to_string())]
        );
        assert_eq!(
            t.host_path_mounted_at("main", "/etc/cfg").unwrap(),
            Some(("/etc/cfg".to_string(), Some("FileOrCreate".to_string())))
        );
        assert_eq!(t.host_path_mounted_at("side", "/etc/cfg").unwrap(), None);
    }

    #[test]
    fn a_missing_container_is_named() {
        let mut w = workload();
        let mut t = PodTemplate::of(&mut w, "DaemonSet ns/x".into()).unwrap();
        let err = t.set_image("nope", "img").unwrap_err();
        assert_eq!(
            err.to_string(),
            "rendering DaemonSet ns/x: no container named \"nope\""
        );
    }
}
