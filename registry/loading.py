"""Reading registered files back: every read checks the sha256 recorded at registration."""

from __future__ import annotations

import hashlib
from pathlib import Path

from registry import artifacts, predictors
from registry.choices import FileKind
from registry.models import Compilation, ModelVersion, VersionFile

_CHUNK = 1024 * 1024


class ArtifactIntegrityError(Exception):
    """A stored file no longer has the bytes that were registered (and reviewed)."""


def _sha256(path: Path, missing: str) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(missing) from exc
    return digest.hexdigest()


def verified_path(version_file: VersionFile) -> Path:
    path = Path(version_file.file.path)
    found = _sha256(path, f"{version_file.filename} of {version_file.version} is missing from the artifact store.")
    if found != version_file.sha256:
        raise ArtifactIntegrityError(
            f"{version_file.filename} of {version_file.version} was changed after registration: "
            f"its sha256 is {found[:16]}…, the registered one {version_file.sha256[:16]}…. "
            "It will not be used."
        )
    return path


def load_version_model(version: ModelVersion) -> predictors.Predictor:
    """The version's model, loaded exactly as production loads it, or a clear refusal."""
    if not version.is_trusted:
        raise artifacts.UntrustedArtifactError(
            f"{version} has untrusted types that no reviewer has accepted yet: {', '.join(version.untrusted_types)}"
        )
    artifact = version.files.get(kind=FileKind.ARTIFACT)
    return predictors.load_artifact(verified_path(artifact), version.format, trusted_types=version.untrusted_types)


def verified_compiled_path(compilation: Compilation) -> Path:
    """The compiled (or attached) ONNX graph, if its bytes are still those its sha256 names."""
    path = Path(compilation.file.path)
    found = _sha256(path, f"The compiled model of {compilation.version} is missing from the store.")
    if found != compilation.sha256:
        raise ArtifactIntegrityError(
            f"The compiled model of {compilation.version} was changed after compilation: its sha256 is "
            f"{found[:16]}…, the recorded one {compilation.sha256[:16]}…. It will not be used."
        )
    return path


def load_compiled_model(compilation: Compilation) -> predictors.OnnxPredictor:
    return predictors.OnnxPredictor(verified_compiled_path(compilation).read_bytes())
