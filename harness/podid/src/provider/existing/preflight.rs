//! Before anything touches a cluster: is the kubeconfig there, does it name the context, does
//! the API server answer and accept the credentials. Each question is answered within seconds
//! and each failure is one line saying what to do, because the usual cause is a typo or expired
//! credentials, not a bug. Also: whether podid may install NMI and MIC where none runs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::try_join_all;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

/// How long opening a connection to the API server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the preflight requests may wait for an answer once connected.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the whole check, credential plugins included (an exec plugin waiting for an
/// interactive login would otherwise hang it).
pub const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(8);

/// Namespaces every cluster has: podid installs into them but never creates or deletes them
/// (the same rule podid-incluster's rendering follows).
const BUILT_IN_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// A cluster that answered: the client for the rest of the run and what to print about it.
#[derive(Clone)]
pub struct Connected {
    /// Built without a read timeout (watches and exec sessions stay open), with
    /// [`CONNECT_TIMEOUT`] on new connections.
    pub client: kube::Client,
    /// The API server's address, as the kubeconfig gives it.
    pub server: String,
    /// The context used.
    pub context: String,
    /// The API server's version (`v1.30.4`).
    pub version: String,
    /// Who the API server says the credentials are (`None` on servers without
    /// SelfSubjectReview, before Kubernetes 1.28).
    pub user: Option<String>,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("server", &self.server)
            .field("context", &self.context)
            .field("version", &self.version)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why podid cannot use the cluster. Every message is one line naming what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "kubeconfig {path} does not exist; pass --kubeconfig PATH or set KUBECONFIG to the cluster's kubeconfig"
    )]
    KubeconfigMissing { path: String },
    #[error(
        "kubeconfig {path} cannot be read: {problem}; fix it or pass another with --kubeconfig"
    )]
    KubeconfigInvalid { path: String, problem: String },
    #[error(
        "kubeconfig {path} has no contexts; fetch the cluster's credentials into it (e.g. `az aks get-credentials`) or pass another with --kubeconfig"
    )]
    NoContexts { path: String },
    #[error("kubeconfig {path} sets no current-context; choose one of {} with --context", known.join(", "))]
    NoCurrentContext { path: String, known: Vec<String> },
    #[error("context {context:?} is not in kubeconfig {path} (it has {}); pass one of those with --context", known.join(", "))]
    UnknownContext {
        path: String,
        context: String,
        known: Vec<String>,
    },
    #[error("context {context} cannot be used: {problem}; fix the context in the kubeconfig")]
    BadContext { context: String, problem: String },
    #[error(
        "cannot reach the API server {server} (context {context}): {cause}; check that the cluster runs and is reachable from here"
    )]
    Unreachable {
        server: String,
        context: String,
        cause: String,
    },
    #[error(
        "cannot get credentials for context {context}: {cause}; log in again (e.g. `az login`, `az aks get-credentials`)"
    )]
    Credentials { context: String, cause: String },
    #[error(
        "the API server {server} does not accept the credentials of context {context} ({cause}); refresh them (e.g. `az aks get-credentials`) or use another context"
    )]
    Unauthorized {
        server: String,
        context: String,
        cause: String,
    },
    #[error("{action}: {cause}")]
    Api { action: String, cause: String },
    #[error("the cluster runs no NMI and podid may not install it: cannot {}", missing.join(", "))]
    InstallForbidden { missing: Vec<String> },
}

