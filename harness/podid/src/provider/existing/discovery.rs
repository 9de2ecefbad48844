//! What already runs in the cluster: NMI DaemonSets and MIC Deployments in any namespace, who
//! installed them (the AKS add-on, upstream's Helm chart, upstream's manifests, podid), in
//! which mode, with which flags and images. Read from the workloads' specs, so the answer is
//! the same whether or not their pods are up; readiness is reported beside it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use podid_incluster::trust::MANAGED_BY_LABEL;
use podid_incluster::{Mode, WorkloadKind, WorkloadRef};

use super::preflight::describe_kube_error;

/// Which of the two programs a workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Nmi,
    Mic,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nmi => "nmi",
            Self::Mic => "mic",
        }
    }

    /// The last path segment of upstream's image (`…/aad-pod-identity/nmi`), which is also
    /// upstream's container name.
    fn image_name(self) -> &'static str {
        self.as_str()
    }

    /// Flags only this program takes: a container named `nmi`/`mic` passing one of them is
    /// taken for it whatever its image (a mirror, a private build).
    fn marker_flags(self) -> &'static [&'static str] {
        match self {
            Self::Nmi => &[
                "node",
                "operation-mode",
                "nmi-port",
                "metadata-header-required",
                "ipt-update-interval-sec",
                "kubelet-config",
                "MICNamespace",
            ],
            Self::Mic => &[
                "cloudconfig",
                "syncRetryDuration",
                "leader-election-instance",
                "leader-election-namespace",
                "leader-election-name",
                "createDeleteBatch",
                "immutable-user-msis",
                "identity-assignment-reconcile-interval",
            ],
        }
    }

    /// Flag defaults of the pinned release (v1.8.17), to compare a flag that is not passed;
    /// another release may differ.
    fn defaults(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Nmi => &[
                ("nmi-listen-address", "127.0.0.1"),
                ("nmi-port", "2579"),
                ("metadata-ip", "169.254.169.254"),
                ("metadata-port", "80"),
                ("ipt-update-interval-sec", "60"),
                ("forceNamespaced", "false"),
                ("MICNamespace", "default"),
                ("http-probe-port", "8080"),
                ("retry-attempts-for-created", "16"),
                ("retry-attempts-for-assigned", "4"),
                ("find-identity-retry-interval", "5"),
                ("enableProfile", "false"),
                ("enableScaleFeatures", "true"),
                ("block-instance-metadata", "false"),
                ("metadata-header-required", "true"),
                ("prometheus-port", "9090"),
                ("operation-mode", "standard"),
                ("allow-network-plugin-kubenet", "false"),
                ("kubelet-config", "/etc/default/kubelet"),
                ("set-retry-after-header", "false"),
                ("enable-conntrack-deletion", "false"),
            ],
            Self::Mic => &[
                ("forceNamespaced", "false"),
                ("syncRetryDuration", "1h0m0s"),
                ("leader-election-namespace", "default"),
                ("leader-election-name", "aad-pod-identity-mic"),
                ("leader-election-duration", "15s"),
                ("http-probe-port", "8080"),
                ("prometheus-port", "8888"),
                ("enableProfile", "false"),
                ("enableScaleFeatures", "false"),
                ("createDeleteBatch", "20"),
                ("clientQps", "5"),
                ("immutable-user-msis", ""),
                ("config-map-name", "aad-pod-identity-config"),
                ("type-upgrade-status-key", "type-upgrade-status"),
                ("enable-type-upgrade", "true"),
                ("update-user-msi-max-retry", "2"),
                ("update-user-msi-retry-interval", "1s"),
                ("identity-assignment-reconcile-interval", "3m0s"),
            ],
        }
    }

    fn default_of(self, flag: &str) -> Option<&'static str> {
        self.defaults()
            .iter()
            .find(|(name, _)| *name == flag)
            .map(|(_, value)| *value)
    }

    fn is_bool_flag(self, flag: &str) -> bool {
        matches!(self.default_of(flag), Some("true" | "false"))
    }
}

