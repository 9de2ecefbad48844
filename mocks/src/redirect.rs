//! `redirect-imds`: makes a node's own requests to 169.254.169.254:80 reach that node's mock IMDS,
//! for clusters that are not on Azure. Runs in a hostNetwork pod with NET_ADMIN on each node and
//! inserts one iptables DNAT rule in `nat OUTPUT`, as NMI shells out to iptables for its own rules.
//!
//! It first makes sure no metadata service answers there: the mock cloud must never shadow a
//! real one. Then it proves the redirect works with one request the harness finds in the mock's
//! request log under this node.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use podid_wait::{Check, Poll};

use crate::error::error_chain;

/// Comment every rule of ours carries (`-m comment --comment …`); how stale rules are found.
pub const RULE_COMMENT: &str = "podid-imds-redirect";
/// Where the metadata service answers on Azure.
pub const METADATA_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(169, 254, 169, 254), 80);
/// Touched once the redirect is proven (the DaemonSet's readiness probe looks for it).
pub const READY_FILE: &str = "/tmp/podid-redirect-ready";
/// Where Kubernetes reads a container's last words from.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// `api-version` of the proof request.
pub const PROOF_API_VERSION: &str = "2021-02-01";
/// Query parameter carrying the proof nonce.
pub const PROOF_PARAM: &str = "podid-proof";
/// Exit code when a metadata service already answers on the node.
pub const EXIT_REFUSED: u8 = 3;
/// Exit code when requests do not reach the mock IMDS through the rule.
pub const EXIT_UNPROVEN: u8 = 4;

/// How long the safety check waits for an answer: a real IMDS answers at once.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the proof may take (the mock IMDS may still be starting behind the rule).
const PROOF_POLL: Poll = Poll::every(Duration::from_secs(1), Duration::from_secs(15));

/// What `redirect-imds` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct RedirectArgs {
    /// This node's name, as the mock's request log reports its IMDS requests.
    #[arg(long, env = "NODE_NAME", required_unless_present = "remove")]
    pub node: Option<String>,
    /// This node's mock IMDS, `IP:PORT`: where requests to 169.254.169.254:80 go.
    #[arg(long, value_name = "IP:PORT", required_unless_present = "remove")]
    pub to: Option<SocketAddrV4>,
    /// Nonce sent with the proof request (`podid-proof=NONCE`), to find it in the request log.
    #[arg(long, value_name = "NONCE", required_unless_present = "remove")]
    pub proof: Option<String>,
    /// Only remove this program's rules, then exit.
    #[arg(long)]
    pub remove: bool,
    /// The metadata address to check and redirect.
    #[arg(long, hide = true, default_value_t = METADATA_ADDR)]
    pub metadata_addr: SocketAddrV4,
}

/// Why the redirect could not be set up or removed.
#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    /// A metadata service answers on this node: a real cloud's, which the mock must not shadow.
    #[error(
        "refusing: a metadata service answers at {addr} on node {node} (HTTP {status}); the mock cloud must not run on a node that has a real one"
    )]
    Refused {
        /// The metadata IP.
        addr: Ipv4Addr,
        /// This node.
        node: String,
        /// The status it answered with.
        status: u16,
    },
    /// Requests through the rule got no answer.
    #[error(
        "no proof: requests to {metadata} on node {node} do not reach the mock IMDS at {to}: {last}"
    )]
    Unproven {
        /// The metadata address.
        metadata: SocketAddrV4,
        /// This node.
        node: String,
        /// The mock IMDS.
        to: SocketAddrV4,
        /// The last failure seen.
        last: String,
    },
    /// `iptables` could not be started.
    #[error("running `iptables {args}`: {source}")]
    IptablesSpawn {
        /// Its arguments.
        args: String,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
    /// `iptables` failed.
    #[error("`iptables {args}` failed ({status}): {stderr}")]
    Iptables {
        /// Its arguments.
        args: String,
        /// How it exited.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// A required argument is missing (`--node`, `--to` or `--proof` without `--remove`).
    #[error("--{0} is required unless --remove is given")]
    Missing(&'static str),
    /// Building the HTTP client failed.
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Writing or removing a file failed.
    #[error("{what} {path}: {source}")]
    File {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("listening for SIGTERM: {0}")]
    Signal(#[source] std::io::Error),
}

impl RedirectError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused { .. } => EXIT_REFUSED,
            Self::Unproven { .. } => EXIT_UNPROVEN,
            _ => 1,
        }
    }
}

/// Runs `iptables`; the real one shells out, tests substitute their own.
pub trait Firewall {
    /// Runs `iptables ARGS` and returns its standard output.
    fn iptables(&self, args: &[String]) -> Result<String, RedirectError>;
}

