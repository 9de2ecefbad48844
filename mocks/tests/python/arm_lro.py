"""Update a scale set's identities with the real azure-mgmt-compute against the mock ARM.

With long-running writes switched on, the PATCH is answered 200 "Updating" with
Azure-AsyncOperation and the SDK's ARM polling (azure-mgmt-core) polls the operation until it
succeeds, then reads the scale set back. Configuration comes from environment variables set by tests/python_sdk.rs.
"""

import os
import sys
import time

try:
    from azure.identity import ClientSecretCredential
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.compute.models import (
        UserAssignedIdentitiesValue,
        VirtualMachineScaleSetIdentity,
        VirtualMachineScaleSetUpdate,
    )
except ImportError as exc:  # pragma: no cover - reported to the Rust test
    print(f"missing Python packages ({exc}); run: pip install -r mocks/tests/python/requirements.txt", file=sys.stderr)
    sys.exit(3)


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"environment variable {name} is required")
    return value


def main() -> None:
    credential = ClientSecretCredential(
        env("MOCK_TENANT"),
        env("MOCK_SP_CLIENT"),
        env("MOCK_SP_SECRET"),
        authority=env("MOCK_AAD"),
        disable_instance_discovery=True,
    )
    client = ComputeManagementClient(credential, env("MOCK_SUBSCRIPTION"), base_url=env("MOCK_ARM"))
    identity = env("MOCK_IDENTITY_ID")
    update = VirtualMachineScaleSetUpdate(
        identity=VirtualMachineScaleSetIdentity(
            type="UserAssigned",
            user_assigned_identities={identity: UserAssignedIdentitiesValue()},
        )
    )
    started = time.monotonic()
    poller = client.virtual_machine_scale_sets.begin_update(env("MOCK_RESOURCE_GROUP"), env("MOCK_VMSS"), update)
    vmss = poller.result(timeout=60)
    elapsed = time.monotonic() - started
    assert poller.status() == "Succeeded", poller.status()
    held = {k.lower() for k in (vmss.identity.user_assigned_identities or {})}
    assert identity.lower() in held, held
    assert vmss.provisioning_state == "Succeeded", vmss.provisioning_state
    # Retry-After: 1 paces the polls; without it azure-core would wait 30 s per poll.
    assert elapsed < 20, f"polling took {elapsed:.1f}s"
    print(f"lro: scale set updated after polling ({elapsed:.1f}s)")
    print("OK")


if __name__ == "__main__":
    main()