/// Who installed a workload, from the marks each installer leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// AKS's pod-identity add-on: reconciled by AKS, labelled `kubernetes.azure.com/managedby:
    /// aks` (and the add-on manager's `addonmanager.kubernetes.io/mode`).
    AksAddon,
    /// Upstream's Helm chart: `app.kubernetes.io/managed-by: Helm`, `helm.sh/chart:
    /// aad-pod-identity-<version>`, the release in `meta.helm.sh/release-name`.
    HelmChart {
        chart: Option<String>,
        release: Option<String>,
    },
    /// Upstream's manifests (`deploy/infra/*.yaml`): `k8s-app: aad-pod-id`.
    Manifests,
    /// podid: `app.kubernetes.io/managed-by: podid`.
    Podid,
    /// None of those marks.
    Other,
}

impl Source {
    /// The name reports carry: `aks-addon`, `helm-chart`, `manifests`, `podid-installed`, `other`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AksAddon => "aks-addon",
            Self::HelmChart { .. } => "helm-chart",
            Self::Manifests => "manifests",
            Self::Podid => "podid-installed",
            Self::Other => "other",
        }
    }

    /// A phrase for the run header: `helm chart aad-pod-identity-4.1.18 (release pod-identity)`.
    pub fn describe(&self) -> String {
        match self {
            Self::AksAddon => "AKS add-on".into(),
            Self::HelmChart { chart, release } => {
                let mut text = "helm chart".to_string();
                if let Some(chart) = chart {
                    text.push(' ');
                    text.push_str(chart);
                }
                if let Some(release) = release {
                    text.push_str(&format!(" (release {release})"));
                }
                text
            }
            Self::Manifests => "upstream manifests".into(),
            Self::Podid => "installed by podid".into(),
            Self::Other => "unknown installer".into(),
        }
    }

    /// Reads the marks off the workload's metadata, then its pod template's.
    fn of(metadata: &ObjectMeta, template: Option<&ObjectMeta>) -> Self {
        let label = |key: &str| -> Option<&str> {
            [Some(metadata), template]
                .into_iter()
                .flatten()
                .find_map(|m| m.labels.as_ref()?.get(key).map(String::as_str))
        };
        let annotation = |key: &str| -> Option<&str> {
            metadata.annotations.as_ref()?.get(key).map(String::as_str)
        };
        let managed_by = label("app.kubernetes.io/managed-by");
        if managed_by == Some(MANAGED_BY_LABEL.1) {
            return Self::Podid;
        }
        if label("kubernetes.azure.com/managedby") == Some("aks")
            || label("addonmanager.kubernetes.io/mode").is_some()
        {
            return Self::AksAddon;
        }
        let chart = label("helm.sh/chart");
        let release = annotation("meta.helm.sh/release-name");
        if managed_by.is_some_and(|m| m.eq_ignore_ascii_case("helm"))
            || chart.is_some()
            || release.is_some()
        {
            return Self::HelmChart {
                chart: chart.map(str::to_string),
                release: release
                    .or_else(|| label("app.kubernetes.io/instance"))
                    .map(str::to_string),
            };
        }
        if label("k8s-app") == Some("aad-pod-id") {
            return Self::Manifests;
        }
        Self::Other
    }
}

/// A container image reference, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// As written in the spec.
    pub reference: String,
    /// Registry and path, without tag or digest (`mcr.microsoft.com/oss/azure/aad-pod-identity/nmi`).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:…`.
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(reference: &str) -> Self {
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_string())),
            None => (reference, None),
        };
        // A ':' after the last '/' is a tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match rest[last_slash..].rfind(':') {
            Some(at) => (
                &rest[..last_slash + at],
                Some(rest[last_slash + at + 1..].to_string()),
            ),
            None => (rest, None),
        };
        Self {
            reference: reference.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        }
    }

    /// The last path segment of the repository (`nmi`).
    pub fn name(&self) -> &str {
        self.repository.rsplit('/').next().unwrap_or_default()
    }

    /// Whether this is upstream's image of `component` (`…/aad-pod-identity/nmi`), from
    /// whichever registry.
    fn is_upstream(&self, component: Component) -> bool {
        let mut segments = self.repository.rsplit('/');
        segments.next() == Some(component.image_name())
            && segments.next() == Some("aad-pod-identity")
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reference)
    }
}

/// A program's command-line flags, read the way Go's `flag`/`pflag` read them: `--name=value`,
/// `-name=value`, `--name value`, and a bare boolean `--name`; a later repetition wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    component: Component,
    /// The arguments as written (after the program's path, if `command` holds it).
    args: Vec<String>,
    /// `(name, value)` in order; a bare flag's value is `None`.
    parsed: Vec<(String, Option<String>)>,
    /// Both programs also turn on `--forceNamespaced` when `FORCENAMESPACED` is `true`.
    force_namespaced_env: bool,
}

