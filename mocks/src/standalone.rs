//! Running the mock cloud on its own (`mock-azure serve`, `podid mock serve`): load a cloud
//! description, bind the services on the given (loopback by default) addresses, serve until Ctrl-C.

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
    /// An IMDS server: `MACHINE=ADDR`, MACHINE being `vm-name` or `scale-set/INSTANCE`.
    #[arg(long, value_parser = parse_imds)]
    pub imds: Vec<(MachineRef, SocketAddr)>,
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

fn parse_imds(s: &str) -> std::result::Result<(MachineRef, SocketAddr), String> {
    let (machine, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected MACHINE=ADDR, got '{s}'"))?;
    let machine: MachineRef = machine.parse()?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad address '{addr}': {e}"))?;
    Ok((machine, addr))
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

/// Serves until Ctrl-C, printing the tenant, subscription, each URL and the CA path.
pub async fn serve(args: ServeArgs) -> Result<()> {
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
    for (machine, addr) in &args.imds {
        let label = machine.to_string();
        let endpoint = Endpoint::Imds {
            machine: machine.clone(),
            label: label.clone(),
        };
        let handle = cloud
            .serve(endpoint, bind("imds", *addr)?)
            .await
            .into_diagnostic()
            .wrap_err_with(|| format!("serving IMDS for {machine}"))?;
        servers.push((format!("imds[{label}]"), handle));
    }
    println!("tenant {}", cloud.tenant_id());
    println!("subscription {}", cloud.subscription_id());
    for (name, handle) in &servers {
        println!("{name} {}", handle.url());
    }
    println!("ca {}", ca_path.display());
    tokio::signal::ctrl_c()
        .await
        .into_diagnostic()
        .wrap_err("waiting for Ctrl-C")?;
    for (_, handle) in servers {
        handle.shutdown().await;
    }
    Ok(())
}
