"""Importing a version from an MLflow tracking server and model registry, through MLflow's REST API.

MLflow itself is not imported. The tracking server is asked for the registered version (by number or
alias), its source run (params, metrics, tags) and the files of its model directory, which it serves
through its artifact proxy (`mlflow server --serve-artifacts`). The directory is zipped and registered
like an uploaded MLflow zip, by `version_register`: all or nothing.

Model Factory fetches only from the hosts an administrator listed in MF_MLFLOW_ALLOWED_HOSTS. The URL is
checked as given, before any name is resolved or request made, and redirects are never followed: the
import cannot be used to make this server request an internal address.
"""

from __future__ import annotations

import logging
import math
import posixpath
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.db import IntegrityError

from config.api import ConflictError, UpstreamError
from registry import permissions, registration
from registry.artifacts import ZipLimits, megabytes
from registry.models import ModelVersion, RegisteredModel

logger = logging.getLogger(__name__)

_API = "/api/2.0/mlflow"
_ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# MLflow's system tags (mlflow.user, mlflow.source.*, ...) are read into fields of their own.
_SYSTEM_TAG_PREFIX = "mlflow."
_CHUNK = 1024 * 1024


class MlflowUnavailableError(UpstreamError):
    """The tracking server is unreachable, too slow, refused our credentials or did not answer as MLflow."""


class _MlflowRefusedError(Exception):
    """MLflow answered with one of its own errors (e.g. RESOURCE_DOES_NOT_EXIST) for what was asked."""


def _display_host(hostname: str) -> str:
    return f"[{hostname}]" if ":" in hostname else hostname


def _host_allowed(hostname: str, port: int, allowed: list[str]) -> bool:
    for entry in allowed:
        parts = urlsplit(f"//{entry}")
        host = parts.hostname or ""
        if parts.port is not None and parts.port != port:
            continue
        if host.startswith(".") and (hostname == host[1:] or hostname.endswith(host)):
            return True
        if hostname == host:
            return True
    return False


def tracking_uri_check(raw: str) -> str:
    """The tracking URI in one spelling (lower-case host, no default port, no trailing slash), if allowed.

    Raises ValidationError on tracking_uri. Nothing is resolved or fetched here.
    """
    uri = raw.strip()
    parts = urlsplit(uri)
    problem = None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.netloc:
        problem = "Must be the http:// or https:// address of an MLflow tracking server."
    elif "@" in parts.netloc:
        problem = (
            "Must not contain credentials: they would be stored with the version. An administrator sets "
            "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, instead."
        )
    elif parts.query or parts.fragment:
        problem = "Must be the server's address only, without ?query or #fragment."
    if problem:
        raise ValidationError({"tracking_uri": [problem]})
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError as exc:
        raise ValidationError({"tracking_uri": ["The port is not a number between 0 and 65535."]}) from exc
    hostname = parts.hostname or ""
    effective_port = port or _DEFAULT_PORTS[scheme]
    allowed = list(settings.MF_MLFLOW_ALLOWED_HOSTS)
    if not allowed:
        raise ValidationError(
            {
                "tracking_uri": [
                    "Importing from MLflow is turned off on this server: an administrator must list the "
                    "allowed tracking servers in MF_MLFLOW_ALLOWED_HOSTS."
                ]
            }
        )
    if not hostname or not _host_allowed(hostname, effective_port, allowed):
        raise ValidationError(
            {
                "tracking_uri": [
                    f"{_display_host(hostname)}:{effective_port} is not an allowed MLflow tracking server; "
                    "an administrator can add it to MF_MLFLOW_ALLOWED_HOSTS."
                ]
            }
        )
    netloc = _display_host(hostname) + (f":{port}" if port and port != _DEFAULT_PORTS[scheme] else "")
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


