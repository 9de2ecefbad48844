"""Drive the podid mock cloud with the real Azure SDK for Python, unchanged.

Configuration comes from environment variables set by the Rust test (see tests/python_sdk.rs).
Exit code 0 means every check passed; any failure raises.
"""

import base64
import json
import os
import sys

try:
    from azure.identity import ClientSecretCredential, ManagedIdentityCredential
    from azure.storage.blob import BlobServiceClient
except ImportError as exc:  # pragma: no cover - reported to the Rust test
    print(f"missing Python packages ({exc}); run: pip install -r mocks/tests/python/requirements.txt", file=sys.stderr)
    sys.exit(3)


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"environment variable {name} is required")
    return value


def claims(token: str) -> dict:
    """The payload of a JWT, undecoded by any JWT library (the SDK treats tokens as opaque)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def main() -> None:
    tenant = env("MOCK_TENANT")
    blob_url = env("MOCK_BLOB_ACCOUNT_URL")
    container = env("MOCK_CONTAINER")
    blob = env("MOCK_BLOB")
    expected = env("MOCK_BLOB_TEXT")

    # Service principal with a secret, authority pointing at the mock AAD.
    sp = ClientSecretCredential(
        tenant,
        env("MOCK_SP_CLIENT"),
        env("MOCK_SP_SECRET"),
        authority=env("MOCK_AAD"),
        disable_instance_discovery=True,
    )
    # Storage is a first-party resource: AAD's v2 endpoint (which MSAL uses) issues v1 tokens.
    storage_claims = claims(sp.get_token("https://storage.azure.com/.default").token)
    assert storage_claims["ver"] == "1.0", storage_claims
    assert storage_claims["iss"] == f"https://sts.windows.net/{tenant}/", storage_claims
    assert storage_claims["appid"] == env("MOCK_SP_CLIENT"), storage_claims
    print("sp: v1 token for storage from the v2 endpoint")
    service = BlobServiceClient(account_url=blob_url, credential=sp)
    data = service.get_blob_client(container, blob).download_blob().readall().decode()
    assert data == expected, f"SP read {data!r}, expected {expected!r}"
    names = [b.name for b in service.get_container_client(container).list_blobs()]
    assert blob in names, f"{blob} not listed in {names}"
    print(f"sp: read {blob} and listed {len(names)} blob(s)")

    # Managed identity through the mock IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST is set).
    mi = ManagedIdentityCredential(client_id=env("MOCK_MI_CLIENT"))
    token = mi.get_token("https://storage.azure.com/.default")
    assert token.token and token.expires_on > 0
    mi_service = BlobServiceClient(account_url=blob_url, credential=mi)
    written = env("MOCK_UPLOAD_TEXT")
    mi_service.get_blob_client(container, env("MOCK_UPLOAD_BLOB")).upload_blob(written.encode(), overwrite=True)
    back = mi_service.get_blob_client(container, env("MOCK_UPLOAD_BLOB")).download_blob().readall().decode()
    assert back == written, f"MI read back {back!r}"
    print("mi: uploaded and read back a blob")
    print("OK")


if __name__ == "__main__":
    main()
