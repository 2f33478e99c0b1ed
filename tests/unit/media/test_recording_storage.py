"""LocalStorage: signed URLs (expiry, tampering) and keys that cannot leave the recordings directory."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.recordings import recording_signing_key
from media.storage import InvalidKey, LocalStorage, S3Storage, is_transient, validate_key

NOW = 1_800_000_000.0


def storage(tmp_path: Path, key: bytes = b"k" * 32) -> LocalStorage:
    return LocalStorage(tmp_path / "rec", "https://gw.example.com/", key, ttl=3600, clock=lambda: NOW)


def parts(url: str) -> tuple[str, str, str]:
    u = urlsplit(url)
    q = parse_qs(u.query)
    return u.path, q["expires"][0], q["signature"][0]


def test_url_shape_and_verify(tmp_path: Path) -> None:
    s = storage(tmp_path)
    url = s.url_for("acct_a/call_1.wav")
    path, expires, sig = parts(url)
    assert url.startswith("https://gw.example.com/v1/voice/recordings/acct_a/call_1.wav?")
    assert path == "/v1/voice/recordings/acct_a/call_1.wav"
    assert int(expires) == int(NOW) + 3600 and len(sig) == 64
    assert s.verify("acct_a/call_1.wav", expires, sig, now=NOW)
    assert s.verify("acct_a/call_1.wav", int(expires), sig, now=NOW + 3600)


def test_expired(tmp_path: Path) -> None:
    s = storage(tmp_path)
    _, expires, sig = parts(s.url_for("a/c.wav"))
    assert s.check("a/c.wav", expires, sig, now=NOW + 3601) == "expired"
    assert not s.verify("a/c.wav", expires, sig, now=NOW + 3601)


@pytest.mark.parametrize(
    "change",
    ["key", "expires_later", "expires_leading_zero", "expires_junk", "signature", "signature_case", "empty"],
)
def test_tampering_is_rejected(tmp_path: Path, change: str) -> None:
    s = storage(tmp_path)
    key, (_, expires, sig) = "a/c.wav", parts(s.url_for("a/c.wav"))
    if change == "key":
        key = "a/d.wav"
    elif change == "expires_later":
        expires = str(int(expires) + 86400)
    elif change == "expires_leading_zero":
        expires = "0" + expires
    elif change == "expires_junk":
        expires = expires + "x"
    elif change == "signature":
        sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    elif change == "signature_case":
        sig = sig.upper()
    else:
        expires, sig = "", ""
    assert s.check(key, expires, sig, now=NOW) == "invalid"


def test_another_signing_key_does_not_verify(tmp_path: Path) -> None:
    a, b = storage(tmp_path, b"a" * 32), storage(tmp_path, b"b" * 32)
    _, expires, sig = parts(a.url_for("x/y.wav"))
    assert not b.verify("x/y.wav", expires, sig, now=NOW)


def test_recording_key_is_derived_from_the_gateway_secret() -> None:
    assert recording_signing_key("s") == recording_signing_key(b"s")
    assert recording_signing_key("s") != recording_signing_key("t")
    assert recording_signing_key("s") != b"s"


@pytest.mark.parametrize(
    "key",
    [
        "../secret.wav",
        "a/../../etc/passwd",
        "/etc/passwd",
        "a//b.wav",
        "a/./b.wav",
        "a\\..\\b.wav",
        "a/b.wav\x00.txt",
        "a/b\n.wav",
        "",
        "..",
        "x" * 1025,
    ],
)
def test_traversal_keys_are_rejected(tmp_path: Path, key: str) -> None:
    s = storage(tmp_path)
    with pytest.raises(InvalidKey):
        validate_key(key)
    with pytest.raises(InvalidKey):
        s.path_for(key)
    with pytest.raises(InvalidKey):
        s.url_for(key)
    assert s.check(key, str(int(NOW)), "0" * 64, now=NOW) == "invalid"


def test_symlink_out_of_the_directory_is_rejected(tmp_path: Path) -> None:
    s = storage(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.wav").write_bytes(b"secret")
    (tmp_path / "rec").mkdir()
    os.symlink(outside, tmp_path / "rec" / "link")
    with pytest.raises(InvalidKey):
        s.path_for("link/x.wav")


async def test_put_moves_into_place_and_keeps_in_place(tmp_path: Path) -> None:
    s = storage(tmp_path)
    src = tmp_path / "spool.wav"
    src.write_bytes(b"RIFF....")
    await s.put(src, "acct/call.wav")
    assert not src.exists()
    assert await s.get_bytes("acct/call.wav") == b"RIFF...."
    # The recorder already wrote to the key's path: nothing to move.
    await s.put(s.path_for("acct/call.wav"), "acct/call.wav")
    assert s.path_for("acct/call.wav").read_bytes() == b"RIFF...."
    with pytest.raises(FileNotFoundError):
        await s.put(s.path_for("acct/none.wav"), "acct/none.wav")


def test_key_for() -> None:
    s = LocalStorage("/tmp/x", "http://h", b"k", 10)
    assert s.key_for("acct_a", "call_1") == "acct_a/call_1.wav"


def test_transient_classification() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    def client_error(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
        )

    assert is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert is_transient(client_error("InternalError", 500))
    assert is_transient(client_error("SlowDown", 503))
    assert not is_transient(client_error("NoSuchBucket", 404))
    assert not is_transient(client_error("AccessDenied", 403))
    try:
        try:
            raise client_error("AccessDenied", 403)
        except ClientError as inner:
            raise RuntimeError("Failed to upload") from inner
    except RuntimeError as wrapped:
        assert not is_transient(wrapped)
    assert not is_transient(FileNotFoundError("x"))


class _Secret:
    def get_secret_value(self) -> str:
        return "testing"


class _S3Settings:
    endpoint_url = "http://127.0.0.1:9"
    bucket = "recordings"
    region = "us-east-1"
    access_key_id = "testing"
    secret_access_key = _Secret()
    prefix = ""
    url_mode = "presigned"
    public_base_url = None
    presign_ttl_seconds = 3600


async def test_s3_retries_back_off_on_the_sleep_it_was_given(tmp_path: Path) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    s3 = S3Storage(_S3Settings(), attempts=4, backoff_seconds=0.5, max_backoff_seconds=1.5, sleep=sleep)
    calls = 0

    def flaky_upload(local_path: Path, key: str) -> None:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise ConnectionResetError("reset by peer")  # transient

    s3._upload_sync = flaky_upload  # type: ignore[method-assign]
    try:
        await s3.put(tmp_path / "r.wav", "acct/r.wav")
        assert calls == 4
        # 0.5, 1.0, then 2.0 capped at 1.5; each jittered down by at most half.
        assert len(waits) == 3
        for wait, full in zip(waits, (0.5, 1.0, 1.5), strict=True):
            assert full / 2 <= wait <= full
        # A permanent error is not retried, and nothing more is slept.
        s3._upload_sync = lambda *a: (_ for _ in ()).throw(FileNotFoundError("gone"))  # type: ignore[method-assign]
        with pytest.raises(FileNotFoundError):
            await s3.put(tmp_path / "r.wav", "acct/r.wav")
        assert len(waits) == 3
    finally:
        await s3.close()
