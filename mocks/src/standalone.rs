//! Running the mock cloud on its own (`mock-azure serve`, `podid mock serve`): load a cloud
//! description, bind the services on the given (loopback by default) addresses, optionally serve
//! the control API on loopback, and serve until Ctrl-C or SIGTERM (as a pod's process is stopped).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use miette::{Context, IntoDiagnostic, Result, miette};

use crate::{
    ArmBehaviour, CloudSpec, Endpoint, ImdsBehaviour, MachineRef, MockCloud, ServerHandle,
};

/// Where and what to serve.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Cloud spec, YAML or JSON (by extension `.json`).
    #[arg(long)]
    pub config: PathBuf,
    /// Address for the AAD server (HTTPS).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub aad: SocketAddr,
    /// Address for the ARM server (HTTPS).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub arm: SocketAddr,
    /// Address for the Blob server (HTTPS).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub blob: SocketAddr,
    /// An IMDS server: `[NODE@]MACHINE=ADDR`, MACHINE being `vm-name` or `scale-set/INSTANCE`;
    /// the request log reports its requests under NODE (default: MACHINE).
    #[arg(long, value_name = "[NODE@]MACHINE=ADDR", value_parser = parse_imds)]
    pub imds: Vec<ImdsServe>,
    /// Serve the control API (HTTP, no authentication) on this loopback address.
    #[arg(long, value_name = "ADDR")]
    pub control: Option<SocketAddr>,
    /// Where to write the CA certificate (PEM); a temp file by default.
    #[arg(long)]
    pub ca_out: Option<PathBuf>,
    /// Extra host names or IPs for the server certificate.
    #[arg(long)]
    pub san: Vec<String>,
    /// ARM checks the callers' role assignments (`AuthorizationFailed`,
    /// `LinkedAuthorizationFailed`).
    #[arg(long)]
    pub arm_authorization: bool,
    /// VM/VMSS writes are long-running: their operation answers `InProgress` this many times
    /// before `Succeeded` (0: synchronous).
    #[arg(long, default_value_t = 0)]
    pub arm_async_polls: u32,
    /// IMDS answers `Identity not found` for this many milliseconds after an identity is
    /// assigned.
    #[arg(long)]
    pub imds_propagation_delay_ms: Option<u64>,
    /// Identity-token requests per machine and second above which IMDS answers 429.
    #[arg(long)]
    pub imds_requests_per_second: Option<u32>,
}

/// One `--imds`: which machine the server speaks for, under which label, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsServe {
    /// Label in the request log (the node name); the machine's text form when not given.
    pub label: String,
    /// The VM or scale-set instance.
    pub machine: MachineRef,
    /// Address to listen on.
    pub addr: SocketAddr,
}

fn parse_imds(s: &str) -> std::result::Result<ImdsServe, String> {
    let (target, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected [NODE@]MACHINE=ADDR, got '{s}'"))?;
    let (label, machine) = match target.split_once('@') {
        Some(("", _)) => return Err(format!("empty node name before '@' in '{s}'")),
        Some((label, machine)) => (Some(label), machine),
        None => (None, target),
    };
    let machine: MachineRef = machine.parse()?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad address '{addr}': {e}"))?;
    Ok(ImdsServe {
        label: label.map_or_else(|| machine.to_string(), str::to_string),
        machine,
        addr,
    })
}

/// Refuses a control address that is not loopback: the control API has no authentication.
fn require_loopback(addr: SocketAddr) -> Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    Err(miette!(
        "--control {addr}: the control API has no authentication and listens only on a loopback \
         address (127.0.0.1 or ::1); reach it from elsewhere through a port-forward"
    ))
}

/// Reads a cloud description (YAML, or JSON by extension `.json`).
pub fn load_spec(path: &Path) -> Result<CloudSpec> {
    let text = std::fs::read_to_string(path)
        .into_diagnostic()
        .wrap_err_with(|| format!("reading config {}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text)
            .into_diagnostic()
            .wrap_err_with(|| format!("parsing JSON config {}", path.display()))
    } else {
        serde_saphyr::from_str(&text)
            .map_err(|e| miette!("parsing YAML config {}: {e}", path.display()))
    }
}

fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .into_diagnostic()
        .wrap_err_with(|| format!("binding the {what} server to {addr}"))
}