/// Loads the kubeconfig (`kubeconfig`, else `KUBECONFIG`, else `~/.kube/config`), selects
/// `context` (else the current one), and proves the API server answers `GET /version` and
/// accepts the credentials, all within [`PREFLIGHT_TIMEOUT`].
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Connected, PreflightError> {
    let source = KubeconfigSource::locate(
        kubeconfig,
        std::env::var_os("KUBECONFIG"),
        std::env::var_os("HOME").map(PathBuf::from),
    )?;
    let loaded = source.load()?;
    let context = select_context(&loaded, &source.describe(), context)?;
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(loaded, &options)
        .await
        .map_err(|e| PreflightError::BadContext {
            context: context.clone(),
            problem: one_line(&e.to_string()),
        })?;
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let mut probe_config = config.clone();
    probe_config.connect_timeout = Some(CONNECT_TIMEOUT);
    probe_config.read_timeout = Some(ANSWER_TIMEOUT);
    probe_config.write_timeout = Some(ANSWER_TIMEOUT);
    probe_config.reset_reader_on_write = true;
    let probe = build_client(probe_config, &server, &context)?;
    let (version, user) = tokio::time::timeout(PREFLIGHT_TIMEOUT, probe_server(&probe))
        .await
        .map_err(|_| PreflightError::Unreachable {
            server: server.clone(),
            context: context.clone(),
            cause: format!("no answer within {}s", PREFLIGHT_TIMEOUT.as_secs()),
        })?
        .map_err(|e| classify(e, &server, &context))?;

    let mut run_config = config;
    run_config.connect_timeout = Some(CONNECT_TIMEOUT);
    let client = build_client(run_config, &server, &context)?;
    tracing::info!(%server, %context, %version, user = user.as_deref().unwrap_or("?"), "the cluster answers");
    Ok(Connected {
        client,
        server,
        context,
        version,
        user,
    })
}

fn build_client(
    config: kube::Config,
    server: &str,
    context: &str,
) -> Result<kube::Client, PreflightError> {
    kube::Client::try_from(config).map_err(|e| PreflightError::Unreachable {
        server: server.to_string(),
        context: context.to_string(),
        cause: format!("building the client: {}", describe_kube_error(&e)),
    })
}

/// `GET /version` (answered even to anonymous callers), then a SelfSubjectReview, which every
/// authenticated user may create and anonymous ones may not: it proves the credentials work.
async fn probe_server(client: &kube::Client) -> Result<(String, Option<String>), kube::Error> {
    let version = client.apiserver_version().await?.git_version;
    let reviews: Api<SelfSubjectReview> = Api::all(client.clone());
    let user = match reviews
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(review) => review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username),
        // Before 1.28 the API does not exist; a SelfSubjectAccessReview proves the same.
        Err(kube::Error::Api(status)) if status.code == 404 => {
            self_access_review(client, "get", "", "namespaces", None).await?;
            None
        }
        Err(e) => return Err(e),
    };
    Ok((version, user))
}

/// Sorts a failed probe into what the user has to do about it.
fn classify(error: kube::Error, server: &str, context: &str) -> PreflightError {
    match &error {
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
            PreflightError::Unauthorized {
                server: server.into(),
                context: context.into(),
                cause: describe_kube_error(&error),
            }
        }
        kube::Error::Auth(_) => PreflightError::Credentials {
            context: context.into(),
            cause: describe_kube_error(&error),
        },
        kube::Error::Api(_) => PreflightError::Api {
            action: format!("asking the API server {server} (context {context}) for its version"),
            cause: describe_kube_error(&error),
        },
        _ => PreflightError::Unreachable {
            server: server.into(),
            context: context.into(),
            cause: describe_kube_error(&error),
        },
    }
}

/// Where the kubeconfig comes from, in kubectl's order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigSource {
    /// `--kubeconfig PATH`.
    Given(PathBuf),
    /// `KUBECONFIG`: one or more files, merged (the first to set a value wins).
    Env(Vec<PathBuf>),
    /// `~/.kube/config`.
    Default(PathBuf),
}

impl KubeconfigSource {
    /// The source given `kubeconfig`, the value of `KUBECONFIG` and the home directory. Fails
    /// when the file (or every file `KUBECONFIG` lists) is missing.
    pub fn locate(
        kubeconfig: Option<&Path>,
        env: Option<OsString>,
        home: Option<PathBuf>,
    ) -> Result<Self, PreflightError> {
        let source = match (kubeconfig, env.filter(|v| !v.is_empty())) {
            (Some(path), _) => Self::Given(path.to_path_buf()),
            (None, Some(value)) => Self::Env(
                std::env::split_paths(&value)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect(),
            ),
            (None, None) => Self::Default(
                home.map(|h| h.join(".kube/config"))
                    .unwrap_or_else(|| PathBuf::from("~/.kube/config")),
            ),
        };
        if source.existing().is_empty() {
            return Err(PreflightError::KubeconfigMissing {
                path: source.describe(),
            });
        }
        Ok(source)
    }

