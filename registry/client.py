"""Python client for Model Factory, for data scientists in a notebook or a script.

    from registry.client import ModelFactory
    mf = ModelFactory("http://127.0.0.1:8000", token="…")   # or ModelFactory.login(url, user, password)
    mf.register("customer-churn", estimator, X_sample, release_notes="…", notebook="churn.ipynb",
                golden=(X_golden, y_golden), reference=X_train)

It needs no Django settings: only requests, pandas, scikit-learn and skops.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import platform
import subprocess
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from registry.schema import GOLDEN_EXPECTED_COLUMN, infer_schema

# Libraries whose versions decide whether a model reproduces; always captured when installed.
CORE_LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "skops", "joblib", "onnx", "onnxruntime")
_JSON_SCALARS = (str, int, float, bool, type(None))


class ModelFactoryError(Exception):
    """The server refused a request; `errors` maps each field to its reasons."""

    def __init__(self, status_code: int, errors: Any):
        self.status_code = status_code
        self.errors = errors
        super().__init__(f"HTTP {status_code}: {json.dumps(errors, indent=2) if errors else ''}")


def capture_environment(estimator: Any = None) -> dict[str, Any]:
    """Python, platform and the versions of the libraries the estimator is built from."""
    names = set(CORE_LIBRARIES)
    import_to_distribution = importlib.metadata.packages_distributions()
    for module in _estimator_modules(estimator):
        names.update(import_to_distribution.get(module.split(".")[0], []))
    libraries = {}
    for name in sorted(names, key=str.lower):
        try:
            libraries[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "libraries": libraries,
    }


def _estimator_modules(estimator: Any) -> set[str]:
    if estimator is None:
        return set()
    modules = {type(estimator).__module__}
    get_params = getattr(estimator, "get_params", None)
    if callable(get_params):
        for value in get_params(deep=True).values():
            if not isinstance(value, _JSON_SCALARS):
                modules.add(type(value).__module__)
    return {module for module in modules if module and module != "builtins"}


def estimator_params(estimator: Any) -> dict[str, Any]:
    """The hyper-parameters that are plain values (nested estimators appear as their class)."""
    params: dict[str, Any] = {}
    for key, value in sorted(estimator.get_params(deep=True).items()):
        if isinstance(value, float) and value != value:  # NaN is not JSON
            params[key] = None
        elif isinstance(value, _JSON_SCALARS):
            params[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, _JSON_SCALARS) for v in value):
            params[key] = list(value)
    return params


def output_schema(estimator: Any) -> list[dict[str, Any]]:
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        return [{"name": "prediction", "type": "category", "categories": [str(c) for c in classes]}]
    return [{"name": "prediction", "type": "float"}]


def capture_code_reference(directory: Path | None = None) -> tuple[str, str]:
    """The git remote and commit of the working directory, or empty strings outside a repository."""

    def git(*args: str) -> str:
        try:
            result = subprocess.run(  # noqa: S603 - fixed argv, no shell
                ["git", *args],  # noqa: S607 - git from PATH, as the user runs it
                cwd=directory,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    return git("config", "--get", "remote.origin.url"), git("rev-parse", "HEAD")


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """A sha256 of a DataFrame's values and columns, for a training-data reference."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _table_bytes(frame: pd.DataFrame, stem: str) -> tuple[str, bytes]:
    try:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return f"{stem}.parquet", buffer.getvalue()
    except ImportError:  # no pyarrow: CSV carries the same rows, with less type information
        return f"{stem}.csv", frame.to_csv(index=False).encode()


