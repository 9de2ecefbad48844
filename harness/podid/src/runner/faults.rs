//! A scenario's faults and cloud-wide behaviour: rendered into the provider's terms, put in
//! place for the trial (or one step), and taken out again whatever happened.

use podid_scenario::reference::Resolve;
use podid_scenario::{Cloud, FaultDecl, Located};

use super::error::StepError;
use crate::provider::{CloudBehaviour, CloudSide, FaultHandle, FaultSpec};

/// A fault declaration with its references resolved.
pub fn fault_spec(decl: &FaultDecl, resolver: &dyn Resolve) -> Result<FaultSpec, StepError> {
    let render = |t: &podid_scenario::Template, what: &str| {
        podid_scenario::reference::render(t, resolver)
            .map_err(StepError::reference(format!("fault `{what}`")))
    };
    Ok(FaultSpec {
        service: Some(decl.service.value),
        node: decl.node.as_ref().map(|n| n.value.clone()),
        path_prefix: match &decl.path {
            Some(p) => render(p, "path")?,
            None => "/".into(),
        },
        method: decl.method.clone(),
        client_id: decl
            .client_id
            .as_ref()
            .map(|c| render(c, "clientId"))
            .transpose()?,
        status: decl.status.as_ref().map(|s| s.value),
        body: decl.body.as_ref().map(|b| render(b, "body")).transpose()?,
        retry_after: decl.retry_after.clone(),
        latency: decl.latency.map(|d| d.0),
        disconnect: decl.disconnect,
        count: decl.count.as_ref().map(|c| c.value),
        duration: decl.duration.map(|d| d.0),
    })
}

/// Puts every fault of `decls` in place; on an error, takes out those already added.
pub async fn add_all(
    cloud: &dyn CloudSide,
    decls: &[Located<FaultDecl>],
    resolver: &(dyn Resolve + Sync),
) -> Result<Vec<FaultHandle>, StepError> {
    let mut handles = Vec::new();
    for decl in decls {
        let added = match fault_spec(&decl.value, resolver) {
            Ok(spec) => cloud.add_fault(&spec).await.map_err(StepError::from),
            Err(e) => Err(e),
        };
        match added {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                remove_all(cloud, handles).await;
                return Err(e);
            }
        }
    }
    Ok(handles)
}

/// Takes faults out; what could not be taken out.
pub async fn remove_all(cloud: &dyn CloudSide, handles: Vec<FaultHandle>) -> Vec<String> {
    let mut problems = Vec::new();
    for handle in handles {
        if let Err(e) = cloud.remove_fault(handle).await {
            problems.push(crate::provider::error_chain(&e));
        }
    }
    problems
}

/// Whether a trial changes how ARM answers MIC (ARM faults, `cloud.arm`, MIC's roles): such a
/// trial must not start while MIC still works for earlier trials, whose calls would meet it.
pub fn needs_quiet_mic(scenario: &podid_scenario::Scenario) -> bool {
    let arm_fault = scenario
        .faults
        .iter()
        .chain(scenario.steps.iter().flat_map(|s| s.value.faults.iter()))
        .any(|f| f.value.service.value == podid_scenario::Service::Arm);
    let mic_roles = scenario
        .cloud
        .role_assignments
        .iter()
        .any(|ra| ra.value.principal.value == podid_scenario::MIC_PRINCIPAL);
    arm_fault || scenario.cloud.arm.is_some() || mic_roles
}

/// The behaviour a scenario's `cloud.arm` and `cloud.imds` ask for (the usual one when neither
/// is given).
pub fn behaviour(cloud: &Cloud) -> CloudBehaviour {
    let arm = cloud.arm.as_ref();
    let imds = cloud.imds.as_ref();
    CloudBehaviour {
        arm_authorization: arm.is_some_and(|a| a.authorization),
        arm_async_polls: arm.map_or(0, |a| a.poll_count()),
        imds_propagation_delay: imds.and_then(|i| i.propagation_delay).map(|d| d.0),
        imds_requests_per_second: imds
            .and_then(|i| i.requests_per_second.as_ref())
            .map(|r| r.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    struct Values(HashMap<String, String>);

    impl Resolve for Values {
        fn resolve(&self, r: &podid_scenario::reference::Reference) -> Option<String> {
            self.0.get(&r.to_string()).cloned()
        }
    }

    #[test]
    fn a_fault_is_rendered_with_its_references() {
        let decl: FaultDecl = serde_json::from_value(serde_json::json!({
            "service": "imds",
            "node": "node-1",
            "clientId": "${identities.reader.clientId}",
            "status": 429,
            "retryAfter": "2",
            "latency": "250ms",
            "count": 3
        }))
        .unwrap();
        let values = Values(
            [(
                "${identities.reader.clientId}".to_string(),
                "c-1".to_string(),
            )]
            .into(),
        );
        let spec = fault_spec(&decl, &values).unwrap();
        assert_eq!(spec.node.as_deref(), Some("node-1"));
        assert_eq!(spec.client_id.as_deref(), Some("c-1"));
        assert_eq!(spec.status, Some(429));
        assert_eq!(spec.path_prefix, "/");
        assert_eq!(spec.latency, Some(Duration::from_millis(250)));
        assert_eq!(spec.count, Some(3));
    }

    #[test]
    fn no_behaviour_section_is_the_usual_behaviour() {
        assert!(behaviour(&Cloud::default()).is_default());
    }
}