class _TrackingServer:
    """MLflow's REST API at one allowed tracking URI, with the configured credentials and timeout."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.timeout = settings.MF_MLFLOW_TIMEOUT_SECONDS
        self.session = requests.Session()
        # MLflow's own precedence: basic auth when a username and password are set, else the token.
        if settings.MLFLOW_TRACKING_USERNAME and settings.MLFLOW_TRACKING_PASSWORD:
            self.session.auth = (settings.MLFLOW_TRACKING_USERNAME, settings.MLFLOW_TRACKING_PASSWORD)
        elif settings.MLFLOW_TRACKING_TOKEN:
            self.session.headers["Authorization"] = f"Bearer {settings.MLFLOW_TRACKING_TOKEN}"

    def close(self) -> None:
        self.session.close()

    def _get(self, path: str, params: dict[str, str] | None = None, *, stream: bool = False) -> requests.Response:
        try:
            # Never redirected: a redirect could lead to a host that is not allowed.
            response = self.session.get(
                self.uri + path, params=params, timeout=self.timeout, allow_redirects=False, stream=stream
            )
        except requests.Timeout as exc:
            raise MlflowUnavailableError(
                f"The MLflow tracking server at {self.uri} did not answer within {self.timeout} s "
                "(MF_MLFLOW_TIMEOUT_SECONDS)."
            ) from exc
        except requests.RequestException as exc:
            raise MlflowUnavailableError(
                f"Could not reach the MLflow tracking server at {self.uri}: {type(exc).__name__}."
            ) from exc
        if response.is_redirect:
            location = response.headers.get("Location", "")
            response.close()
            raise MlflowUnavailableError(
                f"The MLflow tracking server at {self.uri} redirects to {location}; redirects are not followed, "
                "give the address it redirects to as the tracking URI."
            )
        if response.status_code in (401, 403):
            response.close()
            raise MlflowUnavailableError(
                f"The MLflow tracking server at {self.uri} refused Model Factory's credentials "
                f"(HTTP {response.status_code}); an administrator sets MLFLOW_TRACKING_TOKEN, or "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD."
            )
        if response.status_code != 200:
            body = _json_or_none(response)
            response.close()
            if response.status_code < 500 and body and body.get("error_code"):
                raise _MlflowRefusedError(f"{body['error_code']}: {body.get('message', '')}")
            detail = f": {body.get('message')}" if body and body.get("message") else ""
            raise MlflowUnavailableError(
                f"The MLflow tracking server at {self.uri} answered HTTP {response.status_code} to {path}{detail}"
            )
        return response

    def get_json(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        response = self._get(path, params)
        body = _json_or_none(response)
        if body is None:
            raise MlflowUnavailableError(
                f"{self.uri} answered {path} with something other than MLflow's JSON: is it an MLflow tracking server?"
            )
        return body

    def download(self, artifact_path: str, target: Path, budget: int) -> int:
        """Write one artifact to `target`; refuse it once it passes `budget` bytes. Returns its size."""
        size = 0
        try:
            with self._get(f"{_ARTIFACTS}/{quote(artifact_path)}", stream=True) as response, target.open("wb") as out:
                for chunk in response.iter_content(_CHUNK):
                    size += len(chunk)
                    if size > budget:
                        raise _TooLargeError
                    out.write(chunk)
        except requests.RequestException as exc:
            raise MlflowUnavailableError(
                f"The download of {artifact_path} from the MLflow tracking server at {self.uri} failed: "
                f"{type(exc).__name__}."
            ) from exc
        return size


class _TooLargeError(Exception):
    """A download passed the bytes it was allowed."""


def _json_or_none(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@dataclass(frozen=True)
class _Version:
    """The registered version as MLflow describes it."""

    name: str
    number: str
    source: str
    run_id: str
    status: str
    description: str
    tags: dict[str, str]


def _key_values(items: Any) -> dict[str, Any]:
    return {str(item["key"]): item.get("value") for item in items or [] if isinstance(item, dict) and "key" in item}


def _find_version(
    server: _TrackingServer, *, model_name: str, version: str | None, alias: str | None
) -> dict[str, Any]:
    try:
        if alias:
            answer = server.get_json(f"{_API}/registered-models/alias", {"name": model_name, "alias": alias})
        else:
            answer = server.get_json(f"{_API}/model-versions/get", {"name": model_name, "version": str(version)})
    except _MlflowRefusedError as refusal:
        # MLflow's message does not say whether the model or the version is missing: ask.
        try:
            server.get_json(f"{_API}/registered-models/get", {"name": model_name})
        except _MlflowRefusedError:
            raise ValidationError(
                {"model_name": [f"The MLflow registry at {server.uri} has no model named {model_name!r}."]}
            ) from refusal
        if alias:
            raise ValidationError({"alias": [f"The MLflow model {model_name!r} has no alias {alias!r}."]}) from refusal
        raise ValidationError({"version": [f"The MLflow model {model_name!r} has no version {version}."]}) from refusal
    found = answer.get("model_version")
    if not isinstance(found, dict) or not found.get("version"):
        raise MlflowUnavailableError(f"{server.uri} answered without the model version it was asked for.")
    return found


def _find_run(server: _TrackingServer, run_id: str) -> dict[str, Any] | None:
    """The source run, or None when MLflow no longer has it (the version is imported without its data)."""
    try:
        run = server.get_json(f"{_API}/runs/get", {"run_id": run_id}).get("run")
    except _MlflowRefusedError:
        return None
    return run if isinstance(run, dict) else None


def _artifact_root(artifact_uri: str, server: _TrackingServer) -> str:
    """The version's model directory as a path under the tracking server's artifact proxy."""
    parts = urlsplit(artifact_uri)
    own = urlsplit(server.uri)
    root = ""
    if parts.scheme == "mlflow-artifacts" and parts.netloc in ("", own.netloc):
        root = parts.path.strip("/")
    elif parts.scheme == own.scheme and parts.netloc == own.netloc and _ARTIFACTS + "/" in parts.path:
        root = parts.path.split(_ARTIFACTS + "/", 1)[1].strip("/")
    # An empty root would be the whole artifact store, not one model.
    if root:
        return root
    raise ValidationError(
        {
            "artifact": [
                f"MLflow keeps this version's files at {artifact_uri}, which its tracking server does not serve: "
                "start it with --serve-artifacts (the artifact proxy) so Model Factory can download them through it."
            ]
        }
    )


def _safe_name(name: Any) -> TypeGuard[str]:
    return isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\0")


def _list_files(server: _TrackingServer, root: str, limits: ZipLimits) -> dict[str, int]:
    """Every file of the model directory (relative path -> size MLflow reports), all sub-folders included."""
    files: dict[str, int] = {}
    folders = [""]
    listed = 0
    while folders:
        folder = folders.pop()
        listed += 1
        if listed > limits.max_members:
            # Folders count too: a server answering with endless empty folders must not keep us listing.
            raise ValidationError({"artifact": [f"The MLflow model has more than {limits.max_members} folders."]})
        answer = server.get_json(_ARTIFACTS, {"path": posixpath.join(root, folder) if folder else root})
        for entry in answer.get("files") or []:
            name = entry.get("path") if isinstance(entry, dict) else None
            if not _safe_name(name):
                raise MlflowUnavailableError(f"{server.uri} listed an artifact with an unsafe name: {name!r}.")
            relative = posixpath.join(folder, name) if folder else name
            if entry.get("is_dir"):
                folders.append(relative)
            else:
                files[relative] = int(entry.get("file_size") or 0)
        if len(files) > limits.max_members:
            raise ValidationError({"artifact": [f"The MLflow model has more than {limits.max_members} files."]})
    return files


def _download_zip(
    server: _TrackingServer, *, root: str, files: dict[str, int], limits: ZipLimits, directory: Path
) -> Path:
    """Download the files into `directory` and zip them as one MLflow model directory."""
    total = sum(files.values())
    too_large = ValidationError(
        {
            "artifact": [
                f"The MLflow model is larger than the limit of {megabytes(limits.max_uncompressed_bytes)} "
                "(MF_ZIP_MAX_UNCOMPRESSED_MB)."
            ]
        }
    )
    if total > limits.max_uncompressed_bytes:
        raise too_large
    budget = limits.max_uncompressed_bytes
    downloaded = directory / "files"
    for relative in files:
        target = downloaded / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # The sizes listed are MLflow's word: the bytes counted while downloading are what counts.
            budget -= server.download(posixpath.join(root, relative), target, budget)
        except _TooLargeError:
            raise too_large from None
    archive = directory / "model.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for relative in sorted(files):
            zipped.write(downloaded / relative, relative)
    return archive


def _fetch_model(server: _TrackingServer, found: _Version, directory: Path) -> tuple[str, Path]:
    """The version's artifact URI, and its model directory downloaded and zipped in `directory`."""
    try:
        download = server.get_json(
            f"{_API}/model-versions/get-download-uri", {"name": found.name, "version": found.number}
        )
        artifact_uri = str(download.get("artifact_uri", ""))
        root = _artifact_root(artifact_uri, server)
        limits = ZipLimits.from_settings()
        files = _list_files(server, root, limits)
        if "MLmodel" not in files:
            raise ValidationError(
                {
                    "artifact": [
                        f"MLflow has no MLmodel file for version {found.number} of {found.name!r} at {artifact_uri}: "
                        "it is not an MLflow model directory."
                    ]
                }
            )
        return artifact_uri, _download_zip(server, root=root, files=files, limits=limits, directory=directory)
    except _MlflowRefusedError as refusal:
        # E.g. the version deleted meanwhile, or a path MLflow refuses to serve.
        raise ValidationError(
            {"artifact": [f"MLflow refused the files of version {found.number} of {found.name!r}: {refusal}"]}
        ) from refusal


