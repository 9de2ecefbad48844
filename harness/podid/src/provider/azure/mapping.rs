//! The mapping file: existing Azure objects to use instead of creating new ones, for
//! subscriptions where the runner may not create identities or storage. Each declared identity
//! name maps to an existing identity, each declared storage account to an existing account;
//! `roles: preassigned` says the roles are in place already. Nothing is created for a mapped
//! item.
//!
//! ```yaml
//! identities:
//!   reader:
//!     clientId: 7d8c…
//!     principalId: 31f0…
//!     resourceId: /subscriptions/…/resourceGroups/fixtures/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader
//! storageAccounts:
//!   data:
//!     name: podidfixtures01
//!     resourceGroup: fixtures      # needed only when podid grants roles on it
//!     note: holds container `data` with hello.txt
//! roles: preassigned
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A loaded mapping file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mapping {
    /// Declared identity name → an existing user-assigned identity.
    #[serde(default)]
    pub identities: BTreeMap<String, MappedIdentity>,
    /// Declared storage account name → an existing account.
    #[serde(default)]
    pub storage_accounts: BTreeMap<String, MappedAccount>,
    /// Whether podid creates the scenario's role assignments.
    #[serde(default)]
    pub roles: RolePolicy,
}

/// An existing user-assigned identity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MappedIdentity {
    pub client_id: String,
    pub principal_id: String,
    pub resource_id: String,
}

/// An existing storage account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MappedAccount {
    /// Its real name.
    pub name: String,
    /// Its resource group: needed when podid creates role assignments on it.
    #[serde(default)]
    pub resource_group: Option<String>,
    /// Free text for whoever reads the file (what the account holds).
    #[serde(default)]
    pub note: Option<String>,
}

/// Who provides the scenario's role assignments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolePolicy {
    /// podid creates them (and deletes them at the end).
    #[default]
    Create,
    /// They are in place already; podid creates none.
    Preassigned,
}

/// Why a mapping file cannot be used. Positions are 1-based `file:line:column`.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("reading the mapping file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl Mapping {
    /// Reads and checks the mapping file at `path`.
    pub fn load(path: &Path) -> Result<Self, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and checks mapping text; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, MappingError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let options = serde_saphyr::options! { with_snippet: false, strict_booleans: true };
        let mapping: Mapping =
            serde_saphyr::from_str_with_options(text, options).map_err(|err| {
                let (line, column) = err
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                let raw = err.without_snippet().to_string();
                let first = raw.lines().next().unwrap_or(&raw);
                let message = match first.rfind(" at line ") {
                    Some(i) => &first[..i],
                    None => first,
                };
                MappingError::Parse {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: message.trim().trim_end_matches('.').to_string(),
                }
            })?;
        mapping.check().map_err(|message| MappingError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(mapping)
    }

    /// The mapped identity of a declared name.
    pub fn identity(&self, declared: &str) -> Option<&MappedIdentity> {
        self.identities.get(declared)
    }

    /// The mapped account of a declared name.
    pub fn account(&self, declared: &str) -> Option<&MappedAccount> {
        self.storage_accounts.get(declared)
    }

    /// Whether podid creates the scenario's role assignments.
    pub fn creates_roles(&self) -> bool {
        self.roles == RolePolicy::Create
    }

    fn check(&self) -> Result<(), String> {
        for (name, identity) in &self.identities {
            for (field, value) in [
                ("clientId", &identity.client_id),
                ("principalId", &identity.principal_id),
            ] {
                if uuid::Uuid::parse_str(value).is_err() {
                    return Err(format!(
                        "identity `{name}`: {field} `{value}` is not a GUID"
                    ));
                }
            }
            let id = identity.resource_id.to_ascii_lowercase();
            if !id.starts_with("/subscriptions/")
                || !id.contains("/providers/microsoft.managedidentity/userassignedidentities/")
            {
                return Err(format!(
                    "identity `{name}`: resourceId `{}` is not the id of a user-assigned identity (/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/NAME)",
                    identity.resource_id
                ));
            }
        }
        for (name, account) in &self.storage_accounts {
            let valid = (3..=24).contains(&account.name.len())
                && account
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "storage account `{name}`: `{}` is not a storage account name (3-24 lower-case letters and digits)",
                    account.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
identities:
  reader:
    clientId: 7d8c2a51-0000-4000-8000-000000000001
    principalId: 31f0aa11-0000-4000-8000-000000000002
    resourceId: /subscriptions/s/resourceGroups/fixtures/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader
storageAccounts:
  data:
    name: podidfixtures01
    resourceGroup: fixtures
    note: holds container data with hello.txt
roles: preassigned
";

    #[test]
    fn a_mapping_names_existing_objects() {
        let m = Mapping::parse(Path::new("map.yaml"), GOOD).unwrap();
        assert_eq!(
            m.identity("reader").unwrap().client_id,
            "7d8c2a51-0000-4000-8000-000000000001"
        );
        assert_eq!(m.account("data").unwrap().name, "podidfixtures01");
        assert_eq!(
            m.account("data").unwrap().resource_group.as_deref(),
            Some("fixtures")
        );
        assert!(!m.creates_roles());
        assert!(
            Mapping::parse(Path::new("m"), "identities: {}\n")
                .unwrap()
                .creates_roles()
        );
        assert_eq!(
            Mapping::parse(Path::new("m"), "\n").unwrap(),
            Mapping::default()
        );
    }

    #[test]
    fn mistakes_are_reported_at_their_line() {
        let text = GOOD.replace("    note:", "    notes:");
        let err = Mapping::parse(Path::new("map.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("map.yaml:10:5: unknown field `notes`"),
            "{err}"
        );
        assert!(err.contains("notes"), "{err}");
        let text = GOOD.replace("roles: preassigned", "roles: sometimes");
        let err = Mapping::parse(Path::new("map.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("map.yaml:11:"), "{err}");
    }

    #[test]
    fn ids_and_names_are_checked() {
        let text = GOOD.replace("7d8c2a51-0000-4000-8000-000000000001", "reader-client");
        let err = Mapping::parse(Path::new("map.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "map.yaml: identity `reader`: clientId `reader-client` is not a GUID"
        );
        let text = GOOD.replace(
            "Microsoft.ManagedIdentity/userAssignedIdentities",
            "Microsoft.Compute/virtualMachines",
        );
        assert!(
            Mapping::parse(Path::new("m"), &text)
                .unwrap_err()
                .to_string()
                .contains("resourceId")
        );
        let text = GOOD.replace("podidfixtures01", "Podid-Fixtures");
        assert!(
            Mapping::parse(Path::new("m"), &text)
                .unwrap_err()
                .to_string()
                .contains("storage account `data`")
        );
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = Mapping::load(Path::new("/nonexistent/podid-map.yaml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("reading the mapping file /nonexistent/podid-map.yaml")
        );
    }
}
