//! The request log names the identity resource IDs each request concerns (IMDS selectors, ARM
//! machine writes), also when a fault rule answered and when the mock refused the request.

mod common;

use common::*;
use podid_mocks::{FaultRule, RecordedRequest, RequestFilter, Service};
use serde_json::json;

fn normalized(id: &str) -> String {
    podid_mocks::resource_id::normalize(id)
}

fn only(env: &Env, service: Service, since: u64) -> RecordedRequest {
    let found = env.cloud.requests_matching(&RequestFilter {
        service: Some(service),
        since_seq: Some(since),
        ..RequestFilter::default()
    });
    assert_eq!(found.len(), 1, "{found:#?}");
    found.into_iter().next().unwrap()
}

#[tokio::test]
async fn imds_requests_carry_the_resource_id_they_select() {
    let env = Env::start().await;
    let reader = identity_id("reader-id");
    for (selector, expected) in [
        ("mi_res_id", vec![normalized(&reader)]),
        ("msi_res_id", vec![normalized(&reader)]),
        ("client_id", vec![]),
    ] {
        let since = env.cloud.next_seq();
        let value = if selector == "client_id" {
            READER_CLIENT.to_string()
        } else {
            reader.to_uppercase()
        };
        let status = env
            .client
            .get(format!(
                "{}/metadata/identity/oauth2/token",
                env.imds_node1.url()
            ))
            .header("Metadata", "true")
            .query(&[
                ("api-version", "2018-02-01"),
                ("resource", "https://management.azure.com/"),
                (selector, value.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{selector}");
        assert_eq!(
            only(&env, Service::Imds, since).identity_ids,
            expected,
            "{selector}"
        );
    }
}

#[tokio::test]
async fn arm_machine_writes_carry_added_and_removed_ids_even_when_faulted_or_refused() {
    let env = Env::start().await;
    let token = env
        .imds_token(&env.imds_node2, "https://management.azure.com/", None)
        .await;
    let spare = identity_id("spare-id");
    let reader = identity_id("reader-id");
    let bogus = format!(
        "/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nope"
    );
    let patch = |body: serde_json::Value| {
        env.client
            .patch(env.vm_url("node-1"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let swap = json!({"identity": {"type": "UserAssigned",
        "userAssignedIdentities": {spare.clone(): {}, reader.clone(): null}}});
    // Answered by a fault rule: the handler never ran, the IDs are still recorded.
    env.cloud.add_fault(FaultRule {
        method: Some("PATCH".into()),
        count: Some(1),
        ..FaultRule::status(Service::Arm, "/subscriptions", 500)
    });
    let since = env.cloud.next_seq();
    assert_eq!(patch(swap.clone()).await.unwrap().status(), 500);
    let faulted = only(&env, Service::Arm, since);
    assert!(faulted.faulted);
    assert_eq!(
        faulted.identity_ids,
        vec![normalized(&reader), normalized(&spare)]
    );
    // Served: the handler saw the same body and applied it.
    let since = env.cloud.next_seq();
    assert_eq!(patch(swap).await.unwrap().status(), 200);
    let served = only(&env, Service::Arm, since);
    assert_eq!(
        served.identity_ids,
        vec![normalized(&reader), normalized(&spare)]
    );
    let held = env
        .cloud
        .assigned_identities(&podid_mocks::MachineRef::vm("node-1"))
        .unwrap();
    assert!(held.contains(&spare) && !held.contains(&reader), "{held:?}");
    // Refused (unknown identity): still attributed.
    let since = env.cloud.next_seq();
    let add_bogus = json!({"identity": {"type": "UserAssigned",
        "userAssignedIdentities": {bogus.clone(): {}}}});
    assert_eq!(patch(add_bogus).await.unwrap().status(), 400);
    assert_eq!(
        only(&env, Service::Arm, since).identity_ids,
        vec![normalized(&bogus)]
    );
    // MIC removing the last identities: no list, `type: None`; it concerns what the VM held.
    let since = env.cloud.next_seq();
    let clear = json!({"identity": {"type": "None"}});
    assert_eq!(patch(clear).await.unwrap().status(), 200);
    assert_eq!(
        only(&env, Service::Arm, since).identity_ids,
        vec![normalized(&spare), normalized(&identity_id("writer-id"))]
    );
    // Reads name no identity.
    let since = env.cloud.next_seq();
    env.client
        .get(env.vm_url("node-1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(only(&env, Service::Arm, since).identity_ids.is_empty());
}
