"""Where finished recordings are kept: the local disk (signed URLs) or an S3-compatible bucket.

Both backends implement :class:`RecordingStorage`:

``key_for(account_id, call_id) -> str``     the object key of a call's recording
``await put(local_path, key)``              store the file; returns once the copy is confirmed
``url_for(key) -> str``                     a URL a client can fetch the recording from
``await get_bytes(key) -> bytes``           the stored bytes (tests, tooling)
``retains_local_file``                      True when the local file *is* the stored copy
                                            (so the caller must not delete it after `put`)

``LocalStorage`` keeps files under ``local_dir`` and hands out
``{public_url}/v1/voice/recordings/{key}?expires=<unix>&signature=<hex>`` where the
signature is HMAC-SHA256 over ``key`` and ``expires``; :meth:`LocalStorage.check`
verifies it in constant time. Keys are relative paths that can never leave ``local_dir``.

``S3Storage`` uploads with boto3 (multipart above ``multipart_threshold``) on its own
thread pool, so the event loop never blocks; transient failures are retried by botocore
and again by an exponential-backoff loop here (waiting with the ``sleep`` it is given,
``asyncio.sleep`` by default). ``put`` returns only after a HEAD of the object reports
the local file's size. ``LocalStorage`` reads the time of day from its ``clock``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import os
import random
import shutil
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import quote, urlencode

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

__all__ = [
    "RECORDINGS_PATH",
    "InvalidKey",
    "LocalStorage",
    "RecordingStorage",
    "S3Settings",
    "S3Storage",
    "UploadNotConfirmed",
    "is_transient",
    "validate_key",
]

log = logging.getLogger("media.storage")

RECORDINGS_PATH = "/v1/voice/recordings"
MiB = 1024 * 1024
CONTENT_TYPE = "audio/wav"
T = TypeVar("T")
Verdict = Literal["ok", "expired", "invalid"]


class InvalidKey(ValueError):
    """A key that is not a plain relative path (empty segment, '..', backslash, control character)."""


class UploadNotConfirmed(Exception):
    """The stored object does not have the local file's size."""


class RecordingStorage(Protocol):
    retains_local_file: bool

    def key_for(self, account_id: str, call_id: str) -> str: ...

    async def put(self, local_path: Path, key: str) -> None: ...

    def url_for(self, key: str) -> str: ...

    async def get_bytes(self, key: str) -> bytes: ...

    async def close(self) -> None: ...


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative path of '/'-separated segments, else raise InvalidKey."""
    if not key or len(key) > 1024:
        raise InvalidKey("key must be 1-1024 characters")
    if key.startswith("/") or "\\" in key or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise InvalidKey(f"key {key!r} is not a relative path")
    if any(seg in ("", ".", "..") for seg in key.split("/")):
        raise InvalidKey(f"key {key!r} has an empty, '.' or '..' segment")
    return key


def _recording_key(account_id: str, call_id: str) -> str:
    return validate_key(f"{account_id}/{call_id}.wav")


class LocalStorage:
    """Recordings stay on this node's disk; URLs are signed and expire."""

    retains_local_file = True

    def __init__(
        self,
        local_dir: str | os.PathLike[str],
        public_url: str,
        signing_key: bytes,
        ttl: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not signing_key:
            raise ValueError("signing_key must not be empty")
        self.root = Path(local_dir).resolve()
        self.public_url = public_url.rstrip("/")
        self._key = signing_key
        self.ttl = ttl
        self._clock = clock

    def key_for(self, account_id: str, call_id: str) -> str:
        return _recording_key(account_id, call_id)

    def path_for(self, key: str) -> Path:
        """The file behind `key`; InvalidKey when the key (or a symlink in it) leads outside local_dir."""
        validate_key(key)
        path = self.root.joinpath(*PurePosixPath(key).parts).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidKey(f"key {key!r} is outside the recordings directory")
        return path

    async def put(self, local_path: Path, key: str) -> None:
        await asyncio.to_thread(self._put_sync, Path(local_path), key)

    def _put_sync(self, local_path: Path, key: str) -> None:
        target = self.path_for(key)
        source = local_path.resolve()
        if source == target:
            if not target.is_file():
                raise FileNotFoundError(str(target))
            return
        # Copy then rename, so a crash never leaves a half-written file under the key.
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".moving")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        source.unlink()

    def signature(self, key: str, expires: int) -> str:
        msg = f"{key}\n{expires}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def url_for(self, key: str) -> str:
        validate_key(key)
        expires = int(self._clock()) + self.ttl
        query = urlencode({"expires": expires, "signature": self.signature(key, expires)})
        return f"{self.public_url}{RECORDINGS_PATH}/{quote(key, safe='/')}?{query}"

    def check(self, key: str, expires: int | str, signature: str, now: float | None = None) -> Verdict:
        """'ok', 'expired' (signature good, time passed) or 'invalid' (anything else)."""
        if isinstance(expires, str):
            if not expires.isascii() or not expires.isdigit() or str(int(expires)) != expires:
                return "invalid"
            expires = int(expires)
        try:
            validate_key(key)
        except InvalidKey:
            return "invalid"
        expected = self.signature(key, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return "invalid"
        if expires < (self._clock() if now is None else now):
            return "expired"
        return "ok"

    def verify(self, key: str, expires: int | str, signature: str, now: float | None = None) -> bool:
        return self.check(key, expires, signature, now) == "ok"

    async def get_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path_for(key).read_bytes)

    async def close(self) -> None:
        return None