    /// The files to read: all that exist (kubectl skips missing `KUBECONFIG` entries too).
    fn existing(&self) -> Vec<&Path> {
        let paths: Vec<&Path> = match self {
            Self::Given(p) | Self::Default(p) => vec![p.as_path()],
            Self::Env(paths) => paths.iter().map(PathBuf::as_path).collect(),
        };
        paths.into_iter().filter(|p| p.is_file()).collect()
    }

    /// The file(s), for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Given(p) | Self::Default(p) => p.display().to_string(),
            Self::Env(paths) => format!(
                "{} (from KUBECONFIG)",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ),
        }
    }

    /// Reads and merges the files.
    fn load(&self) -> Result<Kubeconfig, PreflightError> {
        let invalid = |e: KubeconfigError| PreflightError::KubeconfigInvalid {
            path: self.describe(),
            problem: one_line(&e.to_string()),
        };
        let mut merged: Option<Kubeconfig> = None;
        for path in self.existing() {
            let next = Kubeconfig::read_from(path).map_err(invalid)?;
            merged = Some(match merged {
                Some(m) => m.merge(next).map_err(invalid)?,
                None => next,
            });
        }
        Ok(merged.unwrap_or_default())
    }
}

/// The context to use: `wanted` if the kubeconfig has it, else its current one.
fn select_context(
    config: &Kubeconfig,
    path: &str,
    wanted: Option<&str>,
) -> Result<String, PreflightError> {
    let known: Vec<String> = config.contexts.iter().map(|c| c.name.clone()).collect();
    if known.is_empty() {
        return Err(PreflightError::NoContexts { path: path.into() });
    }
    let chosen = match wanted.filter(|w| !w.is_empty()) {
        Some(name) => name.to_string(),
        None => match config.current_context.as_deref().filter(|c| !c.is_empty()) {
            Some(current) => current.to_string(),
            None => {
                return Err(PreflightError::NoCurrentContext {
                    path: path.into(),
                    known,
                });
            }
        },
    };
    if !known.contains(&chosen) {
        return Err(PreflightError::UnknownContext {
            path: path.into(),
            context: chosen,
            known,
        });
    }
    Ok(chosen)
}

/// What installing NMI and MIC needs that the credentials lack.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permission {
    /// One entry per resource: `create/patch/delete daemonsets.apps in kube-system`.
    pub missing: Vec<String>,
}

impl Permission {
    /// Whether nothing is missing.
    pub fn allowed(&self) -> bool {
        self.missing.is_empty()
    }

    /// `Ok` when allowed, else the refusal the provider reports.
    pub fn require(&self) -> Result<(), PreflightError> {
        if self.allowed() {
            Ok(())
        } else {
            Err(PreflightError::InstallForbidden {
                missing: self.missing.clone(),
            })
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.require() {
            Ok(()) => f.write_str("podid may install NMI and MIC"),
            Err(refusal) => refusal.fmt(f),
        }
    }
}

/// One kind of object installing touches, and the verbs it needs on it.
struct Need {
    verbs: &'static [&'static str],
    group: &'static str,
    resource: &'static str,
    namespaced: bool,
}

