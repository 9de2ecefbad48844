//! The loader never panics: not on arbitrary text, not on arbitrary edits of valid scenarios, not
//! on scenarios assembled from fragments of every key. Every problem it reports on an assembled
//! scenario points at a line and carries a hint.

use std::path::Path;

use proptest::prelude::*;

/// The committed scenarios and the catalogue of valid files (which use every key).
fn valid_sources() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    podid_scenario::discover(&[root.join("../../scenarios"), root.join("tests/valid")])
        .unwrap()
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// Top-level sections, each valid on its own, some of them conflicting with others.
const HEADERS: &[&str] = &[
    "modes: [managed]\n",
    "modes: [standard]\n",
    "modes: [managed, standard]\n",
    "mic:\n  replicas: 2\n",
    "mic:\n  replicas: 3\n  flags: [\"--immutable-user-msis=${identities.reader.clientId}\"]\n",
    "nmi:\n  flags: [\"--x=${pods.app.ip}\", \"--y=${scenario.micNamespace}\"]\n",
    "cloud:\n  identities:\n    reader: {}\n    cluster: {}\n  servicePrincipals:\n    sp: {certificate: true}\n",
    "cloud:\n  identities:\n    reader: {}\n  nodeIdentities:\n    node-0: [reader, cluster]\n",
    "cloud:\n  arm: {authorization: true, asyncPolls: 2}\n  imds: {propagationDelay: 1s, requestsPerSecond: 0}\n  roleAssignments:\n    - {principal: mic, role: Managed Identity Operator}\n    - {principal: mic, role: Reader, account: x, container: y}\n    - {principal: reader, role: Virtual Machine Contributor, account: x}\n",
    "faults:\n  - {service: imds, node: node-9, status: 700, disconnect: true, count: 0}\n  - {service: arm, clientId: \"${identities.reader.clientId}\", body: b, retryAfter: \"\"}\n  - {service: aad, path: nope, method: get, latency: 0s, duration: 0s}\n",
];

/// `cluster` sections with pods, groups and MIC's namespace.
const CLUSTERS: &[&str] = &[
    "cluster:\n  pods:\n    app: {node: node-0}\n",
    "cluster:\n  namespaces: [mic, other]\n  pods:\n    app: {node: node-1, namespace: mic, phase: Pending}\n",
    "cluster:\n  pods:\n    app: {node: node-0, replicas: 4, owner: {kind: ReplicaSet, name: mic-1}}\n    app-1: {node: node-0}\n",
    "cluster:\n  pods:\n    app: {node: node-0, replicas: 0}\n    big: {node: node-1, replicas: 4294967295}\n",
    "cluster:\n  pods:\n    app: {node: node-0}\n    stale: {node: node-1, ipOf: app}\n    loop: {node: node-0, ipOf: loop}\n    clones: {node: node-0, replicas: 2, ipOf: stale}\n",
];

