//! `redirect-imds` against real HTTP servers standing in for the metadata address: it refuses
//! where something answers, proves the redirect through the real mock IMDS (the request shows up
//! in the request log under the node), and cleans up. iptables itself is not run: a stand-in
//! records the calls and, on insert, does what the DNAT rule would (the metadata address then
//! reaches the node's mock IMDS).

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use podid_mocks::redirect::{
    EXIT_REFUSED, EXIT_UNPROVEN, Firewall, PROOF_PARAM, RULE_COMMENT, Redirect, RedirectArgs,
    RedirectError, RedirectSettings, insert_args,
};
use podid_mocks::{Endpoint, MachineRef, MockCloud, RequestFilter, ServerHandle, Service};
use podid_wait::Poll;

const NODE: &str = "kind-worker";
const TO: &str = "10.244.1.7:8079";
const KUBE_RULE: &str =
    "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES";

/// What the stand-in iptables holds and does.
#[derive(Default)]
struct Table {
    /// Rules as `iptables -S` lists them.
    rules: Vec<String>,
    /// Every call's arguments, space-joined.
    calls: Vec<String>,
    /// The "redirected" metadata address, while our rule is in place.
    served: Option<ServerHandle>,
}

/// iptables as far as the redirect uses it; with `cloud`, inserting our rule makes the metadata
/// address serve `cloud`'s IMDS for pool/1 labelled NODE, as the DNAT does on a node.
#[derive(Clone)]
struct StandIn {
    table: Arc<Mutex<Table>>,
    cloud: Option<MockCloud>,
    metadata: SocketAddrV4,
}

impl StandIn {
    fn new(cloud: Option<MockCloud>, metadata: SocketAddrV4, rules: &[&str]) -> Self {
        let table = Table {
            rules: rules.iter().map(|r| r.to_string()).collect(),
            ..Table::default()
        };
        Self {
            table: Arc::new(Mutex::new(table)),
            cloud,
            metadata,
        }
    }

    fn calls(&self) -> Vec<String> {
        self.table.lock().unwrap().calls.clone()
    }

    fn rules(&self) -> Vec<String> {
        self.table.lock().unwrap().rules.clone()
    }
}

impl Firewall for StandIn {
    fn iptables(&self, args: &[String]) -> Result<String, RedirectError> {
        let mut table = self.table.lock().unwrap();
        table.calls.push(args.join(" "));
        assert_eq!(&args[..3], ["-w", "-t", "nat"], "{args:?}");
        match args[3].as_str() {
            "-S" => Ok(format!("-P OUTPUT ACCEPT\n{}\n", table.rules.join("\n"))),
            "-I" => {
                assert_eq!(&args[4..6], ["OUTPUT", "1"]);
                let listed = format!("-A OUTPUT {}", args[6..].join(" "));
                table.rules.insert(0, listed);
                if let Some(cloud) = &self.cloud {
                    let listener = std::net::TcpListener::bind(self.metadata).unwrap();
                    let endpoint = Endpoint::Imds {
                        machine: MachineRef::scale_set_instance("pool", 1),
                        label: NODE.into(),
                    };
                    let served = tokio::task::block_in_place(|| {
                        tokio::runtime::Handle::current().block_on(cloud.serve(endpoint, listener))
                    })
                    .unwrap();
                    table.served = Some(served);
                }
                Ok(String::new())
            }
            "-D" => {
                let listed = format!("-A {}", args[4..].join(" "));
                // iptables matches the rule, not its quoting in the listing.
                let at = table
                    .rules
                    .iter()
                    .position(|r| r.replace('"', "") == listed);
                let at =
                    at.unwrap_or_else(|| panic!("deleting a rule that is not there: {listed}"));
                table.rules.remove(at);
                if listed.contains(RULE_COMMENT) {
                    table.served = None;
                }
                Ok(String::new())
            }
            other => panic!("unexpected iptables command {other}"),
        }
    }
}

/// A loopback address nothing listens on.
fn free_addr() -> SocketAddrV4 {
    let l = loopback();
    let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
        unreachable!()
    };
    addr
}

