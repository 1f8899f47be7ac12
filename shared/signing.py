"""Signed model manifests: HMAC-SHA256 over the files of a version, checked before any load."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from shared.errors import DataError

PREFIX = "hmac-sha256:"


def manifest(
    *, pipeline: str, version: int, run_id: str, files: dict[str, bytes]
) -> dict[str, Any]:
    """What a signature covers: the version's identity and the sha256 of each of its files."""
    return {
        "pipeline": pipeline,
        "version": version,
        "run_id": run_id,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }


def sign(content: dict[str, Any], key: bytes) -> str:
    """The signature of a manifest under `key`."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return PREFIX + hmac.new(key, canonical, hashlib.sha256).hexdigest()


def verify(record: dict[str, Any], key: bytes) -> dict[str, Any]:
    """The record's manifest if its signature is right under `key`; DataError otherwise."""
    name = f"model {record.get('pipeline')} v{record.get('version')}"
    content, signature = record.get("manifest"), record.get("manifest_signature")
    if not isinstance(content, dict) or not isinstance(signature, str):
        raise DataError(f"{name} is not signed; refusing to load it")
    if not hmac.compare_digest(sign(content, key), signature):
        raise DataError(
            f"{name}: its signature does not match (tampered with, or signed with "
            "another CAUCE_SIGNING_KEY); refusing to load it"
        )
    return content


def check_file(content: dict[str, Any], name: str, data: bytes) -> bytes:
    """`data` if it is the file the manifest names; DataError otherwise."""
    expected = content["files"].get(name)
    if expected is None or not hmac.compare_digest(hashlib.sha256(data).hexdigest(), expected):
        raise DataError(
            f"model {content['pipeline']} v{content['version']}: {name} does not "
            "match its signed manifest; refusing to load it"
        )
    return data