/// What installing (server-side apply: create and patch) and removing (delete) upstream's
/// objects takes: CRDs (kept on removal), cluster RBAC, the namespace, the workloads and what
/// they mount; listing pods (removal waits for them) and deleting MIC's leader lock. RBAC's own
/// escalation check is left to the server-side dry run, which runs it for real.
const INSTALL_NEEDS: &[Need] = &[
    Need {
        verbs: &["create", "patch"],
        group: "apiextensions.k8s.io",
        resource: "customresourcedefinitions",
        namespaced: false,
    },
    Need {
        verbs: &["create", "patch", "delete"],
        group: "rbac.authorization.k8s.io",
        resource: "clusterroles",
        namespaced: false,
    },
    Need {
        verbs: &["create", "patch", "delete"],
        group: "rbac.authorization.k8s.io",
        resource: "clusterrolebindings",
        namespaced: false,
    },
    Need {
        verbs: &["create", "patch", "delete"],
        group: "apps",
        resource: "daemonsets",
        namespaced: true,
    },
    Need {
        verbs: &["create", "patch", "delete"],
        group: "apps",
        resource: "deployments",
        namespaced: true,
    },
    Need {
        verbs: &["create", "patch", "delete"],
        group: "",
        resource: "serviceaccounts",
        namespaced: true,
    },
    Need {
        verbs: &["create", "patch", "delete"],
        group: "",
        resource: "secrets",
        namespaced: true,
    },
    Need {
        verbs: &["create", "patch", "delete"],
        group: "",
        resource: "configmaps",
        namespaced: true,
    },
    Need {
        verbs: &["list"],
        group: "",
        resource: "pods",
        namespaced: true,
    },
    Need {
        verbs: &["delete"],
        group: "",
        resource: "endpoints",
        namespaced: true,
    },
];

/// Asks the API server (SelfSubjectAccessReview) whether the credentials may install NMI and
/// MIC into `namespace` and remove them again.
pub async fn install_permission(
    client: &kube::Client,
    namespace: &str,
) -> Result<Permission, PreflightError> {
    let namespace_verbs: &[&str] = if BUILT_IN_NAMESPACES.contains(&namespace) {
        &["get"]
    } else {
        &["get", "create", "patch", "delete"]
    };
    let namespace_need = Need {
        verbs: namespace_verbs,
        group: "",
        resource: "namespaces",
        namespaced: false,
    };
    let needs: Vec<&Need> = std::iter::once(&namespace_need)
        .chain(INSTALL_NEEDS.iter())
        .collect();
    let checks = needs.iter().map(|need| async move {
        let scope = need.namespaced.then_some(namespace);
        let mut denied = Vec::new();
        for verb in need.verbs {
            if !self_access_review(client, verb, need.group, need.resource, scope).await? {
                denied.push(*verb);
            }
        }
        Ok::<_, kube::Error>((*need, denied))
    });
    let answers = try_join_all(checks)
        .await
        .map_err(|e| PreflightError::Api {
            action: format!("asking what podid may install in {namespace}"),
            cause: describe_kube_error(&e),
        })?;
    let missing = answers
        .into_iter()
        .filter(|(_, denied)| !denied.is_empty())
        .map(|(need, denied)| {
            let resource = match need.group {
                "" => need.resource.to_string(),
                group => format!("{}.{group}", need.resource),
            };
            let place = if need.namespaced {
                format!(" in {namespace}")
            } else {
                String::new()
            };
            format!("{} {resource}{place}", denied.join("/"))
        })
        .collect();
    Ok(Permission { missing })
}