def _metrics(run: dict[str, Any] | None) -> tuple[dict[str, float], list[str]]:
    """The run's latest metric values; MLflow allows NaN and infinity, which a version cannot hold."""
    metrics: dict[str, float] = {}
    skipped: list[str] = []
    for key, value in _key_values((run or {}).get("data", {}).get("metrics")).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if math.isfinite(number):
            metrics[key] = number
        else:
            skipped.append(key)
    return metrics, skipped


def _describe(found: dict[str, Any], model_name: str) -> _Version:
    return _Version(
        name=str(found.get("name") or model_name),
        number=str(found["version"]),
        source=str(found.get("source", "")),
        run_id=str(found.get("run_id", "")),
        status=str(found.get("status", "READY")),
        description=str(found.get("description", "")),
        tags={key: str(value) for key, value in _key_values(found.get("tags")).items()},
    )


def _import_record(
    server: _TrackingServer,
    found: _Version,
    run: dict[str, Any] | None,
    *,
    alias: str | None,
    artifact_uri: str,
    skipped_metrics: list[str],
) -> dict[str, Any]:
    """What ModelVersion.mlflow["import"] keeps: where the version came from, with links back to MLflow."""
    info = (run or {}).get("info", {})
    run_tags = {key: str(value) for key, value in _key_values((run or {}).get("data", {}).get("tags")).items()}
    experiment_id = str(info.get("experiment_id", ""))
    registry_url = f"{server.uri}/#/models/{quote(found.name, safe='')}"
    return {
        "tracking_uri": server.uri,
        "model_name": found.name,
        "version": found.number,
        "alias": alias or None,
        "source": found.source,
        "artifact_uri": artifact_uri,
        "run_id": found.run_id,
        "run_name": str(info.get("run_name", "")),
        "experiment_id": experiment_id,
        "run_found": run is not None,
        "user": run_tags.get("mlflow.user", ""),
        "tags": {key: value for key, value in run_tags.items() if not key.startswith(_SYSTEM_TAG_PREFIX)},
        "system_tags": {key: value for key, value in run_tags.items() if key.startswith(_SYSTEM_TAG_PREFIX)},
        "version_tags": found.tags,
        "skipped_metrics": skipped_metrics,
        "registry_url": registry_url,
        "ui_url": f"{registry_url}/versions/{quote(found.number, safe='')}",
        "run_url": (
            f"{server.uri}/#/experiments/{quote(experiment_id, safe='')}/runs/{quote(found.run_id, safe='')}"
            if run is not None and experiment_id
            else ""
        ),
    }


