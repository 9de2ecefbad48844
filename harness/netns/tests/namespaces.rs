//! Real namespaces, links and sockets. Needs root; fails with the reason without it, unless
//! `PODID_SKIP_E2E=1` marks these trials ignored (the opt-out shared with the end-to-end suite).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use podid_netns::{NetNamespace, PodLink, connect_pod, list_leftovers, namespace_name};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn run_id() -> String {
    format!("t{:05}", std::process::id() % 100_000)
}

/// Deletes the namespaces even when an assertion fails.
struct Cleanup(Vec<String>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = NetNamespace::delete_by_name(name);
        }
    }
}

async fn pod_reaches_node_address_with_its_own_source_ip() {
    let run = run_id();
    let node_name = namespace_name(&run, "node");
    let pod_name = namespace_name(&run, "pod");
    let _cleanup = Cleanup(vec![node_name.clone(), pod_name.clone()]);

    let node = NetNamespace::create(&node_name).unwrap();
    let pod = NetNamespace::create(&pod_name).unwrap();
    assert!(
        NetNamespace::create(&node_name).is_err(),
        "duplicate create must fail"
    );

    let node_nl = node.netlink().await.unwrap();
    node_nl.set_up("lo").await.unwrap();
    let metadata: Ipv4Addr = "169.254.169.254".parse().unwrap();
    let holder = node_nl
        .add_local_addresses("podid0", &[metadata])
        .await
        .unwrap();
    assert!(
        node_nl
            .ipv4_addresses(&holder)
            .await
            .unwrap()
            .contains(&metadata)
    );

    let link = PodLink {
        node_interface: "vp2".into(),
        pod_interface: "eth0".into(),
        gateway: "10.244.7.1".parse().unwrap(),
        pod_ip: "10.244.7.2".parse().unwrap(),
    };
    connect_pod(&node, &pod, &link).await.unwrap();
    let pod_nl = pod.netlink().await.unwrap();
    assert_eq!(
        pod_nl.ipv4_addresses("eth0").await.unwrap(),
        vec![link.pod_ip]
    );

    // A server on the node's dummy address sees the pod's own address as the peer.
    let listener = node
        .bind_tcp(SocketAddr::new(metadata.into(), 8080))
        .unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().unwrap();
        conn.write_all(b"hello").unwrap();
        peer
    });
    let mut stream = pod
        .connect_tcp(
            SocketAddr::new(metadata.into(), 8080),
            Duration::from_secs(5),
        )
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "hello");
    assert_eq!(
        server.join().unwrap().ip(),
        std::net::IpAddr::V4(link.pod_ip)
    );
}

async fn sysctl_commands_and_hosts_stay_inside_the_namespace() {
    let run = run_id();
    let name = namespace_name(&run, "sys");
    let _cleanup = Cleanup(vec![name.clone()]);
    let ns = NetNamespace::create(&name).unwrap();

    let key = "net.ipv4.conf.all.route_localnet";
    let root_before =
        std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/route_localnet").unwrap();
    let wanted = if root_before.trim() == "1" { "0" } else { "1" };
    ns.write_sysctl(key, wanted).unwrap();
    assert_eq!(ns.read_sysctl(key).unwrap(), wanted);
    let root_after = std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/route_localnet").unwrap();
    assert_eq!(
        root_before, root_after,
        "the root namespace must be untouched"
    );

    // A command entered with setns sees only the namespace's interfaces.
    let out = ns
        .command("cat")
        .arg("/proc/net/dev")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let interfaces: Vec<&str> = text
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, vec!["lo"]);

    // `ip netns exec` applies the namespace's hosts file.
    ns.write_hosts(&[("10.9.8.7".parse().unwrap(), "login.example.test".into())])
        .unwrap();
    let out = ns
        .exec_command("getent")
        .args(["hosts", "login.example.test"])
        .output()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("10.9.8.7"),
        "{out:?}"
    );

    assert!(list_leftovers().namespaces.contains(&name));
    NetNamespace::delete_by_name(&name).unwrap();
    assert!(!NetNamespace::exists(&name));
    assert!(!ns.etc_dir().exists());
    assert!(!list_leftovers().namespaces.contains(&name));
    NetNamespace::delete_by_name(&name).unwrap(); // idempotent
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let skip = std::env::var("PODID_SKIP_E2E").is_ok_and(|v| !v.is_empty() && v != "0");
    if skip {
        eprintln!(
            "PODID_SKIP_E2E is set: the network namespace trials are ignored on this machine"
        );
    }
    fn trial<F: std::future::Future<Output = ()> + 'static>(
        name: &'static str,
        body: fn() -> F,
        skip: bool,
    ) -> libtest_mimic::Trial {
        libtest_mimic::Trial::test(name, move || {
            if !is_root() {
                return Err(
                    "network namespaces need root (set PODID_SKIP_E2E=1 to ignore these trials)"
                        .into(),
                );
            }
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| libtest_mimic::Failed::from(e.to_string()))?
                .block_on(body());
            Ok(())
        })
        .with_ignored_flag(skip)
    }
    let trials = vec![
        trial(
            "pod_reaches_node_address_with_its_own_source_ip",
            pod_reaches_node_address_with_its_own_source_ip,
            skip,
        ),
        trial(
            "sysctl_commands_and_hosts_stay_inside_the_namespace",
            sysctl_commands_and_hosts_stay_inside_the_namespace,
            skip,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}
