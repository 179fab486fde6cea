"""A registered model as a SQL function, scored where the data already is: a DuckDB connection in this
process, or Spark's executors.

    mf = ModelFactory("http://127.0.0.1:8000", token="…")
    scorer = mf.sql_function(con, "customer-churn", name="churn_score")
    con.sql("SELECT customer_id, churn_score(tenure_months, monthly_charges, …) FROM customers")
    udf = mf.spark_udf(spark, "customer-churn", name="churn_score")  # also in spark.sql(...)

Governed as every other prediction: the server decides which version may score (the production one unless
`version=` names another approved one; never one marked "do not use" or with types nobody accepted), the
client loads it exactly as the server does (the verified compiled graph, else the native model, each file
checked against its sha256), validates every batch against the version's input schema, and reports what it
scored, with a sample of rows for monitoring, at least every minute. A report answered with a refusal (the
version was marked do not use) stops the function. No Django imports: this runs in a notebook.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import requests

from registry import predictors
from registry.schema import FieldSpec, parse_schema, validate_rows
from registry.serving import LoadedModel, TreeLoopForest, argmax_predictor, with_encoder_categories

if TYPE_CHECKING:
    import pyarrow as pa


class ModelFactory(Protocol):
    """What the SQL functions use of the client (registry/client.py), which imports this module."""

    url: str
    session: requests.Session
    timeout: float

    def __init__(self, url: str) -> None: ...

    def _request(self, method: str, path: str, **kwargs: Any) -> Any: ...


logger = logging.getLogger(__name__)

REPORT_EVERY_SECONDS = 60.0
_NUMBERS, _TEXTS = ("integer", "float"), ("string", "category")


class SqlScoringError(RuntimeError):
    """The function may not score (any more), or was called with columns its model does not take."""


def _download(mf: ModelFactory, url: str, sha256: str, what: str) -> bytes:
    response = mf.session.get(url, timeout=mf.timeout)
    if response.status_code >= 400:
        raise SqlScoringError(f"Downloading the {what} failed: HTTP {response.status_code} {response.text[:300]}")
    data = response.content
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise SqlScoringError(f"The {what} downloaded has sha256 {found[:16]}…, not the registered {sha256[:16]}….")
    return data


def fetch_served(mf: ModelFactory, run: dict[str, Any]) -> bytes:
    """The bytes a run's version serves from: its verified compiled graph, else its artifact."""
    served = run["served"]
    if served["compiled"]:
        return _download(mf, served["compiled"]["download_url"], served["compiled"]["sha256"], "compiled graph")
    artifact = served["artifact"]
    return _download(mf, artifact["download_url"], artifact["sha256"], "artifact")


def build_served(run: dict[str, Any], data: bytes) -> LoadedModel:
    """The version a run opened, from the bytes `fetch_served` read, loaded as the server loads it
    (scoring/runtime.py `load`)."""
    served = run["served"]
    fields = parse_schema(served["input_schema"])
    predictor: predictors.Predictor
    if served["compiled"]:
        predictor = predictors.OnnxPredictor(data)
        fields = with_encoder_categories(fields, data)
        engine = "onnx"
    else:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / Path(served["artifact"]["filename"]).name
            path.write_bytes(data)
            predictor = predictors.load_artifact(path, served["format"], trusted_types=served["trusted_types"])
        engine = served["format"]
    labels_from_probabilities = argmax_predictor(predictor)
    TreeLoopForest.wrap(predictor)
    return LoadedModel(
        version_id=0,
        model_id=0,
        model_name=run["model"],
        number=run["version"],
        predictor=predictor,
        engine=engine,
        fields=fields,
        is_classifier=served["task"] == "classification",
        unknown_categories=served["unknown_categories"],
        input_logging="full",
        max_rows=0,
        thread_pools=None,  # one thread per call: onnxruntime's sessions already are
        labels_from_probabilities=labels_from_probabilities,
    )