/// The `iptables` binary on `PATH`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Iptables;

impl Firewall for Iptables {
    fn iptables(&self, args: &[String]) -> Result<String, RedirectError> {
        let shown = args.join(" ");
        let out = std::process::Command::new("iptables")
            .args(args)
            .output()
            .map_err(|source| RedirectError::IptablesSpawn {
                args: shown.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(RedirectError::Iptables {
                args: shown,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_string()).collect()
}

/// `iptables` arguments listing the `nat OUTPUT` rules (`-S` format).
pub fn list_args() -> Vec<String> {
    strings(&["-w", "-t", "nat", "-S", "OUTPUT"])
}

/// `iptables` arguments inserting our rule first in `nat OUTPUT`: TCP to `metadata` goes to `to`.
pub fn insert_args(metadata: SocketAddrV4, to: SocketAddrV4) -> Vec<String> {
    let mut args = strings(&["-w", "-t", "nat", "-I", "OUTPUT", "1"]);
    args.extend(rule_spec(metadata, to));
    args
}

/// The match and target of our rule, as `-I` and `-D` take them.
fn rule_spec(metadata: SocketAddrV4, to: SocketAddrV4) -> Vec<String> {
    vec![
        "-d".into(),
        format!("{}/32", metadata.ip()),
        "-p".into(),
        "tcp".into(),
        "--dport".into(),
        metadata.port().to_string(),
        "-m".into(),
        "comment".into(),
        "--comment".into(),
        RULE_COMMENT.into(),
        "-j".into(),
        "DNAT".into(),
        "--to-destination".into(),
        to.to_string(),
    ]
}

/// `iptables` arguments deleting each of our rules in a `-S` listing (others are left alone).
pub fn delete_args(listing: &str) -> Vec<Vec<String>> {
    listing
        .lines()
        .map(split_rule)
        .filter(|words| {
            words.first().is_some_and(|w| w == "-A")
                && words
                    .windows(2)
                    .any(|pair| pair[0] == "--comment" && pair[1] == RULE_COMMENT)
        })
        .map(|words| {
            let mut args = strings(&["-w", "-t", "nat", "-D"]);
            args.extend(words.into_iter().skip(1));
            args
        })
        .collect()
}

/// Splits an `iptables -S` line into words as a shell would (double quotes group, `\"` escapes),
/// so the words can be passed back as arguments.
fn split_rule(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Removes every rule of ours from `nat OUTPUT`; returns how many there were.
pub fn remove_rules(firewall: &impl Firewall) -> Result<usize, RedirectError> {
    let listing = firewall.iptables(&list_args())?;
    let deletions = delete_args(&listing);
    for args in &deletions {
        firewall.iptables(args)?;
    }
    Ok(deletions.len())
}

/// What answered a plain request to the metadata address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataProbe {
    /// Something answered HTTP with this status: a metadata service is there.
    Answered(u16),
    /// No HTTP answer (refused, unreachable, timed out): no metadata service.
    Absent(String),
}

/// Sends `GET /metadata/instance` without the `Metadata` header to `addr` (a real IMDS answers
/// 400 "Required metadata header not specified") and says whether anything answered HTTP.
pub async fn probe_metadata(
    http: &reqwest::Client,
    addr: SocketAddrV4,
    timeout: Duration,
) -> MetadataProbe {
    match http
        .get(format!("http://{addr}/metadata/instance"))
        .timeout(timeout)
        .send()
        .await
    {
        Ok(resp) => MetadataProbe::Answered(resp.status().as_u16()),
        Err(e) => MetadataProbe::Absent(error_chain(&e)),
    }
}

/// Sends the proof request (`Metadata: true`, `podid-proof=NONCE`) to `addr` until it gets an
/// HTTP answer (its status is returned) or `poll` runs out (the last failure is returned).
pub async fn prove(
    http: &reqwest::Client,
    addr: SocketAddrV4,
    nonce: &str,
    poll: Poll,
    timeout: Duration,
) -> Result<u16, String> {
    let url = format!("http://{addr}/metadata/instance");
    podid_wait::until(poll, || async {
        match http
            .get(&url)
            .query(&[("api-version", PROOF_API_VERSION), (PROOF_PARAM, nonce)])
            .header("Metadata", "true")
            .timeout(timeout)
            .send()
            .await
        {
            Ok(resp) => Check::Done(resp.status().as_u16()),
            Err(e) => Check::Pending(error_chain(&e)),
        }
    })
    .await
    .map_err(|e| e.to_string())
}

/// Everything one redirect needs; `from_args` fills in the fixed paths and timings.
#[derive(Debug, Clone)]
pub struct RedirectSettings {
    /// This node's name.
    pub node: String,
    /// The metadata address to check and redirect.
    pub metadata: SocketAddrV4,
    /// This node's mock IMDS.
    pub to: SocketAddrV4,
    /// Nonce of the proof request.
    pub proof: String,
    /// File touched once the redirect is proven.
    pub ready_file: PathBuf,
    /// How long the safety check and each proof request wait for an answer.
    pub probe_timeout: Duration,
    /// How often and how long the proof is tried.
    pub proof_poll: Poll,
}

impl RedirectSettings {
    /// Settings from the command line (`--node`, `--to` and `--proof` required).
    pub fn from_args(args: &RedirectArgs) -> Result<Self, RedirectError> {
        Ok(Self {
            node: args.node.clone().ok_or(RedirectError::Missing("node"))?,
            metadata: args.metadata_addr,
            to: args.to.ok_or(RedirectError::Missing("to"))?,
            proof: args.proof.clone().ok_or(RedirectError::Missing("proof"))?,
            ready_file: PathBuf::from(READY_FILE),
            probe_timeout: PROBE_TIMEOUT,
            proof_poll: PROOF_POLL,
        })
    }
}

/// One node's redirect: set up with `install`, taken down with `uninstall`.
#[derive(Debug)]
pub struct Redirect<F> {
    settings: RedirectSettings,
    firewall: F,
    http: reqwest::Client,
}

impl<F: Firewall> Redirect<F> {
    /// A redirect driving `firewall`; nothing changes until `install`.
    pub fn new(settings: RedirectSettings, firewall: F) -> Result<Self, RedirectError> {
        // No proxy: the metadata address must be reached directly, whatever the environment says.
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(RedirectError::Client)?;
        Ok(Self {
            settings,
            firewall,
            http,
        })
    }

    /// Removes stale rules of ours, refuses if a metadata service answers, inserts the rule,
    /// proves it (removing it again if that fails) and touches the ready file.
    pub async fn install(&self) -> Result<(), RedirectError> {
        let s = &self.settings;
        remove_file(&s.ready_file)?;
        remove_rules(&self.firewall)?;
        if let MetadataProbe::Answered(status) =
            probe_metadata(&self.http, s.metadata, s.probe_timeout).await
        {
            return Err(RedirectError::Refused {
                addr: *s.metadata.ip(),
                node: s.node.clone(),
                status,
            });
        }
        self.firewall.iptables(&insert_args(s.metadata, s.to))?;
        let proven = prove(
            &self.http,
            s.metadata,
            &s.proof,
            s.proof_poll,
            s.probe_timeout,
        )
        .await;
        if let Err(last) = proven {
            remove_rules(&self.firewall)?;
            return Err(RedirectError::Unproven {
                metadata: s.metadata,
                node: s.node.clone(),
                to: s.to,
                last,
            });
        }
        std::fs::write(&s.ready_file, b"").map_err(|source| RedirectError::File {
            what: "writing",
            path: s.ready_file.clone(),
            source,
        })
    }

    /// Removes our rules and the ready file; returns how many rules there were.
    pub fn uninstall(&self) -> Result<usize, RedirectError> {
        remove_file(&self.settings.ready_file)?;
        remove_rules(&self.firewall)
    }

    /// `install`, print the one line saying so, wait for `shutdown`, `uninstall`.
    pub async fn serve_until(
        &self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RedirectError> {
        self.install().await?;
        let s = &self.settings;
        println!("redirecting {} on node {} to {}", s.metadata, s.node, s.to);
        shutdown.await;
        self.uninstall().map(|_| ())
    }
}

fn remove_file(path: &Path) -> Result<(), RedirectError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RedirectError::File {
            what: "removing",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Prints the failure as one line and, when `termination_log` exists, writes it there too.
pub fn report(error: &RedirectError, termination_log: &Path) {
    let line = error_chain(error);
    eprintln!("{line}");
    if !termination_log.exists() {
        return;
    }
    if let Err(e) = std::fs::write(termination_log, format!("{line}\n")) {
        eprintln!("writing {}: {e}", termination_log.display());
    }
}

/// The `redirect-imds` command: sets up the redirect and holds it until SIGTERM or SIGINT, or
/// with `--remove` only removes our rules.
pub async fn run(args: RedirectArgs) -> ExitCode {
    let outcome = if args.remove {
        remove_rules(&Iptables).map(|n| println!("removed {n} {RULE_COMMENT} rule(s)"))
    } else {
        redirect_until_signalled(&args).await
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e, Path::new(TERMINATION_LOG));
            ExitCode::from(e.exit_code())
        }
    }
}

async fn redirect_until_signalled(args: &RedirectArgs) -> Result<(), RedirectError> {
    use tokio::signal::unix::{SignalKind, signal};
    // Listen before changing anything, so a SIGTERM during setup still removes the rule.
    let mut term = signal(SignalKind::terminate()).map_err(RedirectError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RedirectError::Signal)?;
    let redirect = Redirect::new(RedirectSettings::from_args(args)?, Iptables)?;
    let shutdown = async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    redirect.serve_until(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const TO: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 244, 1, 7), 8079);

    #[test]
    fn the_rule_sends_metadata_traffic_to_the_mock_and_carries_our_comment() {
        assert_eq!(
            insert_args(METADATA_ADDR, TO).join(" "),
            "-w -t nat -I OUTPUT 1 -d 169.254.169.254/32 -p tcp --dport 80 \
             -m comment --comment podid-imds-redirect -j DNAT --to-destination 10.244.1.7:8079"
        );
        assert_eq!(list_args().join(" "), "-w -t nat -S OUTPUT");
    }

    #[test]
    fn only_our_rules_are_deleted_whatever_the_quoting() {
        let listing = "\
-P OUTPUT ACCEPT
-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment podid-imds-redirect -j DNAT --to-destination 10.244.1.7:8079
-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment \"podid-imds-redirect\" -j DNAT --to-destination 10.244.2.9:8079
-A OUTPUT -m comment --comment \"podid-imds-redirect-other\" -j ACCEPT
";
        let deletions: Vec<String> = delete_args(listing).iter().map(|a| a.join(" ")).collect();
        assert_eq!(
            deletions,
            [
                "-w -t nat -D OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment podid-imds-redirect -j DNAT --to-destination 10.244.1.7:8079",
                "-w -t nat -D OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment podid-imds-redirect -j DNAT --to-destination 10.244.2.9:8079",
            ]
        );
        assert!(delete_args("-P OUTPUT ACCEPT\n").is_empty());
    }

    #[test]
    fn rule_lines_split_like_a_shell() {
        assert_eq!(
            split_rule(r#"-A X --comment "a \"b\" c" -j  Y"#),
            ["-A", "X", "--comment", "a \"b\" c", "-j", "Y"]
        );
        assert_eq!(split_rule(r#"--comment """#), ["--comment", ""]);
    }

    #[test]
    fn the_refusal_is_the_line_the_harness_shows() {
        let e = RedirectError::Refused {
            addr: *METADATA_ADDR.ip(),
            node: "kind-worker".into(),
            status: 400,
        };
        assert_eq!(
            e.to_string(),
            "refusing: a metadata service answers at 169.254.169.254 on node kind-worker (HTTP 400); \
             the mock cloud must not run on a node that has a real one"
        );
        assert_eq!(e.exit_code(), EXIT_REFUSED);
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    fn v4(addr: std::net::SocketAddr) -> SocketAddrV4 {
        match addr {
            std::net::SocketAddr::V4(a) => a,
            other => panic!("expected IPv4, got {other}"),
        }
    }

    /// A real HTTP server answering as IMDS does without the `Metadata` header.
    async fn metadata_stand_in() -> (SocketAddrV4, tokio::task::JoinHandle<()>) {
        let app = axum::Router::new().fallback(|| async {
            (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": "Required metadata header not specified"})),
            )
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = v4(listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (addr, task)
    }

    #[tokio::test]
    async fn an_http_answer_means_a_metadata_service_is_there() {
        let (addr, server) = metadata_stand_in().await;
        assert_eq!(
            probe_metadata(&http(), addr, PROBE_TIMEOUT).await,
            MetadataProbe::Answered(400)
        );
        server.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_means_none_is() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = v4(free.local_addr().unwrap());
        drop(free);
        let probe = probe_metadata(&http(), addr, PROBE_TIMEOUT).await;
        assert!(
            matches!(&probe, MetadataProbe::Absent(why) if why.to_lowercase().contains("refused")),
            "{probe:?}"
        );
    }

    #[tokio::test]
    async fn silence_until_the_timeout_means_none_is() {
        // Accepts (the kernel completes the handshake) but never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = v4(silent.local_addr().unwrap());
        let started = std::time::Instant::now();
        let probe = probe_metadata(&http(), addr, Duration::from_millis(300)).await;
        assert!(matches!(probe, MetadataProbe::Absent(_)), "{probe:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(silent);
    }
}
