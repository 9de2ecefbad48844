"""Upload a blob in blocks with the real azure-storage-blob, then read it back.

A blob larger than `max_single_put_size` is uploaded as Put Block calls of at most
`max_block_size` bytes and one Put Block List; staging and committing by hand uses the same
calls, and Get Block List reads both lists back. Configuration comes from environment variables
set by tests/python_sdk.rs. Exit code 0 means every check passed.
"""

import os
import sys

try:
    from azure.identity import ManagedIdentityCredential
    from azure.storage.blob import BlobBlock, BlobServiceClient
except ImportError as exc:  # pragma: no cover - reported to the Rust test
    print(f"missing Python packages ({exc}); run: pip install -r mocks/tests/python/requirements.txt", file=sys.stderr)
    sys.exit(3)


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"environment variable {name} is required")
    return value


def main() -> None:
    block_size = int(env("MOCK_BLOCK_SIZE"))
    size = int(env("MOCK_UPLOAD_SIZE"))
    data = bytes((i * 7 + i // 251) % 256 for i in range(size))
    service = BlobServiceClient(
        account_url=env("MOCK_BLOB_ACCOUNT_URL"),
        credential=ManagedIdentityCredential(client_id=env("MOCK_MI_CLIENT")),
        max_single_put_size=block_size * 2,
        max_block_size=block_size,
    )
    blob = service.get_blob_client(env("MOCK_CONTAINER"), env("MOCK_UPLOAD_BLOB"))
    blob.upload_blob(data, overwrite=True)
    back = blob.download_blob().readall()
    assert back == data, f"read back {len(back)} bytes, uploaded {len(data)}"
    committed, uncommitted = blob.get_block_list("all")
    expected_blocks = -(-size // block_size)
    assert len(committed) == expected_blocks, f"{len(committed)} committed blocks, expected {expected_blocks}"
    assert all(b.size <= block_size for b in committed), [b.size for b in committed]
    assert sum(b.size for b in committed) == size
    assert uncommitted == [], uncommitted
    print(f"upload: {size} bytes in {len(committed)} blocks, read back equal")

    # By hand: stage two blocks, see them uncommitted, commit them in reverse order.
    manual = service.get_blob_client(env("MOCK_CONTAINER"), "staged-by-hand.bin")
    manual.stage_block("YmxvY2stYQ==", b"first-")
    manual.stage_block("YmxvY2stYg==", b"second")
    committed, uncommitted = manual.get_block_list("all")
    assert committed == [] and [b.id for b in uncommitted] == ["YmxvY2stYQ==", "YmxvY2stYg=="], (committed, uncommitted)
    manual.commit_block_list([BlobBlock(block_id="YmxvY2stYg=="), BlobBlock(block_id="YmxvY2stYQ==")])
    assert manual.download_blob().readall() == b"secondfirst-"
    committed, _ = manual.get_block_list("committed")
    assert [(b.id, b.size) for b in committed] == [("YmxvY2stYg==", 6), ("YmxvY2stYQ==", 6)], committed
    print("blocks: staged, listed and committed by hand")
    print("OK")


if __name__ == "__main__":
    main()