/// Whether the caller may `verb` the resource (in `namespace`, or cluster-wide).
async fn self_access_review(
    client: &kube::Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> Result<bool, kube::Error> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: namespace.map(str::to_string),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// A kube error as one short line: the API server's status (`403 Forbidden: …`) or the
/// innermost cause of a transport failure (`connection refused`), without kube's debug dump.
pub fn describe_kube_error(error: &kube::Error) -> String {
    if let kube::Error::Api(status) = error {
        let reason = if status.reason.is_empty() {
            status
                .status
                .as_ref()
                .map(|s| format!("{s:?}"))
                .unwrap_or_default()
        } else {
            status.reason.clone()
        };
        let text = if status.message.is_empty() {
            format!("{} {reason}", status.code)
        } else {
            format!("{} {reason}: {}", status.code, status.message)
        };
        return one_line(&text);
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    let text = innermost.to_string();
    let text = match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    let text = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => error.to_string(),
    };
    one_line(&text)
}

/// `text` on one line: whitespace runs (newlines included) become one space.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(text).expect("valid kubeconfig")
    }

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
clusters:
- {name: c, cluster: {server: "https://127.0.0.1:6443"}}
users:
- {name: u, user: {token: t}}
contexts:
- {name: aks-dev, context: {cluster: c, user: u}}
- {name: kind-podid, context: {cluster: c, user: u}}
current-context: aks-dev
"#;

    #[test]
    fn the_given_path_wins_over_kubeconfig_and_home() {
        let dir = std::env::temp_dir();
        let given = dir.join("podid-preflight-given-does-not-exist");
        let err = KubeconfigSource::locate(
            Some(&given),
            Some(OsString::from("/etc/hostname")),
            Some(dir.clone()),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "kubeconfig {} does not exist; pass --kubeconfig PATH or set KUBECONFIG to the cluster's kubeconfig",
                given.display()
            )
        );
    }

    #[test]
    fn kubeconfig_lists_are_split_and_missing_entries_skipped() {
        let env = std::env::join_paths(["/nonexistent/a", "/etc/hostname"]).unwrap();
        let source = KubeconfigSource::locate(None, Some(env), None).unwrap();
        assert_eq!(
            source,
            KubeconfigSource::Env(vec!["/nonexistent/a".into(), "/etc/hostname".into()])
        );
        assert_eq!(source.existing(), [Path::new("/etc/hostname")]);
        assert_eq!(
            source.describe(),
            "/nonexistent/a:/etc/hostname (from KUBECONFIG)"
        );
    }

    #[test]
    fn without_kubeconfig_the_home_default_is_used() {
        let err = KubeconfigSource::locate(None, Some(OsString::new()), Some("/nohome".into()))
            .unwrap_err();
        assert_eq!(
            err,
            PreflightError::KubeconfigMissing {
                path: "/nohome/.kube/config".into()
            }
        );
    }

    #[test]
    fn contexts_are_chosen_or_listed() {
        let c = config(TWO_CONTEXTS);
        assert_eq!(select_context(&c, "k", None).unwrap(), "aks-dev");
        assert_eq!(
            select_context(&c, "k", Some("kind-podid")).unwrap(),
            "kind-podid"
        );
        let err = select_context(&c, "k", Some("prod")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "context \"prod\" is not in kubeconfig k (it has aks-dev, kind-podid); pass one of those with --context"
        );
        let mut no_current = c.clone();
        no_current.current_context = None;
        assert_eq!(
            select_context(&no_current, "k", None)
                .unwrap_err()
                .to_string(),
            "kubeconfig k sets no current-context; choose one of aks-dev, kind-podid with --context"
        );
        let empty = config("apiVersion: v1\nkind: Config\n");
        assert!(matches!(
            select_context(&empty, "k", Some("x")),
            Err(PreflightError::NoContexts { .. })
        ));
    }

    #[test]
    fn the_refusal_lists_what_is_missing() {
        let permission = Permission {
            missing: vec![
                "create daemonsets.apps in kube-system".into(),
                "create/patch clusterroles.rbac.authorization.k8s.io".into(),
            ],
        };
        assert!(!permission.allowed());
        assert_eq!(
            permission.to_string(),
            "the cluster runs no NMI and podid may not install it: cannot create daemonsets.apps in kube-system, create/patch clusterroles.rbac.authorization.k8s.io"
        );
        assert!(Permission::default().require().is_ok());
    }

    #[test]
    fn api_errors_read_as_one_line() {
        let status = kube::core::Status::failure(
            "pods is forbidden:\n  User \"x\" cannot list",
            "Forbidden",
        )
        .with_code(403);
        assert_eq!(
            describe_kube_error(&kube::Error::Api(Box::new(status))),
            "403 Forbidden: pods is forbidden: User \"x\" cannot list"
        );
    }
}
