"""The bucket: a small typed wrapper over boto3 that speaks bytes, JSON and Parquet."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from shared.config import Settings
from shared.errors import CauceError, Conflict, DataError, NotFound, TransientError

if TYPE_CHECKING:  # pandas is imported where frames are read: serving never needs it
    import pandas as pd

P = ParamSpec("P")
R = TypeVar("R")

# Matched against the whole name (fullmatch): `$` alone would let a trailing newline through.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_name(name: str, *, what: str = "pipeline") -> str:
    """Return `name` if it is safe as one path segment of an object key, else raise DataError."""
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise DataError(
            f"{what} name {name!r} is not allowed: use letters, digits, '.', '_' or '-' "
            "(at most 100, starting with a letter or digit)",
            field=what,
        )
    return name


def _translate(fn: Callable[P, R]) -> Callable[P, R]:
    """Map boto errors to cauce's: missing keys, lost races and unreachable stores."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound") or status == 404:
                raise NotFound(str(exc)) from exc
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                raise Conflict(str(exc)) from exc
            if status is not None and status >= 500:
                raise TransientError(f"object store error: {exc}") from exc
            raise
        except NoCredentialsError as exc:
            raise CauceError(
                "no S3 credentials: set CAUCE_S3_ACCESS_KEY and CAUCE_S3_SECRET_KEY (or AWS_* "
                "variables), or point CAUCE_HOME at a stack started with `cauce up`"
            ) from exc
        except (BotoConnectionError, BotoCoreError) as exc:
            raise TransientError(f"object store unreachable: {exc}") from exc

    return wrapper


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object."""

    key: str
    etag: str
    size: int
    modified: str = ""


class Store:
    """Reads and writes objects in one bucket of any S3-compatible store."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """Build a store from settings; credentials fall back to boto3's own chain."""
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=5,
                read_timeout=60,
            ),
        )
        return cls(client, settings.bucket)

    @_translate
    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    @_translate
    def get_bytes(self, key: str, *, if_match: str | None = None) -> bytes:
        """The object's content; NotFound when it is missing, Conflict when its ETag is not
        `if_match`."""
        extra = {"IfMatch": if_match} if if_match is not None else {}
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read())

    @_translate
    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        """The object's content and ETag, for a later compare-and-swap."""
        response = self.client.get_object(Bucket=self.bucket, Key=key)
        return bytes(response["Body"].read()), str(response["ETag"])

    @_translate
    def head(self, key: str) -> ObjectInfo:
        """The object's ETag and size; NotFound when it is missing."""
        response = self.client.head_object(Bucket=self.bucket, Key=key)
        return ObjectInfo(
            key,
            str(response["ETag"]),
            int(response["ContentLength"]),
            response["LastModified"].isoformat(),
        )

    @_translate
    def modified(self, key: str) -> float:
        """When the store last wrote the object (epoch seconds by the store's clock, whole
        seconds); NotFound when it is missing."""
        return float(
            self.client.head_object(Bucket=self.bucket, Key=key)["LastModified"].timestamp()
        )

    @_translate
    def server_time(self) -> float:
        """The store's clock now, in epoch seconds: the `Date` header of a cheap request. Ages
        judged against it and `modified` never involve this machine's clock, so processes
        whose clocks disagree still agree on them."""
        response = self.client.head_bucket(Bucket=self.bucket)
        date = response["ResponseMetadata"]["HTTPHeaders"]["date"]
        # The header names a whole second; its middle is the best guess of the moment.
        return parsedate_to_datetime(date).timestamp() + 0.5

    def exists(self, key: str) -> bool:
        """Whether the object exists."""
        try:
            self.head(key)
        except NotFound:
            return False
        return True

    @_translate
    def metadata(self, key: str, *, if_match: str | None = None) -> dict[str, str]:
        """The object's user metadata (`x-amz-meta-*`), keys lower-case; Conflict when its ETag
        is not `if_match`."""
        extra = {"IfMatch": if_match} if if_match is not None else {}
        response = self.client.head_object(Bucket=self.bucket, Key=key, **extra)
        return {k.lower(): v for k, v in response.get("Metadata", {}).items()}

    @_translate
    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_none_match: bool = False,
        if_match: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Write the object and return its ETag; Conflict when a condition fails."""
        extra: dict[str, Any] = {"Metadata": metadata} if metadata else {}
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        if if_match is not None:
            extra["IfMatch"] = if_match
        response = self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **extra
        )
        return str(response["ETag"])

    def get_json(self, key: str) -> Any:
        """The object parsed as JSON."""
        return json.loads(self.get_bytes(key))

    def put_json(self, key: str, value: Any, **conditions: Any) -> str:
        """Write `value` as JSON and return the ETag."""
        data = json.dumps(value, indent=1, default=str, allow_nan=False).encode()
        return self.put_bytes(key, data, content_type="application/json", **conditions)

    def get_frame(self, key: str) -> pd.DataFrame:
        """The Parquet object as a DataFrame."""
        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.get_bytes(key)))

    def put_frame(self, key: str, frame: pd.DataFrame) -> str:
        """Write the frame as Parquet."""
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return self.put_bytes(key, buffer.getvalue(), content_type="application/vnd.apache.parquet")

    @_translate
    def copy(self, source: str, target: str, *, if_match: str | None = None) -> None:
        """Copy one object to another key in the same bucket; Conflict when the source's ETag is
        not `if_match` (it was replaced since it was listed)."""
        extra = {"CopySourceIfMatch": if_match} if if_match is not None else {}
        self.client.copy_object(
            Bucket=self.bucket,
            Key=target,
            CopySource={"Bucket": self.bucket, "Key": source},
            **extra,
        )

    @_translate
    def download(self, key: str, path: Path, *, if_match: str | None = None) -> None:
        """Stream an object to a local file (large objects never sit in memory whole); with
        `if_match`, exactly that version of it in one GET, Conflict when it was replaced."""
        if if_match is None:
            self.client.download_file(self.bucket, key, str(path))
            return
        response = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=if_match)
        with open(path, "wb") as out:
            shutil.copyfileobj(response["Body"], out, 1 << 20)

    @_translate
    def download_hashed(self, key: str, path: Path, *, if_match: str | None = None) -> str:
        """Stream an object to a local file a chunk at a time and return its sha256 (hex),
        computed on the way; with `if_match`, Conflict when the object was replaced."""
        extra = {"IfMatch": if_match} if if_match is not None else {}
        response = self.client.get_object(Bucket=self.bucket, Key=key, **extra)
        digest = hashlib.sha256()
        with open(path, "wb") as out:
            for chunk in response["Body"].iter_chunks(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest()

    @_translate
    def upload(self, path: Path, key: str) -> None:
        """Stream a local file to an object (multipart when large)."""
        self.client.upload_file(str(path), self.bucket, key)

    @_translate
    def delete(self, key: str) -> None:
        """Delete one object (only tests and explicit user actions call this)."""
        self.client.delete_object(Bucket=self.bucket, Key=key)

    @_translate
    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under `prefix`, in key order."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    item["Key"],
                    str(item["ETag"]),
                    int(item["Size"]),
                    item["LastModified"].isoformat(),
                )

    @_translate
    def children(self, prefix: str) -> list[str]:
        """The names of the 'folders' directly under `prefix` (which ends with '/')."""
        paginator = self.client.get_paginator("list_objects_v2")
        names: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            for item in page.get("CommonPrefixes", []):
                names.append(item["Prefix"][len(prefix) :].rstrip("/"))
        return names