/// Steps using the new keys, right and wrong.
const STEPS: &[&str] = &[
    "  - token: {pod: app, resource: r, concurrent: 3}\n    expect: {status: 200}\n",
    "  - token: {pod: app-0, resource: r, concurrent: 0}\n    expect: {body: {contains: \"${pods.app.ip}\"}}\n",
    "  - cloud: {assign: {identity: reader, node: node-0}}\n",
    "  - cloud: {unassign: {identity: cluster, node: node-9}, deleteIdentity: cluster}\n",
    "  - cloud: {}\n",
    "  - cloud: {addRole: {principal: sp, role: Reader, account: nope}}\n",
    "  - cloud: {enableSystemAssigned: node-1}\n    within: 5s\n",
    "  - stop: {component: nmi, node: node-0}\n    expect: {iptables: {node-0: absent, node-5: present}}\n",
    "  - restart: {component: mic, replica: follower, node: node-0}\n    modes: [standard, standard, managed]\n",
    "  - kill: {component: apiserver, replica: leader}\n    expect: {status: 200}\n",
    "  - health: {component: mic}\n    expect: {objects: [{kind: Pod, count: 1}]}\n",
    "  - health: {component: nmi}\n",
    "  - wait: {kind: AzureAssignedIdentity, count: 2, name: x, for: deleted, namespace: other, fields: {status..x: Assigned}}\n",
    "  - wait: {fields: {a: b}}\n",
    "  - wait: {kind: Pod, name: app, fields: {status.phase: \"${pods.app.namespace}\"}}\n    expect:\n      nodeIdentities:\n        node-0: {has: [reader], lacks: [reader]}\n        node-1: {}\n",
    "  - sleep: 1s\n    expect:\n      objects:\n        - {kind: AzureAssignedIdentity, namespace: mic, count: 0, absent: true, fields: {a: b}}\n        - {kind: Secret}\n",
    "  - delete: {kind: Pod, name: app}\n    within: 0s\n",
    "  - exec: {pod: app, client: python, args: [token, --resource, \"${nodes.node-0.ip}\"], env: {A-B: c}}\n    expect: {exitCode: 0, stdout: {json: {ok: true}}, stderr: {equals: \"\"}}\n",
    "  - exec: {pod: app, client: azcli, command: [cat], args: [x]}\n    within: 1s\n    expect: {exitCode: 256, status: 200, token: {}}\n",
    "  - exec: {pod: stale}\n    faults: [{service: imds, disconnect: true}]\n",
    "  - token: {pod: stale, endpoint: \"http://${nodes.node-7.ip}:2579/x\", sourceAddress: \"${pods.app.ip}\", headers: {Metadata: [\"false\", true], X: [], \"a b\": 1}}\n    expect: {status: 200, exitCode: 1, stdout: {contains: x}}\n",
    "  - sleep: 1s\n    faults:\n      - {service: blob, status: 503, retryAfter: \"2\", count: 1}\n    expect: {stderr: {contains: x}}\n",
    "  - cloud: {addRole: {principal: mic, role: Virtual Machine Contributor, account: x}}\n",
    "  - token: {pod: app, resource: r}\n    expect: {answered: false, status: 200, minLatency: 3s, maxLatency: 1s}\n",
    "  - health: {component: nmi}\n    expect: {answered: true, minLatency: 1s}\n",
];

/// A scenario from a header, a cluster and some steps, in the given order.
fn assembled() -> impl Strategy<Value = String> {
    (
        prop::sample::subsequence(HEADERS, 0..=3),
        prop::sample::select(CLUSTERS),
        prop::collection::vec(prop::sample::select(STEPS), 0..6),
    )
        .prop_map(|(headers, cluster, steps)| {
            let mut text = String::from("name: assembled\n");
            for h in headers {
                text.push_str(h);
            }
            text.push_str(cluster);
            text.push_str("steps:\n");
            for s in steps {
                text.push_str(s);
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = podid_scenario::load_str(Path::new("fuzz.yaml"), &text);
    }

    #[test]
    fn yamlish_text_never_panics(text in "([a-zA-Z${}:\\[\\]\\-\\. #'\"\n]|  ){0,300}") {
        let _ = podid_scenario::load_str(Path::new("fuzz.yaml"), &text);
    }

    #[test]
    fn assembled_scenarios_are_judged_with_positions_and_hints(text in assembled()) {
        if let Err(found) = podid_scenario::load_str(Path::new("fuzz.yaml"), &text) {
            for p in &found.problems {
                prop_assert!(p.at.line >= 1, "no position in {p} for\n{text}");
                prop_assert!(p.help.is_some(), "no hint in {p} for\n{text}");
            }
        }
    }

    #[test]
    fn mutated_valid_files_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..5, "\\PC{0,12}"), 1..6),
    ) {
        let sources = valid_sources();
        let mut text = sources[pick.index(sources.len())].clone().into_bytes();
        for (at, kind, insert) in edits {
            let i = at.index(text.len() + 1).min(text.len());
            match kind {
                0 => { text.splice(i..i, insert.bytes()); }
                1 => { let end = (i + insert.len()).min(text.len()); text.drain(i..end); }
                2 => { let end = (i + 1).min(text.len()); text.splice(i..end, insert.bytes()); }
                3 => { let line_end = text[i..].iter().position(|b| *b == b'\n').map(|p| i + p).unwrap_or(text.len()); text.drain(i..line_end); }
                // Repeat a line elsewhere: keys and list items land in sections not meant for them.
                _ => {
                    let start = text[..i].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                    let end = text[i..].iter().position(|b| *b == b'\n').map_or(text.len(), |p| i + p + 1);
                    let line = text[start..end].to_vec();
                    let to = at.index(text.len() + 1).min(text.len()) / 2;
                    text.splice(to..to, line);
                }
            }
        }
        let text = String::from_utf8_lossy(&text).to_string();
        let _ = podid_scenario::load_str(Path::new("fuzz.yaml"), &text);
    }
}
