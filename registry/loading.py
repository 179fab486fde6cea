"""Reading registered files back: every read checks the sha256 recorded at registration."""

from __future__ import annotations

import hashlib
from pathlib import Path

from registry import artifacts
from registry.choices import FileKind
from registry.models import ModelVersion, VersionFile

_CHUNK = 1024 * 1024


class ArtifactIntegrityError(Exception):
    """A stored file no longer has the bytes that were registered (and reviewed)."""


def verified_path(version_file: VersionFile) -> Path:
    path = Path(version_file.file.path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(
            f"{version_file.filename} of {version_file.version} is missing from the artifact store."
        ) from exc
    if digest.hexdigest() != version_file.sha256:
        raise ArtifactIntegrityError(
            f"{version_file.filename} of {version_file.version} was changed after registration: "
            f"its sha256 is {digest.hexdigest()[:16]}…, the registered one {version_file.sha256[:16]}…. "
            "It will not be used."
        )
    return path


def load_version_model(version: ModelVersion) -> artifacts.Predictor:
    """The version's model, loaded exactly as production loads it, or a clear refusal."""
    if not version.is_trusted:
        raise artifacts.UntrustedArtifactError(
            f"{version} has untrusted types that no reviewer has accepted yet: {', '.join(version.untrusted_types)}"
        )
    artifact = version.files.get(kind=FileKind.ARTIFACT)
    return artifacts.load_artifact(verified_path(artifact), version.format, trusted_types=version.untrusted_types)
