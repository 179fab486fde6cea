"""Hostile artifacts: a pickle that runs code, skops types nobody vouched for, and zips built to
escape their folder or to fill the disk. Nothing in them runs, nothing is unpacked, until a
reviewer trusted the version, and then only in the worker or serving code that loads models.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from sklearn.ensemble import RandomForestClassifier

from registry import artifacts, loading, predictors
from registry.artifacts import ArtifactError, UntrustedArtifactError, ZipLimits
from registry.checks.runner import run_checks
from registry.models import CheckRun, ModelVersion
from tests.registry.test_mlflow_models import model_zip

VERSIONS = "/api/models/churn/versions/"


class WritesMarker:
    """Unpickling this runs a shell command that creates `marker`: the classic pickle exploit."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def payload(marker: Path) -> bytes:
    return pickle.dumps(WritesMarker(marker), protocol=4)


@pytest.fixture
def load_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call that would deserialise a model, recorded (and still made, so a miss would show)."""
    calls: list[str] = []
    real_load = predictors.load_artifact

    def recording_load(path: Path, fmt: str, *, trusted_types: list[str]) -> predictors.Predictor:
        calls.append(fmt)
        return real_load(path, fmt, trusted_types=trusted_types)

    monkeypatch.setattr(predictors, "load_artifact", recording_load)
    return calls


def mlflow_zip_bytes(model: bytes) -> bytes:
    """The cloudpickle model MLflow itself wrote (tests/mlflow/fixtures), with `model` as its model.pkl."""
    return model_zip("cloudpickle_classifier", replace={"model.pkl": model})


# --- the payload is live ------------------------------------------------------------------------


def test_the_payload_really_runs_code_when_unpickled(payload: bytes, marker: Path) -> None:
    # Without this, "the marker is absent" below would prove nothing.
    pickle.loads(payload)  # noqa: S301 - the point of the test
    assert marker.exists()


@pytest.mark.parametrize("compress", [0, 3], ids=["plain", "zlib"])
def test_inspecting_a_malicious_joblib_lists_the_call_and_never_runs_it(
    tmp_path: Path, marker: Path, compress: int, load_calls: list[str]
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(WritesMarker(marker), path, compress=compress)

    inspection = artifacts.inspect_artifact(path)

    assert inspection.format == artifacts.PICKLE
    assert inspection.runs_code_on_load
    assert any(name.endswith(".system") for name in inspection.untrusted_types), inspection.untrusted_types
    assert not marker.exists()
    assert load_calls == []


def test_a_pickle_is_not_loaded_with_a_trust_list_that_omits_what_it_imports(
    tmp_path: Path, payload: bytes, marker: Path
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(payload)
    # A caller that passes some other version's accepted types must not load this file.
    with pytest.raises(UntrustedArtifactError, match=r"system"):
        predictors.load_artifact(path, artifacts.PICKLE, trusted_types=["sklearn.pipeline.Pipeline"])
    zipped = tmp_path / "model.zip"
    zipped.write_bytes(mlflow_zip_bytes(payload))
    with pytest.raises(UntrustedArtifactError, match=r"system"):
        predictors.load_artifact(zipped, artifacts.MLFLOW, trusted_types=["sklearn.pipeline.Pipeline"])
    assert not marker.exists()


# --- through the app: registration, pages, checks, serving ----------------------------------------


@pytest.fixture
def pickle_author(author: Any) -> Any:
    author.user_permissions.add(Permission.objects.get(codename="upload_pickle"))
    return author


@pytest.fixture
def malicious_version(
    api: Callable[[Any], Any], pickle_author: Any, churn_model: Any, version_files: Any, payload: bytes
) -> ModelVersion:
    response = api(pickle_author).post(
        VERSIONS, version_files(artifact=SimpleUploadedFile("model.pkl", payload)), format="multipart"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["format"] == "pickle"
    return ModelVersion.objects.get()


def _pages(version: ModelVersion) -> Iterator[str]:
    base = f"/models/{version.model.name}"
    yield "/"
    yield f"{base}/"
    yield f"{base}/versions/{version.number}/"
    yield f"{base}/production-at/?t=2030-01-01T00:00"
    yield f"{base}/monitoring/"
    yield f"{base}/batch/"
    yield "/reviews/"
    yield "/audit/"
    yield "/audit/?export=csv"
    yield "/monitoring/"
    for version_file in version.files.all():
        yield f"{base}/versions/{version.number}/files/{version_file.pk}/"


def test_registering_inspecting_and_browsing_a_malicious_pickle_never_unpickles_it(
    client: Any,
    api: Callable[[Any], Any],
    malicious_version: ModelVersion,
    pickle_author: Any,
    reviewer: Any,
    manager: Any,
    marker: Path,
    load_calls: list[str],
) -> None:
    assert malicious_version.requires_trust and not malicious_version.is_trusted
    assert any(name.endswith(".system") for name in malicious_version.untrusted_types)

    for user in (pickle_author, reviewer, manager):
        client.force_login(user)
        for url in _pages(malicious_version):
            response = client.get(url)
            assert response.status_code < 500, url
            if response.streaming:
                b"".join(response.streaming_content)
        for url in (f"{VERSIONS}", f"{VERSIONS}{malicious_version.number}/", f"{VERSIONS}1/checks/", "/api/audit/"):
            assert api(user).get(url).status_code == 200, url

    assert not marker.exists()
    assert load_calls == []


def test_checks_and_serving_refuse_an_untrusted_pickle_until_a_reviewer_accepts_it(
    api: Callable[[Any], Any],
    malicious_version: ModelVersion,
    pickle_author: Any,
    reviewer: Any,
    marker: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Neither submission nor approval starts checks that would have to load it (eager in tests)...
    with django_capture_on_commit_callbacks(execute=True):
        submitted = api(pickle_author).post(f"{VERSIONS}1/transitions/", {"action": "submit"}, format="json")
    assert submitted.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        answer = api(reviewer).post(f"{VERSIONS}1/transitions/", {"action": "approve"}, format="json")
    assert answer.status_code == 200, answer.json()
    assert not CheckRun.objects.filter(version=malicious_version).exists()
    # ...and the checks, the worker code that loads a model, refuse it when asked anyway.
    outcome = run_checks(ModelVersion.objects.get(pk=malicious_version.pk))
    assert not outcome.passed and "untrusted types" in json.dumps([r.as_json() for r in outcome.results])
    with pytest.raises(UntrustedArtifactError):
        loading.load_version_model(ModelVersion.objects.get(pk=malicious_version.pk))

    # Serving a pinned approved version is refused with a 4xx, not a crash and not a load.
    predict = api(pickle_author).post(
        f"{VERSIONS}1/predict/",
        {"dataframe_records": [{"tenure": 1, "charges": 20.0, "contract": "monthly"}]},
        format="json",
    )
    assert predict.status_code == 409 and "untrusted types" in predict.json()["detail"], predict.content
    assert not marker.exists()

    # The author may not vouch for their own pickle.
    accept = f"{VERSIONS}1/accept-untrusted-types/"
    assert api(pickle_author).post(accept, {"reason": "trust me"}, format="json").status_code == 403
    assert not marker.exists()

    # Once a reviewer accepts, the worker loads it: proof that trust was the only thing in the way.
    with django_capture_on_commit_callbacks(execute=True):
        assert api(reviewer).post(accept, {"reason": "read the notebook"}, format="json").status_code == 200
    assert marker.exists()


def test_an_mlflow_model_saved_with_pickle_needs_the_pickle_permission(
    api: Callable[[Any], Any], author: Any, churn_model: Any, version_files: Any, payload: bytes, marker: Path
) -> None:
    upload = SimpleUploadedFile("model.zip", mlflow_zip_bytes(payload))
    response = api(author).post(VERSIONS, version_files(artifact=upload, input_schema=None), format="multipart")
    assert response.status_code == 400
    assert "pickle" in response.json()["artifact"][0]
    assert not marker.exists()
    assert ModelVersion.objects.count() == 0


# --- skops ----------------------------------------------------------------------------------------


def test_skops_untrusted_types_are_refused_until_a_reviewer_accepts_them(
    api: Callable[[Any], Any], author: Any, reviewer: Any, churn_model: Any, version_files: Any
) -> None:
    frame = pd.DataFrame({"tenure": [1, 50, 3, 70], "charges": [20.0, 90.0, 30.0, 100.0], "contract": ["m"] * 4})
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(frame[["tenure", "charges"]], [0, 1, 0, 1])
    upload = SimpleUploadedFile("forest.skops", sio.dumps(forest))
    schema = json.dumps([{"name": "tenure", "type": "integer"}, {"name": "charges", "type": "float"}])
    response = api(author).post(
        VERSIONS,
        version_files(artifact=upload, input_schema=schema, golden_set=None, reference_data=None),
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    version = ModelVersion.objects.get()
    assert "sklearn.tree._tree.Tree" in version.untrusted_types
    with pytest.raises(UntrustedArtifactError, match="Tree"):
        loading.load_version_model(version)
    # Even a caller that skips the version's flag cannot load it with fewer types than it needs.
    with pytest.raises(UntrustedArtifactError, match="Tree"):
        predictors.load_artifact(loading.verified_path(version.files.get(kind="artifact")), "skops", trusted_types=[])

    accept = f"{VERSIONS}1/accept-untrusted-types/"
    assert api(author).post(accept, {}, format="json").status_code == 403
    assert api(reviewer).post(accept, {"reason": "trees are fine"}, format="json").status_code == 200
    predictor = loading.load_version_model(ModelVersion.objects.get())
    assert predictor.predict(frame[["tenure", "charges"]]).tolist() == [0, 1, 0, 1]


# --- zips -----------------------------------------------------------------------------------------


def _zip(members: Sequence[tuple[zipfile.ZipInfo | str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for info, data in members:
            archive.writestr(info, data)
    return buffer.getvalue()


def _symlink(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, so the mode bits are read
    info.external_attr = (0o120777 << 16) | 0x20
    return info


MLMODEL = b"flavors: {sklearn: {pickled_model: model.pkl, serialization_format: skops}}"


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([("MLmodel", MLMODEL), ("../../etc/cron.d/evil", b"* * * * * root rm -rf /")], "unsafe path: '../../etc"),
        ([("MLmodel", MLMODEL), ("model/../../evil.py", b"x")], "unsafe path"),
        ([("MLmodel", MLMODEL), ("/etc/passwd", b"root::0:0")], "unsafe path: '/etc/passwd'"),
        ([("MLmodel", MLMODEL), ("C:/Windows/evil.dll", b"x")], "unsafe path"),
        ([("MLmodel", MLMODEL), ("..\\..\\evil.bat", b"x")], "unsafe path"),
        ([("MLmodel", MLMODEL), (_symlink("model.pkl", "/etc/shadow"), b"/etc/shadow")], "symbolic link: 'model.pkl'"),
        ([("MLmodel", MLMODEL), ("model.pkl", b"a"), ("model.pkl", b"b")], "'model.pkl' twice"),
        ([("MLmodel", MLMODEL), ("model.pkl", b"\0" * (20 * 1024 * 1024))], "decompression bomb: 'model.pkl' expands"),
        (
            [("MLmodel", MLMODEL)] + [(f"part-{i}.bin", b"\0" * (900 * 1024)) for i in range(40)],
            "decompression bomb: it expands",
        ),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "drive", "backslash", "symlink", "duplicate", "bomb", "many-small"],
)
def test_unsafe_zips_are_refused_through_the_api_with_the_reason(
    api: Callable[[Any], Any],
    author: Any,
    churn_model: Any,
    version_files: Any,
    members: list[tuple[Any, bytes]],
    reason: str,
    load_calls: list[str],
) -> None:
    with pytest.warns(UserWarning, match="Duplicate name") if "twice" in reason else _no_warning():
        data = _zip(members)
    response = api(author).post(
        VERSIONS, version_files(artifact=SimpleUploadedFile("model.zip", data)), format="multipart"
    )
    assert response.status_code == 400, response.content
    message = response.json()["artifact"][0]
    assert reason in message, message
    assert ModelVersion.objects.count() == 0
    assert load_calls == []


class _no_warning:  # noqa: N801 - used like pytest.warns
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_skops_file_with_a_traversal_member_is_refused(tmp_path: Path) -> None:
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(np.eye(4), [0, 1, 0, 1])
    buffer = io.BytesIO(sio.dumps(forest))
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("../escape.txt", b"x")
    path = tmp_path / "model.skops"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ArtifactError, match="unsafe path"):
        artifacts.inspect_artifact(path)


def test_the_zip_limits_come_from_the_settings(
    settings: Any, api: Callable[[Any], Any], author: Any, churn_model: Any, version_files: Any, tmp_path: Path
) -> None:
    # 3 MB of random bytes: incompressible, so only the size limit can refuse it.
    members = [("MLmodel", MLMODEL), ("model.pkl", np.random.default_rng(0).bytes(3 * 1024 * 1024))]
    settings.MF_ZIP_MAX_UNCOMPRESSED_BYTES = 2 * 1024 * 1024
    response = api(author).post(
        VERSIONS, version_files(artifact=SimpleUploadedFile("model.zip", _zip(members))), format="multipart"
    )
    assert response.status_code == 400
    assert "more than the limit of 2 MB (MF_ZIP_MAX_UNCOMPRESSED_MB)" in response.json()["artifact"][0]

    # 2 MB of zeros compress ~1000x: refused at the default ratio, allowed once the ratio is raised.
    zeros = tmp_path / "zeros.zip"
    zeros.write_bytes(_zip([("MLmodel", MLMODEL), ("model.pkl", b"\0" * (2 * 1024 * 1024))]))
    settings.MF_ZIP_MAX_UNCOMPRESSED_BYTES = 64 * 1024 * 1024
    with pytest.raises(ArtifactError, match="200x"):
        artifacts.check_zip(zeros, ZipLimits.from_settings())
    settings.MF_ZIP_MAX_COMPRESSION_RATIO = 5000
    artifacts.check_zip(zeros, ZipLimits.from_settings())


def test_a_bomb_is_refused_from_its_headers_without_inflating_it(tmp_path: Path) -> None:
    # 128 MB of zeros in a ~130 kB zip: refusing it must not cost the time to inflate it.
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("model.pkl", "w", force_zip64=True) as member:
            chunk = b"\0" * (16 * 1024 * 1024)
            for _ in range(8):
                member.write(chunk)
        archive.writestr("MLmodel", MLMODEL)
    assert path.stat().st_size < 1024 * 1024
    started = time.perf_counter()
    with pytest.raises(ArtifactError, match="decompression bomb"):
        artifacts.inspect_artifact(path, "mlflow")
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"took {elapsed:.2f} s: the bomb was inflated"