class SqlScorer:
    """One registered function: the model, what it has scored since the last report, and the reports.

    `rows_scored` and `rows_rejected` count every row since registration; `sample_rows` is how many scored
    rows each report carries to the server's prediction log (0: none), drawn at random from the period."""

    def __init__(
        self,
        mf: ModelFactory,
        run: dict[str, Any],
        loaded: LoadedModel,
        *,
        sample_rows: int = 100,
        report_every: float = REPORT_EVERY_SECONDS,
    ):
        self.mf = mf
        self.run = run
        self.loaded = loaded
        self.function_name: str = run["function_name"]
        self.sample_rows = sample_rows
        self.report_every = report_every
        self.rows_scored = self.rows_rejected = 0
        self.refusal = ""
        self._lock = threading.Lock()
        self._pending = {"rows_scored": 0, "rows_rejected": 0, "seconds": 0.0}
        self._sample: list[dict[str, Any]] = []
        self._seen = 0  # scored rows the current sample was drawn from
        self._rng = np.random.default_rng()
        self._last_report = time.monotonic()

    @classmethod
    def open(
        cls,
        mf: ModelFactory,
        model: str,
        *,
        version: int | None,
        engine: str,
        function_name: str,
        sample_rows: int = 100,
        report_every: float = REPORT_EVERY_SECONDS,
    ) -> tuple[SqlScorer, bytes]:
        """Open a run on the server (which refuses a version that may not score) and load its model; the
        bytes it was loaded from, for executors elsewhere."""
        run = mf._request(
            "POST",
            f"/api/models/{model}/sql-runs/",
            json={"version": version, "engine": engine, "function_name": function_name},
        )
        data = fetch_served(mf, run)
        scorer = cls(mf, run, build_served(run, data), sample_rows=sample_rows, report_every=report_every)
        return scorer, data

    @property
    def version(self) -> int:
        return int(self.run["version"])

    @property
    def fields(self) -> list[FieldSpec]:
        return self.loaded.fields

    # --- scoring -------------------------------------------------------------------------------------

    def check_arguments(self, types: list[pa.DataType]) -> None:
        """Refuse a call whose columns cannot be the model's inputs, naming the column and what it takes."""
        import pyarrow as pa

        names = ", ".join(spec.name for spec in self.fields)
        if len(types) != len(self.fields):
            raise SqlScoringError(
                f"{self.function_name} takes {len(self.fields)} columns, in this order: {names}; it was given "
                f"{len(types)}."
            )
        for position, (spec, kind) in enumerate(zip(self.fields, types, strict=True), start=1):
            if pa.types.is_dictionary(kind):
                kind = kind.value_type
            fits = {
                "integer": pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind),
                "float": pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind),
                "boolean": pa.types.is_boolean(kind),
                "datetime": pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_string(kind),
                # A category may be written as a number in SQL (num_products = 2): the schema compares text.
                "category": pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind),
            }.get(spec.type, pa.types.is_string(kind) or pa.types.is_large_string(kind))
            if not (fits or pa.types.is_null(kind)):
                wanted = "a number" if spec.type in _NUMBERS else "text" if spec.type in _TEXTS else spec.type
                raise SqlScoringError(
                    f"{self.function_name}: argument {position} is {spec.name}, which takes {wanted}; it was given "
                    f"{kind}. The columns, in order: {names}."
                )

    def score(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Labels (or numbers), the positive class's probability for a binary classifier, and which rows were
        rejected (their values do not fit the schema: no score); raises once the version may not score."""
        if self.refusal:
            raise SqlScoringError(self.refusal)
        started = time.perf_counter()
        validation = validate_rows(frame, self.fields, unknown_categories=self.loaded.unknown_categories)
        good = ~validation.bad_rows
        # Typed as the model answers while every row scores (the usual case, and the fast one for the engine
        # to take back); with a None for each rejected row otherwise.
        labels: np.ndarray = np.full(len(frame), None, dtype=object)
        positive: np.ndarray | None = None
        if good.all():
            scored, probabilities = self.loaded.score(validation.columns)
            labels = np.asarray(scored)
            if probabilities is not None and probabilities.shape[1] == 2:
                positive = probabilities[:, 1]
            self._keep_sample(validation.columns, scored, probabilities)
        elif good.any():
            inputs = {name: values[good] for name, values in validation.columns.items()}
            scored, probabilities = self.loaded.score(inputs)
            labels[good] = scored
            if probabilities is not None and probabilities.shape[1] == 2:
                positive = np.full(len(frame), np.nan)
                positive[good] = probabilities[:, 1]
            self._keep_sample(inputs, scored, probabilities)
        self._count(int(good.sum()), int((~good).sum()), time.perf_counter() - started)
        return labels, positive, ~good

    def _keep_sample(self, inputs: dict[str, np.ndarray], labels: np.ndarray, probabilities: np.ndarray | None) -> None:
        """Reservoir sampling: each scored row of the period has the same chance to be in the report's sample."""
        if self.sample_rows <= 0:
            return
        n = len(labels)
        with self._lock:
            seen = self._seen + np.arange(1, n + 1)
            self._seen += n
            chosen = np.flatnonzero(self._rng.random(n) * seen <= self.sample_rows)
            for row in chosen:
                item = {
                    "inputs": {name: _plain(values[row]) for name, values in inputs.items()},
                    "output": _plain(labels[row]),
                    "probabilities": None if probabilities is None else [float(p) for p in probabilities[row]],
                }
                if len(self._sample) < self.sample_rows:
                    self._sample.append(item)
                else:
                    self._sample[int(self._rng.integers(self.sample_rows))] = item

    def _count(self, scored: int, rejected: int, seconds: float) -> None:
        with self._lock:
            self.rows_scored += scored
            self.rows_rejected += rejected
            self._pending["rows_scored"] += scored
            self._pending["rows_rejected"] += rejected
            self._pending["seconds"] += seconds
            due = time.monotonic() - self._last_report >= self.report_every
        if due:
            self.report()

    # --- reporting -----------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Send what was scored since the last report; the answer says whether the version may still score."""
        with self._lock:
            body = {**self._pending, "engine": self.loaded.engine, "sample": self._sample}
            self._pending = {"rows_scored": 0, "rows_rejected": 0, "seconds": 0.0}
            self._sample, self._seen = [], 0
            self._last_report = time.monotonic()
        answer: dict[str, Any] = self.mf._request("POST", f"/api/sql-runs/{self.run['id']}/usage/", json=body)
        if answer.get("refused"):
            self.refusal = f"{self.function_name} no longer scores: {answer['refused']}"
        return answer


def _plain(value: Any) -> Any:
    """A value as JSON carries it."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, pd.Timestamp | np.datetime64):
        return pd.Timestamp(value).isoformat()
    return value


# --- DuckDB -----------------------------------------------------------------------------------------


def _duckdb_label_type(loaded: LoadedModel) -> str:
    if not loaded.is_classifier:
        return "DOUBLE"
    predictor = loaded.predictor
    if isinstance(predictor, predictors.OnnxPredictor):
        kind = predictor.session.get_outputs()[0].type
        return "VARCHAR" if "string" in kind else "DOUBLE" if "float" in kind or "double" in kind else "BIGINT"
    classes = np.asarray(getattr(predictor, "classes", None) or [])
    if classes.dtype.kind in "iub":
        return "BIGINT"
    return "DOUBLE" if classes.dtype.kind == "f" else "VARCHAR"


def duckdb_function(
    mf: ModelFactory,
    con: Any,
    model: str,
    *,
    name: str,
    version: int | None = None,
    sample_rows: int = 100,
    report_every: float = REPORT_EVERY_SECONDS,
) -> SqlScorer:
    """Register `name(...)` (the label, or the number for regression) and, for a binary classifier,
    `name_proba(...)` (the positive class's probability) on the DuckDB connection `con`."""
    import pyarrow as pa

    scorer, _ = SqlScorer.open(
        mf,
        model,
        version=version,
        engine="duckdb",
        function_name=name,
        sample_rows=sample_rows,
        report_every=report_every,
    )
    names = [spec.name for spec in scorer.fields]

    def frame_of(columns: tuple[Any, ...]) -> pd.DataFrame:
        scorer.check_arguments([column.type for column in columns])
        return pa.table(list(columns), names=names).to_pandas()

    label_type = _duckdb_label_type(scorer.loaded)
    arrow_type = {"DOUBLE": pa.float64(), "BIGINT": pa.int64(), "VARCHAR": pa.string()}[label_type]

    def label(*columns: Any) -> Any:
        labels, _, rejected = scorer.score(frame_of(columns))
        if rejected.any():
            return pa.array([None if bad else _plain(v) for v, bad in zip(labels, rejected, strict=True)], arrow_type)
        return pa.array(labels, arrow_type)

    def probability(*columns: Any) -> Any:
        _, positive, rejected = scorer.score(frame_of(columns))
        if positive is None:
            raise SqlScoringError(f"{name}_proba: {model} v{scorer.version} gives no probability of two classes.")
        return pa.array(positive, mask=rejected, type=pa.float64())

    # NULLs reach the function ("special"): a NULL in a required column is a rejected row, counted.
    con.create_function(name, label, None, label_type, type="arrow", null_handling="special", side_effects=True)
    if scorer.loaded.is_classifier:
        con.create_function(
            f"{name}_proba", probability, None, "DOUBLE", type="arrow", null_handling="special", side_effects=True
        )
    atexit.register(_final_report, scorer)
    return scorer


def _final_report(scorer: SqlScorer) -> None:
    """What was scored since the last report, as the interpreter exits; a server that is gone by then is
    logged, not raised: there is nobody left to tell."""
    if scorer._pending["rows_scored"] or scorer._pending["rows_rejected"]:
        try:
            scorer.report()
        except Exception:
            logger.warning("The last use of %s could not be reported", scorer.function_name, exc_info=True)


# --- Spark ------------------------------------------------------------------------------------------

_SPARK_TYPES = {"DOUBLE": "double", "BIGINT": "bigint", "VARCHAR": "string"}
# The scorer of each run in this Python worker: an executor loads the model once, not per batch.
_executor_scorers: dict[tuple[str, int, str], SqlScorer] = {}
_executor_lock = threading.Lock()


def _executor_scorer(
    client: type[ModelFactory], run: dict[str, Any], data: bytes, url: str, authorization: str, sample_rows: int
) -> SqlScorer:
    key = (url, run["id"], run["started_at"])  # a run of one server, whatever else this worker scored
    with _executor_lock:
        scorer = _executor_scorers.get(key)
        if scorer is None:
            mf = client(url)
            mf.session.headers["Authorization"] = authorization
            scorer = SqlScorer(mf, run, build_served(run, data), sample_rows=sample_rows)
            _executor_scorers[key] = scorer
    return scorer


def _spark_frame(batch: Any, names: list[str]) -> pd.DataFrame:
    """A pandas UDF's batch as a frame of the model's columns: a struct column arrives as a frame, several
    columns as a tuple of series, one column as a series."""
    if isinstance(batch, pd.DataFrame):
        if list(batch.columns) == names:  # struct(*columns) of the model's own columns: the frame as it is
            return batch
        columns = [batch[column] for column in batch.columns]
    elif isinstance(batch, pd.Series):
        columns = [batch]
    else:
        # A struct among several columns arrives as a frame: as one column of records, so that
        # check_arguments names it as the struct it is.
        columns = [pd.Series(c.to_dict("records")) if isinstance(c, pd.DataFrame) else c for c in batch]
    if len(columns) != len(names):
        return pd.DataFrame({str(i): column for i, column in enumerate(columns)})  # check_arguments names the error
    return pd.DataFrame({name: column.to_numpy() for name, column in zip(names, columns, strict=True)})


def spark_udf(
    mf: ModelFactory,
    spark: Any,
    model: str,
    *,
    name: str,
    version: int | None = None,
    sample_rows: int = 100,
) -> Any:
    """A pandas UDF of `model`, registered for Spark SQL as `name` (and `name_proba` for a binary
    classifier): `df.withColumn("score", udf(struct(*cols)))` or `spark.sql("SELECT name(...) FROM t")`.

    The model's bytes travel to the executors once, in a broadcast; each Python worker loads them once.
    Every task asks the server first whether the version may still score, and reports what it scored
    when it ends, with a sample of up to `sample_rows` of its rows."""
    import warnings

    import pyarrow as pa
    from pyspark.sql.functions import PandasUDFType, pandas_udf

    scorer, data = SqlScorer.open(
        mf, model, version=version, engine="spark", function_name=name, sample_rows=sample_rows
    )
    run = scorer.run
    shipped = spark.sparkContext.broadcast(data)
    client, url, authorization = type(mf), mf.url, str(mf.session.headers.get("Authorization", ""))
    names = [spec.name for spec in scorer.fields]

    def batches_scored(batches: Any, probability: bool) -> Any:
        worker = _executor_scorer(client, run, shipped.value, url, authorization, sample_rows)
        worker.report()  # at the task's start: a version marked do not use since stops here
        checked = False
        for batch in batches:
            frame = _spark_frame(batch, names)
            if not checked:  # a task's batches are of one query: their columns' types are the first's
                worker.check_arguments(list(pa.Schema.from_pandas(frame, preserve_index=False).types))
                checked = True
            labels, positive, _ = worker.score(frame)
            if probability:
                if positive is None:
                    raise SqlScoringError(
                        f"{name}_proba: {model} v{worker.version} gives no probability of two classes."
                    )
                yield pd.Series(positive)
            else:
                yield pd.Series(labels)
        worker.report()

    with warnings.catch_warnings():
        # The iterator form without type hints is the one that takes a struct, several columns or one alike.
        warnings.simplefilter("ignore", UserWarning)
        udf = pandas_udf(
            lambda batches: batches_scored(batches, False),
            _SPARK_TYPES[_duckdb_label_type(scorer.loaded)],
            PandasUDFType.SCALAR_ITER,
        )
        spark.udf.register(name, udf)
        if scorer.loaded.is_classifier:
            spark.udf.register(
                f"{name}_proba",
                pandas_udf(lambda batches: batches_scored(batches, True), "double", PandasUDFType.SCALAR_ITER),
            )
    return udf