impl Flags {
    /// Reads `args` of `component`; `env_force_namespaced` is the container's literal
    /// `FORCENAMESPACED` value.
    pub fn parse(
        component: Component,
        args: &[String],
        env_force_namespaced: Option<&str>,
    ) -> Self {
        let mut parsed = Vec::new();
        let mut at = 0;
        while at < args.len() {
            let arg = &args[at];
            at += 1;
            if arg == "--" {
                break;
            }
            let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                continue;
            };
            if body.is_empty() {
                continue;
            }
            match body.split_once('=') {
                Some((name, value)) => parsed.push((name.to_string(), Some(value.to_string()))),
                None => {
                    let takes_value = !component.is_bool_flag(body)
                        && args.get(at).is_some_and(|next| !next.starts_with('-'));
                    let value = takes_value.then(|| {
                        at += 1;
                        args[at - 1].clone()
                    });
                    parsed.push((body.to_string(), value));
                }
            }
        }
        Self {
            component,
            args: args.to_vec(),
            parsed,
            force_namespaced_env: env_force_namespaced == Some("true"),
        }
    }

    /// The arguments as written.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The value passed for `name` (the last one), a bare flag's as `"true"`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.parsed
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref().unwrap_or("true"))
    }

    /// The value the program runs with: the passed one, else (for `forceNamespaced`) the
    /// environment's, else the pinned release's default. `None` when neither is known.
    pub fn effective(&self, name: &str) -> Option<String> {
        if let Some(value) = self.get(name) {
            return Some(value.to_string());
        }
        if name == "forceNamespaced" && self.force_namespaced_env {
            return Some("true".into());
        }
        self.component.default_of(name).map(str::to_string)
    }

    /// The operation mode (NMI's `--operation-mode`; MIC has none and runs in standard mode).
    pub fn mode(&self) -> Mode {
        match (self.component, self.effective("operation-mode").as_deref()) {
            (Component::Nmi, Some("managed")) => Mode::Managed,
            _ => Mode::Standard,
        }
    }

    /// What differs between `wanted` (flags as a scenario writes them) and what runs.
    pub fn differences(&self, wanted: &[String]) -> Vec<FlagDifference> {
        let wanted = Flags::parse(self.component, wanted, None);
        let mut seen = std::collections::BTreeSet::new();
        let mut differences = Vec::new();
        for (name, _) in wanted.parsed.iter().rev() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let want = wanted.get(name).unwrap_or("true").to_string();
            let actual = self.effective(name);
            let same = actual
                .as_deref()
                .is_some_and(|a| same_value(self.component.is_bool_flag(name), a, &want));
            if !same {
                differences.push(FlagDifference {
                    flag: name.clone(),
                    wanted: want,
                    actual,
                });
            }
        }
        differences.reverse();
        differences
    }
}

/// Whether two flag values mean the same: equal text, equal booleans (Go's spellings) for a
/// boolean flag, or equal Go durations (`3600s` and `1h0m0s`).
fn same_value(boolean: bool, a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if boolean && let (Some(x), Some(y)) = (go_bool(a), go_bool(b)) {
        return x == y;
    }
    matches!((go_duration_ns(a), go_duration_ns(b)), (Some(x), Some(y)) if x == y)
}

/// Go's `strconv.ParseBool`.
fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A Go duration (`1h30m`, `1.5s`, `300ms`) in nanoseconds; plain numbers are not durations.
fn go_duration_ns(text: &str) -> Option<i128> {
    const UNITS: &[(&str, f64)] = &[
        ("ns", 1.0),
        ("us", 1e3),
        ("µs", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
    ];
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut total = 0.0;
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, scale) = UNITS
            .iter()
            .filter(|(u, _)| rest.starts_with(u))
            .max_by_key(|(u, _)| u.len())?;
        rest = &rest[unit.len()..];
        total += number * scale;
        any = true;
    }
    any.then_some(total.round() as i128)
}

/// A flag whose value is not what a scenario needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagDifference {
    pub flag: String,
    pub wanted: String,
    /// What runs (`None`: not passed, default unknown).
    pub actual: Option<String>,
}

impl std::fmt::Display for FlagDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.actual {
            Some(actual) => write!(
                f,
                "--{}={} (runs with --{}={actual})",
                self.flag, self.wanted, self.flag
            ),
            None => write!(f, "--{}={} (not set)", self.flag, self.wanted),
        }
    }
}