class _Secret(Protocol):
    def get_secret_value(self) -> str: ...


class S3Settings(Protocol):
    """What S3Storage reads; `gateway.config.S3Config` has this shape."""

    @property
    def endpoint_url(self) -> str | None: ...
    @property
    def bucket(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def access_key_id(self) -> str | None: ...
    @property
    def secret_access_key(self) -> _Secret | None: ...
    @property
    def prefix(self) -> str: ...
    @property
    def url_mode(self) -> str: ...
    @property
    def public_base_url(self) -> str | None: ...
    @property
    def presign_ttl_seconds(self) -> int: ...


# S3 error codes that another attempt will not fix.
_PERMANENT_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "InvalidBucketName",
        "NoSuchBucket",
        "SignatureDoesNotMatch",
        "InvalidArgument",
        "AuthorizationHeaderMalformed",
    }
)
_RETRYABLE_4XX = frozenset({"RequestTimeout", "SlowDown", "Throttling", "ThrottlingException"})


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt might succeed (network trouble, 5xx, throttling, size mismatch)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(
            cur,
            FileNotFoundError | NoCredentialsError | PartialCredentialsError | ParamValidationError,
        ):
            return False
        if isinstance(cur, ClientError):
            err = cur.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(cur.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _PERMANENT_CODES:
                return False
            if code in _RETRYABLE_4XX or status in (408, 429) or status >= 500:
                return True
            return not 400 <= status < 500
        cur = cur.__cause__ or cur.__context__
    return True


class S3Storage:
    """An S3-compatible bucket (AWS, MinIO, moto). Blocking boto3 calls run on a private thread pool."""

    retains_local_file = False

    def __init__(
        self,
        config: S3Settings,
        *,
        transfer_config: TransferConfig | None = None,
        attempts: int = 4,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        boto_max_attempts: int = 3,
        max_workers: int = 4,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if config.url_mode == "public" and not config.public_base_url:
            raise ValueError("url_mode 'public' needs public_base_url")
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._sleep = sleep
        self.transfer = transfer_config or TransferConfig(
            multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4, use_threads=True
        )
        boto_config = BotoConfig(
            region_name=config.region,
            signature_version="s3v4",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": boto_max_attempts, "mode": "standard"},
            # Custom endpoints (MinIO, moto, most on-premises stores) want bucket-in-path URLs.
            s3={"addressing_style": "path" if config.endpoint_url else "auto"},
        )
        secret = config.secret_access_key
        session = boto3.session.Session()
        self._client: Any = session.client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
            config=boto_config,
        )
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="s3-upload")

    def key_for(self, account_id: str, call_id: str) -> str:
        return validate_key(f"{self.prefix}{_recording_key(account_id, call_id)}")

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def _with_retries(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        for attempt in range(1, self._attempts + 1):
            try:
                return await self._run(fn, *args)
            except Exception as exc:
                if attempt == self._attempts or not is_transient(exc):
                    raise
                delay = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)
                log.warning("s3 %s failed, retrying", what, extra={"attempt": attempt, "error": str(exc)})
                await self._sleep(delay)
        raise AssertionError("unreachable")

    def _upload_sync(self, local_path: Path, key: str) -> None:
        size = local_path.stat().st_size
        self._client.upload_file(
            str(local_path),
            self.bucket,
            key,
            ExtraArgs={"ContentType": CONTENT_TYPE},
            Config=self.transfer,
        )
        head = self._client.head_object(Bucket=self.bucket, Key=key)
        if int(head["ContentLength"]) != size:
            raise UploadNotConfirmed(
                f"s3://{self.bucket}/{key} has {head['ContentLength']} bytes, local {size}"
            )

    async def put(self, local_path: Path, key: str) -> None:
        validate_key(key)
        await self._with_retries("upload", self._upload_sync, Path(local_path), key)

    async def head(self, key: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._run(self._client.head_object, Bucket=self.bucket, Key=key)
        return result

    def url_for(self, key: str) -> str:
        if self.config.url_mode == "public":
            base = str(self.config.public_base_url).rstrip("/")
            return f"{base}/{quote(key, safe='/')}"
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self.config.presign_ttl_seconds,
        )
        return url

    def _get_sync(self, key: str) -> bytes:
        body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    async def get_bytes(self, key: str) -> bytes:
        return await self._run(self._get_sync, key)

    def _ensure_bucket_sync(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.config.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.config.region}
            self._client.create_bucket(**kwargs)

    async def ensure_bucket(self) -> None:
        """Create the bucket when it is missing (development setups; production buckets are provisioned)."""
        await self._run(self._ensure_bucket_sync)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
