//! ARM identity merge semantics for VM/VMSS PATCH: `{}` adds, `null` removes, `type` decides.

use serde_json::Value;

use crate::resource_id::normalize;

/// Which identity kinds an `identity.type` enables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityType {
    /// System-assigned identity present.
    pub system: bool,
    /// User-assigned identities allowed.
    pub user: bool,
}

impl IdentityType {
    /// Parses `None`, `SystemAssigned`, `UserAssigned`, `SystemAssigned, UserAssigned`
    /// (case-insensitive, spaces optional).
    pub fn parse(s: &str) -> Option<Self> {
        let compact: String = s
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        match compact.as_str() {
            "none" | "" => Some(Self {
                system: false,
                user: false,
            }),
            "systemassigned" => Some(Self {
                system: true,
                user: false,
            }),
            "userassigned" => Some(Self {
                system: false,
                user: true,
            }),
            "systemassigned,userassigned" | "userassigned,systemassigned" => Some(Self {
                system: true,
                user: true,
            }),
            _ => None,
        }
    }

    /// The Compute API spelling for the identity kinds present.
    pub fn render(system: bool, user: bool) -> &'static str {
        match (system, user) {
            (false, false) => "None",
            (true, false) => "SystemAssigned",
            (false, true) => "UserAssigned",
            (true, true) => "SystemAssigned, UserAssigned",
        }
    }
}

/// The requested identity change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityPatch {
    /// `identity.type`, if given.
    pub kind: Option<IdentityType>,
    /// Normalized ids to add.
    pub add: Vec<String>,
    /// Normalized ids to remove.
    pub remove: Vec<String>,
}

/// A PATCH body that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// Syntactically or semantically invalid (400 `InvalidParameter`/`InvalidRequestContent`).
    Invalid(String),
}

/// Reads the `identity` object of a PATCH body (`None` if the body has no identity).
pub fn parse(body: &Value) -> Result<Option<IdentityPatch>, PatchError> {
    let Some(obj) = body.as_object() else {
        return Err(PatchError::Invalid(
            "The request content must be a JSON object.".into(),
        ));
    };
    let identity = match obj.get("identity") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(i)) => i,
        Some(_) => return Err(PatchError::Invalid("'identity' must be an object.".into())),
    };
    let mut patch = IdentityPatch::default();
    if let Some(t) = identity.get("type") {
        let s = t
            .as_str()
            .ok_or_else(|| PatchError::Invalid("'identity.type' must be a string.".into()))?;
        patch.kind = Some(IdentityType::parse(s).ok_or_else(|| {
            PatchError::Invalid(format!(
                "The value '{s}' of parameter 'identity.type' is invalid."
            ))
        })?);
    }
    match identity.get("userAssignedIdentities") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (id, v) in map {
                match v {
                    Value::Null => patch.remove.push(normalize(id)),
                    Value::Object(_) => patch.add.push(normalize(id)),
                    _ => {
                        return Err(PatchError::Invalid(format!(
                            "The value of userAssignedIdentities '{id}' must be an object or null."
                        )));
                    }
                }
            }
        }
        Some(_) => {
            return Err(PatchError::Invalid(
                "'identity.userAssignedIdentities' must be an object.".into(),
            ));
        }
    }
    if let Some(k) = patch.kind {
        if !k.user && !patch.add.is_empty() {
            return Err(PatchError::Invalid(format!(
                "The identity type '{}' cannot be used together with userAssignedIdentities.",
                IdentityType::render(k.system, k.user)
            )));
        }
    }
    Ok(Some(patch))
}

/// Result of merging a patch into the current assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedIdentity {
    /// System-assigned identity enabled.
    pub system: bool,
    /// Normalized user identity ids.
    pub user: Vec<String>,
}

/// Merges: removes, then adds; a `type` without `UserAssigned` clears all user identities.
pub fn merge(
    current_system: bool,
    current_user: &[String],
    patch: &IdentityPatch,
) -> MergedIdentity {
    let mut user: Vec<String> = current_user
        .iter()
        .filter(|id| !patch.remove.contains(id))
        .cloned()
        .collect();
    for id in &patch.add {
        if !user.contains(id) {
            user.push(id.clone());
        }
    }
    let system = match patch.kind {
        Some(k) => {
            if !k.user {
                user.clear();
            }
            k.system
        }
        None => current_system,
    };
    MergedIdentity { system, user }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mic_style_add_and_remove() {
        let body = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {
            "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/A": {},
            "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/b": null
        }}});
        let p = parse(&body).unwrap().unwrap();
        let a = normalize(
            "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a",
        );
        let b = normalize(
            "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/b",
        );
        let m = merge(false, std::slice::from_ref(&b), &p);
        assert_eq!(
            m,
            MergedIdentity {
                system: false,
                user: vec![a]
            }
        );
    }

    #[test]
    fn type_none_clears_and_system_is_kept_without_type() {
        let current = vec!["x".to_string()];
        let p = parse(&json!({"identity": {"type": "None"}}))
            .unwrap()
            .unwrap();
        assert_eq!(
            merge(true, &current, &p),
            MergedIdentity {
                system: false,
                user: vec![]
            }
        );
        let p = parse(&json!({"identity": {"userAssignedIdentities": {"Y": {}}}}))
            .unwrap()
            .unwrap();
        assert_eq!(
            merge(true, &current, &p).user,
            vec!["x".to_string(), "y".to_string()]
        );
        assert!(merge(true, &current, &p).system);
        let p = parse(&json!({"identity": {"type": "systemassigned,userassigned"}}))
            .unwrap()
            .unwrap();
        assert_eq!(
            p.kind,
            Some(IdentityType {
                system: true,
                user: true
            })
        );
    }

    #[test]
    fn invalid_bodies_are_rejected() {
        assert!(parse(&json!([])).is_err());
        assert!(parse(&json!({"identity": {"type": "Weird"}})).is_err());
        assert!(parse(&json!({"identity": {"type": "SystemAssigned", "userAssignedIdentities": {"a": {}}}})).is_err());
        assert!(parse(&json!({"identity": {"userAssignedIdentities": {"a": 1}}})).is_err());
        assert_eq!(parse(&json!({"tags": {}})).unwrap(), None);
    }
}
