//! Where the project's SDK clients (`fixtures/clients/`) are, and how to start each: pods of
//! the local provider run them from the repository with the machine's Python and Node.js.

use std::path::{Path, PathBuf};

use podid_scenario::ClientKind;

/// Environment variable naming the clients' directory (default: `fixtures/clients` of the
/// current directory or of the source tree podid was built from).
pub const CLIENTS_DIR_VAR: &str = "PODID_CLIENTS_DIR";

/// The clients' directory and how to start each client from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPrograms {
    root: PathBuf,
}

impl ClientPrograms {
    /// Clients under `root` (the directory holding `python/`, `javascript/`, `azcli/`).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The clients' directory: `$PODID_CLIENTS_DIR`, else `fixtures/clients` of the current
    /// directory, else that of the source tree podid was built from.
    pub fn locate() -> Self {
        if let Some(dir) = std::env::var_os(CLIENTS_DIR_VAR) {
            return Self::at(dir);
        }
        let here = Path::new("fixtures/clients");
        if here.is_dir() {
            if let Ok(absolute) = here.canonicalize() {
                return Self::at(absolute);
            }
        }
        Self::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/clients"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Program and leading arguments of `client`.
    pub fn argv(&self, client: ClientKind) -> Vec<String> {
        let path = |rel: &str| self.root.join(rel).display().to_string();
        match client {
            ClientKind::Python => vec!["python3".into(), path("python/podid_client.py")],
            ClientKind::Javascript => vec!["node".into(), path("javascript/podid_client.mjs")],
            ClientKind::Azcli => vec![path("azcli/podid_azcli.sh")],
        }
    }

    /// Why `client` cannot start here (its files or packages are missing), with the command
    /// that installs it; `None` when it looks installed.
    pub fn missing(&self, client: ClientKind) -> Option<String> {
        let (needed, install) = match client {
            ClientKind::Python => (
                self.root.join("python/podid_client.py"),
                "python3 -m pip install -r fixtures/clients/python/requirements.txt",
            ),
            ClientKind::Javascript => (
                self.root.join("javascript/node_modules/@azure/identity"),
                "npm ci --prefix fixtures/clients/javascript",
            ),
            ClientKind::Azcli => (
                self.root.join("azcli/podid_azcli.sh"),
                "see fixtures/clients/README.md",
            ),
        };
        (!needed.exists()).then(|| {
            format!(
                "the {} client is not installed ({} is missing): run `{install}`",
                client_name(client),
                needed.display()
            )
        })
    }
}

/// How reports name a client.
pub fn client_name(client: ClientKind) -> &'static str {
    match client {
        ClientKind::Python => "Python",
        ClientKind::Javascript => "JavaScript",
        ClientKind::Azcli => "Azure CLI",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_starts_each_client_from_the_root() {
        let clients = ClientPrograms::at("/c");
        assert_eq!(
            clients.argv(ClientKind::Python),
            ["python3", "/c/python/podid_client.py"]
        );
        assert_eq!(
            clients.argv(ClientKind::Javascript),
            ["node", "/c/javascript/podid_client.mjs"]
        );
    }

    #[test]
    fn a_missing_client_says_how_to_install_it() {
        let clients = ClientPrograms::at("/nonexistent");
        let why = clients.missing(ClientKind::Javascript).unwrap();
        assert!(
            why.contains("npm ci --prefix fixtures/clients/javascript"),
            "{why}"
        );
    }

    #[test]
    fn the_repository_clients_are_found() {
        let clients = ClientPrograms::locate();
        assert!(clients.root().join("python").is_dir(), "{clients:?}");
    }
}