/// One NMI DaemonSet or MIC Deployment found in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub component: Component,
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// The container running the program.
    pub container: String,
    pub source: Source,
    pub image: ImageRef,
    pub flags: Flags,
    /// Pods wanted: the DaemonSet's scheduled count, the Deployment's replicas.
    pub desired: u32,
    /// Pods ready.
    pub ready: u32,
    /// `spec.selector.matchLabels`: how its pods are found.
    pub selector: BTreeMap<String, String>,
}

impl Found {
    /// NMI's mode (MIC's is always standard).
    pub fn mode(&self) -> Mode {
        self.flags.mode()
    }

    /// The workload, to find its pods and logs.
    pub fn workload(&self) -> WorkloadRef {
        WorkloadRef {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            selector: self.selector.clone(),
        }
    }

    /// `helm chart aad-pod-identity-4.1.18 (release x) in kube-system, standard mode, image
    /// mcr.microsoft.com/oss/azure/aad-pod-identity/nmi:v1.8.17, 3/3 ready`.
    pub fn describe(&self) -> String {
        let mode = match self.component {
            Component::Nmi => format!(", {} mode", self.mode().as_str()),
            Component::Mic => String::new(),
        };
        format!(
            "{} in {} ({} {}){mode}, image {}, {}/{} ready",
            self.source.describe(),
            self.namespace,
            self.kind,
            self.name,
            self.image,
            self.ready,
            self.desired
        )
    }

    /// Recognises `component` in a pod template: upstream's image, or a container of
    /// upstream's name passing one of the program's own flags.
    fn in_template(
        component: Component,
        template: &PodTemplateSpec,
    ) -> Option<(String, ImageRef, Flags)> {
        let spec = template.spec.as_ref()?;
        spec.containers.iter().find_map(|container| {
            let image = ImageRef::parse(container.image.as_deref().unwrap_or_default());
            let args = container_args(container);
            let env = container.env.iter().flatten();
            let force_namespaced = env
                .filter(|e| e.name == "FORCENAMESPACED")
                .find_map(|e| e.value.clone());
            let flags = Flags::parse(component, &args, force_namespaced.as_deref());
            let by_image = image.is_upstream(component);
            let by_name = container.name == component.as_str()
                && component
                    .marker_flags()
                    .iter()
                    .any(|f| flags.get(f).is_some());
            (by_image || by_name).then(|| (container.name.clone(), image, flags))
        })
    }
}

/// The container's flags: `args`, after any flags `command` passes past the program's path.
fn container_args(container: &Container) -> Vec<String> {
    let command = container
        .command
        .iter()
        .flatten()
        .skip_while(|c| !c.starts_with('-'))
        .cloned();
    command
        .chain(container.args.iter().flatten().cloned())
        .collect()
}

fn count(n: Option<i32>) -> u32 {
    n.map_or(0, |n| u32::try_from(n).unwrap_or(0))
}

fn match_labels(selector: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    selector.cloned().unwrap_or_default()
}

/// Reading the cluster's workloads failed.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {cause}")]
pub struct DiscoveryError {
    pub action: String,
    pub cause: String,
}

/// NMI and MIC as they run in one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Discovery {
    /// NMI DaemonSets, by namespace and name (more than one is a conflict: both would
    /// redirect the nodes' metadata traffic).
    pub nmi: Vec<Found>,
    /// MIC Deployments, by namespace and name.
    pub mic: Vec<Found>,
}

/// Lists DaemonSets and Deployments in all namespaces and picks out NMI and MIC.
pub async fn discover(client: &kube::Client) -> Result<Discovery, DiscoveryError> {
    let failed = |what: &str, e: kube::Error| DiscoveryError {
        action: format!("listing {what} in all namespaces to find NMI and MIC"),
        cause: describe_kube_error(&e),
    };
    let daemon_sets = Api::<DaemonSet>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| failed("daemonsets.apps", e))?;
    let deployments = Api::<Deployment>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| failed("deployments.apps", e))?;
    Ok(Discovery::from_workloads(
        &daemon_sets.items,
        &deployments.items,
    ))
}