/// Serves until Ctrl-C or SIGTERM, printing the tenant, subscription, each URL and the CA path.
pub async fn serve(args: ServeArgs) -> Result<()> {
    if let Some(addr) = args.control {
        require_loopback(addr)?;
    }
    let spec = load_spec(&args.config)?;
    let cloud = MockCloud::builder()
        .extra_sans(args.san.clone())
        .build(spec)
        .into_diagnostic()
        .wrap_err("creating the mock cloud")?;
    cloud.set_arm_behaviour(ArmBehaviour {
        authorization: args.arm_authorization,
        async_polls: args.arm_async_polls,
    });
    cloud.set_imds_behaviour(ImdsBehaviour {
        propagation_delay: args
            .imds_propagation_delay_ms
            .map(std::time::Duration::from_millis),
        requests_per_second: args.imds_requests_per_second,
    });
    let ca_path = args.ca_out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("mock-azure-ca-{}.pem", std::process::id()))
    });
    cloud.tls().write_ca_bundle(&ca_path).into_diagnostic()?;
    let mut servers: Vec<(String, ServerHandle)> = Vec::new();
    for (name, endpoint, addr) in [
        ("aad", Endpoint::Aad, args.aad),
        ("arm", Endpoint::Arm, args.arm),
        ("blob", Endpoint::Blob, args.blob),
    ] {
        let handle = cloud
            .serve(endpoint, bind(name, addr)?)
            .await
            .into_diagnostic()?;
        servers.push((name.to_string(), handle));
    }
    for imds in &args.imds {
        let endpoint = Endpoint::Imds {
            machine: imds.machine.clone(),
            label: imds.label.clone(),
        };
        let handle = cloud
            .serve(endpoint, bind("imds", imds.addr)?)
            .await
            .into_diagnostic()
            .wrap_err_with(|| format!("serving IMDS for {}", imds.machine))?;
        servers.push((format!("imds[{}]", imds.label), handle));
    }
    let control = match args.control {
        Some(addr) => Some(
            crate::control::serve(cloud.clone(), bind("control", addr)?)
                .await
                .into_diagnostic()?,
        ),
        None => None,
    };
    println!("tenant {}", cloud.tenant_id());
    println!("subscription {}", cloud.subscription_id());
    for (name, handle) in &servers {
        println!("{name} {}", handle.url());
    }
    if let Some(control) = &control {
        println!("control {}", control.url().as_str().trim_end_matches('/'));
    }
    println!("ca {}", ca_path.display());
    stopped().await?;
    if let Some(control) = control {
        control.shutdown().await;
    }
    for (_, handle) in servers {
        handle.shutdown().await;
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what stops a pod's process; as PID 1 it has no default
/// action for it).
async fn stopped() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())
        .into_diagnostic()
        .wrap_err("listening for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.into_diagnostic().wrap_err("waiting for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imds_takes_an_optional_node_label() {
        let plain = parse_imds("pool/1=127.0.0.1:8079").unwrap();
        assert_eq!(plain.label, "pool/1");
        assert_eq!(plain.machine, MachineRef::scale_set_instance("pool", 1));
        let labelled = parse_imds("kind-worker@pool/1=0.0.0.0:8079").unwrap();
        assert_eq!(labelled.label, "kind-worker");
        assert_eq!(labelled.machine, MachineRef::scale_set_instance("pool", 1));
        assert_eq!(labelled.addr, "0.0.0.0:8079".parse().unwrap());
        assert!(parse_imds("@node-1=127.0.0.1:1").is_err());
        assert!(parse_imds("node-1").is_err());
    }

    #[test]
    fn the_control_api_listens_on_loopback_only() {
        assert!(require_loopback("127.0.0.1:7000".parse().unwrap()).is_ok());
        assert!(require_loopback("[::1]:7000".parse().unwrap()).is_ok());
        for addr in ["0.0.0.0:7000", "10.0.0.4:7000", "[::]:7000"] {
            let err = require_loopback(addr.parse().unwrap()).unwrap_err();
            assert!(err.to_string().contains("loopback"), "{err}");
        }
    }
}
