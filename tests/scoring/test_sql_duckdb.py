"""The model as a DuckDB SQL function, registered from the Python client against a running server: it
scores as the server scores, refuses what the server refuses, and reports its use back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from monitoring.services import report_request
from registry import workflow
from registry.client import ModelFactory, ModelFactoryError
from registry.models import ModelVersion
from registry.selectors import serving_engine
from registry.sql import SqlScoringError
from scoring.models import Prediction, SqlRun
from tests.conftest import PASSWORD, customers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def mf(live_server: Any, author: Any) -> ModelFactory:
    return ModelFactory.login(live_server.url, "ada", PASSWORD)


@pytest.fixture
def con() -> Any:
    connection = duckdb.connect()
    frame = customers(5000, seed=11)
    frame.insert(0, "customer_id", [f"c{i}" for i in range(len(frame))])
    connection.register("customers", frame)
    return connection


def server_scores(consumer_token: str, frame: pd.DataFrame) -> dict[str, Any]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {consumer_token}")
    answer = client.post("/api/models/churn/predict/", {"dataframe_records": frame.to_dict("records")}, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()


def test_it_scores_a_table_as_the_server_scores_it_and_reports_the_use(
    mf: ModelFactory, con: Any, production: ModelVersion, consumer_token: Any, author: Any
) -> None:
    scorer = mf.sql_function(con, "churn", name="churn_score", sample_rows=50)
    rows = con.sql(
        "SELECT customer_id, tenure, charges, contract, churn_score(tenure, charges, contract) AS label, "
        "churn_score_proba(tenure, charges, contract) AS p FROM customers ORDER BY customer_id"
    ).df()

    expected = server_scores(consumer_token[1], rows.head(300)[["tenure", "charges", "contract"]])
    assert rows["label"].head(300).tolist() == expected["predictions"]
    assert np.allclose(rows["p"].head(300), [p[1] for p in expected["probabilities"]], rtol=1e-9)
    assert (scorer.version, scorer.loaded.engine) == (production.number, serving_engine(version=production).engine)

    answer = scorer.report()
    assert (answer["rows_scored"], answer["rows_rejected"], answer["refused"]) == (10000, 0, "")  # two functions
    run = SqlRun.objects.get()
    assert (run.engine, run.function_name, run.user.username, run.version) == (
        "duckdb",
        "churn_score",
        "ada",
        production,
    )
    assert run.rows_logged == 50 == Prediction.objects.filter(user__username="ada", version=production).count()

    # Beside real-time usage on the version page, and in the next drift report.
    client = Client()
    client.force_login(author)
    panel = client.get(production.get_absolute_url()).content.decode().split('id="sql-usage"')[1].split("</section>")[0]
    assert "churn_score" in panel and "10,000" in panel and "Ada" in panel
    on_model_page = client.get("/models/churn/").content.decode().split('id="sql-usage"')[1].split("</section>")[0]
    assert "churn_score" in on_model_page and "v1" in on_model_page and "10,000" in on_model_page
    now = timezone.now()
    report = report_request(actor=author, model=production.model, start=now - timedelta(hours=1), end=now)
    report.refresh_from_db()
    assert report.status == "done" and report.rows_current == 300 + 50, report.error  # REST, then SQL


def test_a_value_outside_the_schema_is_a_counted_null_and_bad_columns_are_named(
    mf: ModelFactory, con: Any, production: ModelVersion
) -> None:
    scorer = mf.sql_function(con, "churn", name="churn_score", sample_rows=0)
    got = con.sql(
        "SELECT churn_score(t, c, k) FROM (VALUES (10, 50.0, 'monthly'), (-5, 50.0, 'monthly'), "
        "(NULL, 50.0, 'yearly'), (10, 50.0, 'weekly')) v(t, c, k)"
    ).fetchall()
    assert [row[0] is None for row in got] == [False, True, True, True]
    assert (scorer.rows_scored, scorer.rows_rejected) == (1, 3)

    with pytest.raises(
        duckdb.Error, match=r"takes 3 columns, in this order: tenure, charges, contract; it was given 2"
    ):
        con.sql("SELECT churn_score(tenure, charges) FROM customers").fetchall()
    with pytest.raises(duckdb.Error, match=r"argument 1 is tenure, which takes a number; it was given string"):
        con.sql("SELECT churn_score(contract, charges, contract) FROM customers").fetchall()


def test_a_version_is_pinned_and_one_that_may_not_score_is_refused_naming_the_one_to_use(
    mf: ModelFactory, con: Any, production: ModelVersion, author: Any, register: Any, reviewer: Any
) -> None:
    draft = register(production.model, author)
    with pytest.raises(ModelFactoryError) as refused:
        mf.sql_function(con, "churn", name="churn_score", version=draft.number)
    assert "churn version 2 is draft: only approved versions serve. Use version 1 instead." in str(refused.value)

    pinned = mf.sql_function(con, "churn", name="churn_v1", version=1)
    assert pinned.version == 1
    assert con.sql("SELECT churn_v1(10, 50.0, 'monthly')").fetchall()[0][0] is not None

    workflow.version_transition(actor=reviewer, version=production, action="deprecate", comment="Leaked labels.")
    with pytest.raises(ModelFactoryError, match="churn version 1 is marked do not use"):
        mf.sql_function(con, "churn", name="churn_again", version=1)
    # The function registered before learns it at its next report, and scores no more.
    assert pinned.report()["refused"]
    with pytest.raises(duckdb.Error, match="churn_v1 no longer scores: churn version 1 is marked do not use"):
        con.sql("SELECT churn_v1(10, 50.0, 'monthly')").fetchall()
    with pytest.raises(SqlScoringError):
        pinned.score(customers(3))


def test_only_those_who_may_run_batches_score_with_sql(
    live_server: Any, con: Any, production: ModelVersion, manager: Any
) -> None:
    as_manager = ModelFactory.login(live_server.url, manager.username, PASSWORD)
    with pytest.raises(ModelFactoryError) as refused:
        as_manager.sql_function(con, "churn", name="churn_score")
    assert refused.value.status_code == 403


def test_no_server_a_revoked_token_or_an_unknown_model_is_a_clear_error(
    live_server: Any, mf: ModelFactory, con: Any, production: ModelVersion
) -> None:
    with pytest.raises(ModelFactoryError) as unknown:
        mf.sql_function(con, "no-such-model", name="f")
    assert unknown.value.status_code == 404
    offline = ModelFactory("http://127.0.0.1:9", token="mfu_x")
    with pytest.raises(ModelFactoryError, match=r"Model Factory at http://127.0.0.1:9 cannot be reached"):
        offline.sql_function(con, "churn", name="f")
    token = mf.session.headers["Authorization"]
    mf.logout()
    mf.session.headers["Authorization"] = token  # revoked on the server, still sent
    with pytest.raises(ModelFactoryError) as revoked:
        mf.sql_function(con, "churn", name="f")
    assert revoked.value.status_code == 401
    assert not SqlRun.objects.exists()