def mlflow_source_key(*, tracking_uri: str, model_name: str, version: str) -> str:
    """The key that allows one import of an MLflow version per model (ModelVersion.mlflow_source)."""
    return f"{tracking_uri}#{model_name}/{version}"


def _already_imported(model: RegisteredModel, source: str, found: _Version, uri: str) -> ConflictError | None:
    existing = model.versions.filter(mlflow_source=source).values_list("number", flat=True).first()
    if existing is None:
        return None
    return ConflictError(
        f"Version {found.number} of the MLflow model {found.name!r} at {uri} was already imported "
        f"as version {existing} of {model.name}."
    )


def version_import_mlflow(
    *,
    actor: Any,
    model: RegisteredModel,
    tracking_uri: str,
    model_name: str,
    version: str | int | None = None,
    alias: str | None = None,
) -> ModelVersion:
    """Register a version of `model` from version `version` (or alias `alias`) of an MLflow registered model.

    Carries over the source run's params and metrics, its code reference, and where it all came from
    (ModelVersion.mlflow["import"]). Raises PermissionDenied; ValidationError by field for what the
    request asks that MLflow does not have, or a model that cannot be registered; ConflictError when that
    MLflow version was imported into this model before; MlflowUnavailableError when the tracking server
    cannot be reached or answers wrongly. Nothing is registered unless everything succeeds.
    """
    # Importing from MLflow registers a version: whoever may register one may import one.
    if not permissions.may_register_versions(actor):
        raise PermissionDenied("You may not register versions.")
    if (version in (None, "")) == (not alias):
        raise ValidationError({"version": ["Give the MLflow version number or an alias, one of the two."]})
    if version not in (None, "") and not re.fullmatch(r"[1-9][0-9]*", str(version)):
        raise ValidationError({"version": ["An MLflow version is a whole number, e.g. 3."]})
    if not model_name.strip():
        raise ValidationError({"model_name": ["Give the name of the model in the MLflow registry."]})
    uri = tracking_uri_check(tracking_uri)
    server = _TrackingServer(uri)
    staging = Path(tempfile.mkdtemp(prefix="mlflow-import-", dir=settings.FILE_UPLOAD_TEMP_DIR))
    try:
        found = _describe(
            _find_version(server, model_name=model_name, version=str(version or ""), alias=alias), model_name
        )
        source = mlflow_source_key(tracking_uri=uri, model_name=found.name, version=found.number)
        max_length = ModelVersion._meta.get_field("mlflow_source").max_length
        if max_length and len(source) > max_length:
            raise ValidationError({"tracking_uri": ["The tracking URI and model name are too long to record."]})
        conflict = _already_imported(model, source, found, uri)
        if conflict:
            raise conflict
        if found.status != "READY":
            raise ValidationError(
                {"version": [f"MLflow has not finished registering version {found.number} ({found.status})."]}
            )
        run = _find_run(server, found.run_id) if found.run_id else None
        artifact_uri, archive = _fetch_model(server, found, staging)
        metrics, skipped = _metrics(run)
        tags = _key_values((run or {}).get("data", {}).get("tags"))
        record = _import_record(server, found, run, alias=alias, artifact_uri=artifact_uri, skipped_metrics=skipped)
        with archive.open("rb") as handle:
            upload = registration.VersionUpload(
                artifact=File(handle, name=f"{found.name}-{found.number}.zip"),
                release_notes=found.description,
                params=_key_values((run or {}).get("data", {}).get("params")),
                metrics=metrics,
                code_uri=str(tags.get("mlflow.source.git.repoURL") or tags.get("mlflow.source.name") or "")[:500],
                code_commit=str(tags.get("mlflow.source.git.commit") or "")[:64],
                mlflow_import=record,
                mlflow_source=source,
            )
            try:
                imported = registration.version_register(actor=actor, model=model, upload=upload)
            except IntegrityError:
                # Another import of the same MLflow version committed between the check above and ours.
                conflict = _already_imported(model, source, found, uri)
                if conflict:
                    raise conflict from None
                raise
    finally:
        server.close()
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Imported %s from %s", imported, source)
    return imported