class ModelFactory:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        session: requests.Session | None = None,
        timeout: float = 600,
    ):
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout
        # When the token stops working (ISO 8601), as the server said at login; None for a given token.
        self.token_expiry: str | None = None
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    @classmethod
    def login(cls, url: str, username: str, password: str, *, session: requests.Session | None = None) -> ModelFactory:
        """Sign in for a new API token of this client's own; it expires (see `token_expiry`), and
        `logout()` revokes it. Too many wrong passwords lock the account out for a while (HTTP 429)."""
        client = cls(url, session=session)
        token = client._request("POST", "/api/auth/token/", data={"username": username, "password": password})
        client.session.headers["Authorization"] = f"Token {token['token']}"
        client.token_expiry = token.get("expiry")
        return client

    def logout(self) -> None:
        """Revoke this client's API token on the server; the client cannot be used afterwards."""
        self._request("POST", "/api/auth/token/revoke/")
        self.session.headers.pop("Authorization", None)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.session.request(method, f"{self.url}{path}", timeout=self.timeout, **kwargs)
        except requests.ConnectionError as exc:
            raise ModelFactoryError(0, {"detail": f"Model Factory at {self.url} cannot be reached: {exc}"}) from exc
        if response.status_code >= 400:
            try:
                errors = response.json()
            except ValueError:
                errors = response.text[:2000]
            raise ModelFactoryError(response.status_code, errors)
        return response.json() if response.content else None

    # --- reading ---------------------------------------------------------------------------

    def models(self, **filters: str) -> list[dict[str, Any]]:
        return self._paginate("/api/models/", filters)

    def model(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"/api/models/{name}/")

    def versions(self, name: str, **filters: str) -> list[dict[str, Any]]:
        return self._paginate(f"/api/models/{name}/versions/", filters)

    def version(self, name: str, number: int) -> dict[str, Any]:
        return self._request("GET", f"/api/models/{name}/versions/{number}/")

    def download(self, name: str, number: int, kind: str = "artifact", directory: str | Path = ".") -> Path:
        """Download a registered file (the first of that kind) and return its path."""
        version = self.version(name, number)
        matches = [item for item in version["files"] if item["kind"] == kind]
        if not matches:
            raise ModelFactoryError(404, {kind: [f"{name} v{number} has no {kind} file"]})
        item = matches[0]
        response = self.session.get(item["download_url"], timeout=self.timeout)
        if response.status_code >= 400:
            raise ModelFactoryError(response.status_code, response.text[:2000])
        target = Path(directory) / item["filename"]
        target.write_bytes(response.content)
        return target

    def _paginate(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        page = self._request("GET", path, params=dict(params))
        while True:
            results.extend(page["results"])
            if not page["next"]:
                return results
            response = self.session.get(page["next"], timeout=self.timeout)
            page = response.json()

    # --- writing ---------------------------------------------------------------------------

    def create_model(
        self,
        name: str,
        *,
        task: str,
        title: str = "",
        description: str = "",
        tags: Iterable[str] = (),
        business_context: str = "",
    ) -> dict[str, Any]:
        return self._request(
            "POST",
            "/api/models/",
            json={
                "name": name,
                "task": task,
                "title": title or name,
                "description": description,
                "tags": list(tags),
                "business_context": business_context,
            },
        )

    def register(
        self,
        name: str,
        estimator: Any,
        X_sample: pd.DataFrame,  # noqa: N803 - scikit-learn's naming
        *,
        release_notes: str = "",
        notebook: str | Path | None = None,
        golden: tuple[pd.DataFrame, Any] | pd.DataFrame | None = None,
        reference: pd.DataFrame | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        training_data: pd.DataFrame | None = None,
        training_data_uri: str = "",
        code_uri: str | None = None,
        code_commit: str | None = None,
        parent: int | None = None,
        documents: Iterable[str | Path] = (),
        onnx: str | Path | None = None,
        title: str = "",
        description: str = "",
        tags: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Serialise `estimator` with skops and register it as the next version of `name`.

        The model is created on first use (its task read from the estimator). The input schema
        is inferred from `X_sample`, the environment captured from this Python. `golden` is
        `(X, y)` with outputs you validated, or just `X` to take the estimator's predictions.
        """
        import skops.io as sio
        from sklearn.base import is_classifier

        if not isinstance(X_sample, pd.DataFrame):
            raise TypeError("X_sample must be a pandas DataFrame, so that column names and types are known")
        try:
            self.model(name)
        except ModelFactoryError as exc:
            if exc.status_code != 404:
                raise
            task = "classification" if is_classifier(estimator) else "regression"
            self.create_model(name, task=task, title=title, description=description, tags=tags)

        if code_uri is None or code_commit is None:
            found_uri, found_commit = capture_code_reference()
            code_uri = found_uri if code_uri is None else code_uri
            code_commit = found_commit if code_commit is None else code_commit
        environment = capture_environment(estimator)
        golden_inputs, expected = golden if isinstance(golden, tuple) else (golden, None)
        # Ranges and categories come from every table sent, so the golden set and the reference
        # data always fit the schema inferred for them.
        # A table that lacks a column is left out here and refused by the server with the reason.
        columns = list(X_sample.columns)
        schema_frames = [
            frame[columns]
            for frame in (X_sample, golden_inputs, reference)
            if frame is not None and set(columns) <= set(frame.columns)
        ]
        fields: dict[str, Any] = {
            "format": "skops",
            "release_notes": release_notes,
            "input_schema": json.dumps(infer_schema(pd.concat(schema_frames, ignore_index=True))),
            "output_schema": json.dumps(output_schema(estimator)),
            "params": json.dumps(dict(params) if params is not None else estimator_params(estimator)),
            "metrics": json.dumps(dict(metrics or {})),
            "environment": json.dumps(environment),
            "requirements": "\n".join(f"{lib}=={ver}" for lib, ver in environment["libraries"].items()),
            "training_data_uri": training_data_uri,
            "code_uri": code_uri,
            "code_commit": code_commit,
        }
        if training_data is not None:
            fields["training_data_rows"] = str(len(training_data))
            fields["training_data_sha256"] = frame_fingerprint(training_data)
        if parent is not None:
            fields["parent"] = str(parent)
        files: list[tuple[str, tuple[str, bytes]]] = [("artifact", (f"{name}.skops", sio.dumps(estimator)))]
        if notebook is not None:
            path = Path(notebook)
            files.append(("notebook", (path.name, path.read_bytes())))
        if golden_inputs is not None:
            table = golden_inputs.copy()
            table[GOLDEN_EXPECTED_COLUMN] = list(estimator.predict(golden_inputs) if expected is None else expected)
            files.append(("golden_set", ("golden_set.csv", table.to_csv(index=False).encode())))
        if reference is not None:
            files.append(("reference_data", _table_bytes(reference, "reference_data")))
        for document in documents:
            path = Path(document)
            files.append(("documents", (path.name, path.read_bytes())))
        if onnx is not None:
            files.append(("onnx", (Path(onnx).name, Path(onnx).read_bytes())))
        return self._request("POST", f"/api/models/{name}/versions/", data=fields, files=files)

    def register_file(
        self,
        name: str,
        artifact: str | Path,
        *,
        format: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Register an artifact file as it is (ONNX, an MLflow model zip, a skops file, …), or an MLflow
        model directory as MLflow saved it (zipped on the way)."""
        path = Path(artifact)
        data = {key: json.dumps(value) if isinstance(value, dict | list) else value for key, value in fields.items()}
        if format:
            data["format"] = format
        upload = (f"{path.name}.zip", mlflow_directory_zip(path)) if path.is_dir() else (path.name, path.read_bytes())
        return self._request("POST", f"/api/models/{name}/versions/", data=data, files=[("artifact", upload)])

    # --- scoring with SQL --------------------------------------------------------------------

    def sql_function(
        self, con: Any, model: str, *, name: str, version: int | None = None, sample_rows: int = 100
    ) -> Any:
        """Register `model` as the SQL function `name(...)` on a DuckDB connection (and `name_proba(...)` for a
        binary classifier): the production version, or the approved `version`. See registry/sql.py."""
        from registry.sql import duckdb_function

        return duckdb_function(self, con, model, name=name, version=version, sample_rows=sample_rows)

    def spark_udf(
        self, spark: Any, model: str, *, name: str, version: int | None = None, sample_rows: int = 100
    ) -> Any:
        """`model` as a pandas UDF, registered for Spark SQL as `name` (and `name_proba` for a binary
        classifier); needs `pip install model-factory[spark]`. See registry/sql.py."""
        from registry.sql import spark_udf

        return spark_udf(self, spark, model, name=name, version=version, sample_rows=sample_rows)


def mlflow_directory_zip(directory: Path) -> bytes:
    """An MLflow model directory (the one holding its MLmodel file) zipped as the registry takes it."""
    if not (directory / "MLmodel").is_file():
        raise ValueError(f"{directory} is not an MLflow model directory: it has no MLmodel file.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            # Links are left out: the registry refuses zips with links, and what they point to is not the model's.
            if path.is_file() and not path.is_symlink():
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


__all__ = ["ModelFactory", "ModelFactoryError", "capture_environment"]