fn settings(metadata: SocketAddrV4, dir: &std::path::Path) -> RedirectSettings {
    RedirectSettings {
        node: NODE.into(),
        metadata,
        to: TO.parse().unwrap(),
        proof: "nonce-123".into(),
        ready_file: dir.join("ready"),
        probe_timeout: Duration::from_secs(2),
        proof_poll: Poll::every(Duration::from_millis(100), Duration::from_secs(2)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_a_metadata_service_is_refused_and_left_alone() {
    let env = Env::start().await;
    // The mock IMDS answers a request without `Metadata: true` 400, as a real IMDS does.
    let SocketAddr::V4(metadata) = env.imds_node1.local_addr() else {
        unreachable!()
    };
    let dir = tempfile::tempdir().unwrap();
    let iptables = StandIn::new(None, metadata, &[KUBE_RULE]);
    let redirect = Redirect::new(settings(metadata, dir.path()), iptables.clone()).unwrap();

    let err = redirect.install().await.unwrap_err();
    assert_eq!(err.exit_code(), EXIT_REFUSED);
    assert_eq!(
        err.to_string(),
        format!(
            "refusing: a metadata service answers at 127.0.0.1 on node {NODE} (HTTP 400); \
             the mock cloud must not run on a node that has a real one"
        )
    );
    assert_eq!(
        iptables.calls(),
        ["-w -t nat -S OUTPUT"],
        "nothing inserted"
    );
    assert_eq!(iptables.rules(), [KUBE_RULE]);
    assert!(!dir.path().join("ready").exists());

    let log = dir.path().join("termination-log");
    std::fs::write(&log, "").unwrap();
    podid_mocks::redirect::report(&err, &log);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("{err}\n"),
        "the same one line goes to the termination log"
    );
    let probe = env.cloud.requests_matching(&RequestFilter {
        label: Some("node-1".into()),
        ..RequestFilter::default()
    });
    assert_eq!(probe.len(), 1, "one plain check request");
    assert_eq!(probe[0].path, "/metadata/instance");
    assert!(!probe[0].headers.iter().any(|(k, _)| k == "metadata"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_replaces_stale_rules_is_proven_through_the_mock_and_removed() {
    let env = Env::start().await;
    let metadata = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let stale = format!(
        "-A OUTPUT -d {}/32 -p tcp -m tcp --dport {} -m comment --comment \"{RULE_COMMENT}\" -j DNAT --to-destination 10.244.9.9:8079",
        metadata.ip(),
        metadata.port()
    );
    let iptables = StandIn::new(Some(env.cloud.clone()), metadata, &[KUBE_RULE, &stale]);
    let redirect = Redirect::new(settings(metadata, dir.path()), iptables.clone()).unwrap();
    let cursor = env.cloud.next_seq();

    redirect.install().await.unwrap();
    let ours = format!(
        "-A OUTPUT {}",
        insert_args(metadata, TO.parse().unwrap())[6..].join(" ")
    );
    assert_eq!(
        iptables.rules(),
        [ours.as_str(), KUBE_RULE],
        "stale rule gone, ours first"
    );
    assert!(dir.path().join("ready").exists());

    let proof = env.cloud.requests_matching(&RequestFilter {
        service: Some(Service::Imds),
        since_seq: Some(cursor),
        ..RequestFilter::default()
    });
    assert_eq!(proof.len(), 1, "{proof:?}");
    assert_eq!(proof[0].label, NODE);
    assert_eq!(proof[0].path, "/metadata/instance");
    assert_eq!(proof[0].status, 200);
    assert!(
        proof[0]
            .query
            .iter()
            .any(|(k, v)| k == PROOF_PARAM && v == "nonce-123")
    );
    assert!(
        proof[0]
            .headers
            .iter()
            .any(|(k, v)| k == "metadata" && v == "true")
    );

    assert_eq!(redirect.uninstall().unwrap(), 1);
    assert_eq!(iptables.rules(), [KUBE_RULE]);
    assert!(!dir.path().join("ready").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_until_holds_the_rule_until_shutdown() {
    let env = Env::start().await;
    let metadata = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let iptables = StandIn::new(Some(env.cloud.clone()), metadata, &[]);
    let redirect = Redirect::new(settings(metadata, dir.path()), iptables.clone()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ready = dir.path().join("ready");
    let watcher = {
        let iptables = iptables.clone();
        async move {
            podid_wait::until(
                Poll::every(Duration::from_millis(50), Duration::from_secs(10)),
                || async {
                    if ready.exists() {
                        podid_wait::Check::Done(())
                    } else {
                        podid_wait::Check::Pending("no ready file")
                    }
                },
            )
            .await
            .unwrap();
            assert_eq!(
                iptables.rules().len(),
                1,
                "the rule is in place while serving"
            );
            stop.send(()).unwrap();
        }
    };
    let (served, ()) = tokio::join!(
        redirect.serve_until(async {
            stopped.await.unwrap();
        }),
        watcher
    );
    served.unwrap();
    assert!(iptables.rules().is_empty(), "removed on shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unproven_redirect_is_removed_again() {
    init_crypto();
    let metadata = free_addr();
    let dir = tempfile::tempdir().unwrap();
    // Inserting changes nothing: requests to the metadata address still find no one.
    let iptables = StandIn::new(None, metadata, &[]);
    let redirect = Redirect::new(settings(metadata, dir.path()), iptables.clone()).unwrap();
    let err = redirect.install().await.unwrap_err();
    assert_eq!(err.exit_code(), EXIT_UNPROVEN);
    let line = err.to_string();
    assert!(
        line.starts_with(&format!(
            "no proof: requests to {metadata} on node {NODE} do not reach the mock IMDS at {TO}: "
        )),
        "{line}"
    );
    assert!(!line.contains('\n'), "one line: {line}");
    let calls = iptables.calls();
    assert!(
        calls.iter().any(|c| c.contains(" -I OUTPUT 1 ")),
        "{calls:?}"
    );
    assert!(calls.last().unwrap().contains(" -D OUTPUT "), "{calls:?}");
    assert!(iptables.rules().is_empty());
    assert!(!dir.path().join("ready").exists());
}

#[test]
fn the_command_line_needs_node_to_and_proof_unless_removing() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RedirectArgs,
    }
    let parsed = Cli::try_parse_from(["redirect-imds", "--node", NODE, "--to", TO, "--proof", "n"])
        .unwrap()
        .args;
    let settings = RedirectSettings::from_args(&parsed).unwrap();
    assert_eq!(settings.metadata.to_string(), "169.254.169.254:80");
    assert_eq!(settings.to.to_string(), TO);
    assert_eq!(
        settings.ready_file,
        std::path::Path::new(podid_mocks::redirect::READY_FILE)
    );
    assert!(Cli::try_parse_from(["redirect-imds", "--node", NODE, "--proof", "n"]).is_err());
    assert!(Cli::try_parse_from(["redirect-imds", "--remove"]).is_ok());
    let metadata = Cli::try_parse_from([
        "redirect-imds",
        "--node",
        NODE,
        "--to",
        TO,
        "--proof",
        "n",
        "--metadata-addr",
        "127.0.0.1:9",
    ])
    .unwrap()
    .args
    .metadata_addr;
    assert_eq!(metadata.to_string(), "127.0.0.1:9");
}