impl Discovery {
    /// Nothing found.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.nmi.is_empty() && self.mic.is_empty()
    }

    /// Picks NMI out of `daemon_sets` and MIC out of `deployments`.
    pub fn from_workloads(daemon_sets: &[DaemonSet], deployments: &[Deployment]) -> Self {
        let mut nmi: Vec<Found> = daemon_sets
            .iter()
            .filter_map(|ds| {
                let spec = ds.spec.as_ref()?;
                let (container, image, flags) = Found::in_template(Component::Nmi, &spec.template)?;
                let status = ds.status.as_ref();
                Some(Found {
                    component: Component::Nmi,
                    kind: WorkloadKind::DaemonSet,
                    namespace: ds.metadata.namespace.clone().unwrap_or_default(),
                    name: ds.metadata.name.clone().unwrap_or_default(),
                    container,
                    source: Source::of(&ds.metadata, spec.template.metadata.as_ref()),
                    image,
                    flags,
                    desired: count(status.map(|s| s.desired_number_scheduled)),
                    ready: count(status.map(|s| s.number_ready)),
                    selector: match_labels(spec.selector.match_labels.as_ref()),
                })
            })
            .collect();
        let mut mic: Vec<Found> = deployments
            .iter()
            .filter_map(|d| {
                let spec = d.spec.as_ref()?;
                let (container, image, flags) = Found::in_template(Component::Mic, &spec.template)?;
                Some(Found {
                    component: Component::Mic,
                    kind: WorkloadKind::Deployment,
                    namespace: d.metadata.namespace.clone().unwrap_or_default(),
                    name: d.metadata.name.clone().unwrap_or_default(),
                    container,
                    source: Source::of(&d.metadata, spec.template.metadata.as_ref()),
                    image,
                    flags,
                    desired: count(Some(spec.replicas.unwrap_or(1))),
                    ready: count(d.status.as_ref().and_then(|s| s.ready_replicas)),
                    selector: match_labels(spec.selector.match_labels.as_ref()),
                })
            })
            .collect();
        let by_place = |f: &Found| (f.namespace.clone(), f.name.clone());
        nmi.sort_by_key(by_place);
        mic.sort_by_key(by_place);
        Self { nmi, mic }
    }

    /// The NMI (the first, when several run).
    pub fn nmi(&self) -> Option<&Found> {
        self.nmi.first()
    }

    /// The MIC (the first, when several run).
    pub fn mic(&self) -> Option<&Found> {
        self.mic.first()
    }

    /// The mode NMI runs in; `None` without NMI.
    pub fn mode(&self) -> Option<Mode> {
        self.nmi().map(Found::mode)
    }

    /// NMI's flags, to compare with what a scenario needs.
    pub fn nmi_flags(&self) -> Option<&Flags> {
        self.nmi().map(|f| &f.flags)
    }

    /// MIC's flags, to compare with what a scenario needs.
    pub fn mic_flags(&self) -> Option<&Flags> {
        self.mic().map(|f| &f.flags)
    }

    /// What makes the installation unusable as it is: several NMIs, a standard-mode NMI
    /// without MIC, MIC beside a managed-mode NMI, MIC without NMI.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let place = |f: &Found| format!("{}/{}", f.namespace, f.name);
        if self.nmi.len() > 1 {
            problems.push(format!(
                "{} NMI DaemonSets run ({}); they would fight over the nodes' metadata traffic",
                self.nmi.len(),
                self.nmi.iter().map(place).collect::<Vec<_>>().join(", ")
            ));
        }
        if self.mic.len() > 1 {
            problems.push(format!(
                "{} MIC Deployments run ({}); each would assign identities",
                self.mic.len(),
                self.mic.iter().map(place).collect::<Vec<_>>().join(", ")
            ));
        }
        match (self.mode(), self.mic()) {
            (Some(Mode::Standard), None) => {
                problems.push("NMI runs in standard mode but no MIC assigns identities".to_string())
            }
            (Some(Mode::Managed), Some(mic)) => problems.push(format!(
                "MIC {} runs beside an NMI in managed mode",
                place(mic)
            )),
            (None, Some(mic)) => problems.push(format!("MIC {} runs without NMI", place(mic))),
            _ => {}
        }
        problems
    }

    /// Lines for the run header and report: each NMI and MIC, and their flags.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut lines = Vec::new();
        for (component, found) in [(Component::Nmi, &self.nmi), (Component::Mic, &self.mic)] {
            let key = component.as_str();
            if found.is_empty() {
                let none = match (component, self.mode()) {
                    (Component::Mic, Some(Mode::Managed)) => "none (NMI runs in managed mode)",
                    _ => "none found",
                };
                lines.push((key.to_string(), none.to_string()));
            }
            for (i, f) in found.iter().enumerate() {
                let key = if i == 0 {
                    key.to_string()
                } else {
                    format!("{key} #{}", i + 1)
                };
                let flags = match f.flags.args() {
                    [] => "(none)".to_string(),
                    args => args.join(" "),
                };
                lines.push((key.clone(), f.describe()));
                lines.push((format!("{key} flags"), flags));
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn image_references_split_into_repository_tag_and_digest() {
        let nmi = ImageRef::parse("mcr.microsoft.com/oss/azure/aad-pod-identity/nmi:v1.8.17");
        assert_eq!(
            nmi.repository,
            "mcr.microsoft.com/oss/azure/aad-pod-identity/nmi"
        );
        assert_eq!(nmi.tag.as_deref(), Some("v1.8.17"));
        assert_eq!(nmi.name(), "nmi");
        assert!(nmi.is_upstream(Component::Nmi));
        assert!(!nmi.is_upstream(Component::Mic));
        let ported = ImageRef::parse("registry.local:5000/aad-pod-identity/mic@sha256:abc");
        assert_eq!(
            ported.repository,
            "registry.local:5000/aad-pod-identity/mic"
        );
        assert_eq!(ported.tag, None);
        assert_eq!(ported.digest.as_deref(), Some("sha256:abc"));
        assert!(ported.is_upstream(Component::Mic));
        let bare = ImageRef::parse("nmi");
        assert_eq!(
            (bare.repository.as_str(), bare.tag.as_deref()),
            ("nmi", None)
        );
        assert!(!bare.is_upstream(Component::Nmi));
    }

    #[test]
    fn flags_read_like_go_reads_them() {
        let flags = Flags::parse(
            Component::Nmi,
            &args(&[
                "--node=$(NODE_NAME)",
                "--forceNamespaced",
                "--http-probe-port",
                "8085",
                "-v=2",
                "--operation-mode=standard",
                "--operation-mode=managed",
            ]),
            None,
        );
        assert_eq!(flags.get("node"), Some("$(NODE_NAME)"));
        assert_eq!(flags.get("forceNamespaced"), Some("true"));
        assert_eq!(flags.get("http-probe-port"), Some("8085"));
        assert_eq!(flags.get("v"), Some("2"));
        assert_eq!(flags.mode(), Mode::Managed);
        assert_eq!(
            flags.effective("metadata-header-required").as_deref(),
            Some("true")
        );
        assert_eq!(flags.effective("no-such-flag"), None);
    }

    #[test]
    fn forcenamespaced_comes_from_the_environment_too() {
        let flags = Flags::parse(Component::Mic, &[], Some("true"));
        assert_eq!(flags.effective("forceNamespaced").as_deref(), Some("true"));
        assert_eq!(flags.mode(), Mode::Standard);
        let off = Flags::parse(Component::Mic, &[], Some("false"));
        assert_eq!(off.effective("forceNamespaced").as_deref(), Some("false"));
    }

    #[test]
    fn differences_compare_effective_values() {
        let flags = Flags::parse(
            Component::Mic,
            &args(&["--syncRetryDuration=3600s", "--forceNamespaced=1"]),
            None,
        );
        assert!(
            flags
                .differences(&args(&[
                    "--syncRetryDuration=1h0m0s",
                    "--forceNamespaced",
                    "--createDeleteBatch=20",
                ]))
                .is_empty()
        );
        let differences = flags.differences(&args(&[
            "--syncRetryDuration=30s",
            "--immutable-user-msis=abc",
            "--custom-user-agent=x",
        ]));
        let text: Vec<String> = differences.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "--syncRetryDuration=30s (runs with --syncRetryDuration=3600s)",
                "--immutable-user-msis=abc (runs with --immutable-user-msis=)",
                "--custom-user-agent=x (not set)",
            ]
        );
    }

    #[test]
    fn go_durations_are_compared_by_length() {
        assert_eq!(go_duration_ns("1h0m0s"), go_duration_ns("3600s"));
        assert_eq!(go_duration_ns("1.5s"), go_duration_ns("1500ms"));
        assert_eq!(go_duration_ns("20"), None);
        assert_eq!(go_duration_ns("abc"), None);
        assert!(!same_value(false, "1", "true"));
        assert!(same_value(true, "1", "true"));
    }

    fn daemon_set(value: serde_json::Value) -> DaemonSet {
        serde_json::from_value(value).expect("a DaemonSet")
    }

    fn nmi_daemon_set(
        labels: serde_json::Value,
        image: &str,
        container: &str,
        args: &[&str],
    ) -> DaemonSet {
        daemon_set(json!({
            "metadata": {"name": "nmi", "namespace": "kube-system", "labels": labels},
            "spec": {
                "selector": {"matchLabels": {"component": "nmi"}},
                "template": {
                    "metadata": {"labels": {"component": "nmi"}},
                    "spec": {"containers": [
                        {"name": "sidecar", "image": "busybox"},
                        {"name": container, "image": image, "args": args}
                    ]}
                }
            },
            "status": {"desiredNumberScheduled": 3, "numberReady": 2,
                       "currentNumberScheduled": 3, "numberMisscheduled": 0}
        }))
    }

    #[test]
    fn nmi_is_found_by_image_or_by_name_and_flags() {
        let upstream = nmi_daemon_set(
            json!({"kubernetes.azure.com/managedby": "aks"}),
            "mcr.microsoft.com/oss/azure/aad-pod-identity/nmi:v1.8.17",
            "main",
            &["--operation-mode=managed"],
        );
        let mirrored = nmi_daemon_set(
            json!({}),
            "mirror.test/team/nmi-build:1",
            "nmi",
            &["--node=$(N)"],
        );
        let unrelated = nmi_daemon_set(json!({}), "mirror.test/team/nmi:1", "nmi", &["--verbose"]);
        let found = Discovery::from_workloads(&[upstream], &[]);
        let nmi = found.nmi().unwrap();
        assert_eq!(nmi.container, "main");
        assert_eq!(nmi.source, Source::AksAddon);
        assert_eq!((nmi.desired, nmi.ready), (3, 2));
        assert_eq!(found.mode(), Some(Mode::Managed));
        assert_eq!(
            found.environment(),
            [
                (
                    "nmi".to_string(),
                    "AKS add-on in kube-system (DaemonSet nmi), managed mode, image mcr.microsoft.com/oss/azure/aad-pod-identity/nmi:v1.8.17, 2/3 ready".to_string()
                ),
                ("nmi flags".to_string(), "--operation-mode=managed".to_string()),
                ("mic".to_string(), "none (NMI runs in managed mode)".to_string()),
            ]
        );
        assert!(found.problems().is_empty());
        assert_eq!(Discovery::from_workloads(&[mirrored], &[]).nmi.len(), 1);
        assert!(Discovery::from_workloads(&[unrelated], &[]).is_empty());
    }

    #[test]
    fn sources_are_told_apart_by_their_marks() {
        let meta = |labels: serde_json::Value, annotations: serde_json::Value| -> ObjectMeta {
            serde_json::from_value(json!({"labels": labels, "annotations": annotations})).unwrap()
        };
        assert_eq!(
            Source::of(
                &meta(
                    json!({"app.kubernetes.io/managed-by": "podid", "k8s-app": "aad-pod-id"}),
                    json!({})
                ),
                None
            ),
            Source::Podid
        );
        assert_eq!(
            Source::of(
                &meta(
                    json!({"app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": "aad-pod-identity-4.1.18",
                           "app.kubernetes.io/instance": "pi"}),
                    json!({"meta.helm.sh/release-name": "pod-identity"})
                ),
                None
            ),
            Source::HelmChart {
                chart: Some("aad-pod-identity-4.1.18".into()),
                release: Some("pod-identity".into())
            }
        );
        assert_eq!(
            Source::of(&meta(json!({"k8s-app": "aad-pod-id"}), json!({})), None),
            Source::Manifests
        );
        assert_eq!(
            Source::of(
                &meta(json!({}), json!({})),
                Some(&meta(
                    json!({"addonmanager.kubernetes.io/mode": "Reconcile"}),
                    json!({})
                ))
            ),
            Source::AksAddon
        );
        assert_eq!(Source::of(&ObjectMeta::default(), None), Source::Other);
    }

    #[test]
    fn nothing_found_says_so() {
        let none = Discovery::none();
        assert!(none.is_empty());
        assert_eq!(none.mode(), None);
        assert_eq!(
            none.environment(),
            [
                ("nmi".to_string(), "none found".to_string()),
                ("mic".to_string(), "none found".to_string())
            ]
        );
    }
}
