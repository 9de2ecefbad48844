"""ManagedIdentityCredential (the real azure-identity) against the mock IMDS's behaviours.

An identity assigned moments ago is not found yet (IMDS answers 400 "Identity not found"): the
SDK reports it unavailable, and a later request succeeds. Over the rate limit IMDS answers 429:
the SDK retries with back-off and gets the token. Configuration comes from environment
variables set by tests/python_sdk.rs.
"""

import os
import sys
import time
import urllib.request

try:
    from azure.identity import CredentialUnavailableError, ManagedIdentityCredential
except ImportError as exc:  # pragma: no cover - reported to the Rust test
    print(f"missing Python packages ({exc}); run: pip install -r mocks/tests/python/requirements.txt", file=sys.stderr)
    sys.exit(3)

SCOPE = "https://management.azure.com/.default"


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"environment variable {name} is required")
    return value


def main() -> None:
    # 1. Propagation: the identity was assigned just before this script started.
    fresh = ManagedIdentityCredential(client_id=env("MOCK_NEW_CLIENT"))
    try:
        fresh.get_token(SCOPE)
        raise AssertionError("a just-assigned identity must not be found yet")
    except CredentialUnavailableError as err:
        assert "Identity not found" in str(err), str(err)
    time.sleep(float(env("MOCK_PROPAGATION_SECS")) + 0.5)
    token = ManagedIdentityCredential(client_id=env("MOCK_NEW_CLIENT")).get_token(SCOPE)
    assert token.token
    print("propagation: unavailable at first, a token once propagated")

    # 2. Throttling (one identity request a second): let the window pass, use up its budget by
    # hand, then let the SDK ask.
    time.sleep(1.1)
    host = env("AZURE_POD_IDENTITY_AUTHORITY_HOST")
    url = f"{host}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/&client_id={env('MOCK_THROTTLED_CLIENT')}"
    request = urllib.request.Request(url, headers={"Metadata": "true"})
    with urllib.request.urlopen(request) as resp:
        assert resp.status == 200
    token = ManagedIdentityCredential(client_id=env("MOCK_THROTTLED_CLIENT")).get_token(SCOPE)
    assert token.token
    print("throttling: the SDK retried past 429 and got a token")
    print("OK")


if __name__ == "__main__":
    main()
