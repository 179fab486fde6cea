"""Hostile content in a real browser: every text a user controls is crafted to run a script, and
no page that shows it runs one.

A model's title and description, release notes, a notebook, comments, review reasons, input
column names and category values, entity ids, batch rejects, actuals and alert names all carry
payloads that would set `window.__xss` and open an alert. Every page that shows them is opened
(and its charts hovered); the test fails if a dialog opens, `window.__xss` is set, or the page's
DOM holds an event handler, a `javascript:` URL, an inline script or a frame from the payloads
(the last catches an injection that only the Content-Security-Policy stopped).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io as sio
from django.core.files import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from monitoring import services as monitoring_services
from monitoring.models import Report
from registry import comments, consumers, registration, workflow
from registry.models import RegisteredModel
from scoring.batch.runs import run_start
from scoring.batch.services import job_create
from scoring.models import BatchReject
from tests.conftest import customers, notebook_json
from tests.e2e.test_review_journey import sign_in
from tests.factories import RegisteredModelFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def xss(tag: str) -> str:
    """Three ways to run a script from HTML, each recording `tag` if it ever runs."""
    run = f"window.__xss='{tag}';alert('{tag}')"
    return (
        f'<script>{run}</script><img src=x onerror="{run}">'
        f'<svg onload="{run}"><script>{run}</script></svg><a href="javascript:{run}">{tag}</a>'
    )


def short_xss(tag: str) -> str:
    """For fields with a length limit (a title, an alert's name)."""
    return f"<img src=x onerror=\"window.__xss='{tag}';alert(1)\"><script>alert('{tag}')</script>"


# Column names and category values: short, but each would run if rendered as HTML.
NUMBER = "<img src=x onerror=\"window.__xss='col';alert('col')\">"
CATEGORY = "<script>window.__xss='cat';alert('cat')</script>"
HOSTILE_VALUE = "<svg onload=\"window.__xss='value';alert('value')\">"
SAFE_VALUE = '"><img src=x onerror="window.__xss=\'attr\'">'

MARKDOWN = f"""# Release notes {xss("md-heading")}
{xss("md-html")}

[a javascript link](javascript:window.__xss='md-link')
[a data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)
<iframe src="javascript:window.__xss='md-iframe'"></iframe>
<object data="javascript:window.__xss='md-object'"></object>
<form action="javascript:window.__xss='md-form'"><button formaction="javascript:alert(1)">Go</button></form>
<a href="#" style="position:fixed;inset:0" onclick="window.__xss='md-onclick'">cover</a>
![pic](x" onerror="window.__xss='md-img')

| metric | value |
|---|---|
| {CATEGORY} | {NUMBER} |
"""

NOTEBOOK_OUTPUTS: list[dict[str, Any]] = [
    {"output_type": "display_data", "metadata": {}, "data": {"text/html": xss("nb-html")}},
    {"output_type": "display_data", "metadata": {}, "data": {"application/javascript": "window.__xss='nb-js'"}},
    {
        "output_type": "display_data",
        "metadata": {},
        "data": {"image/svg+xml": "<svg onload=\"window.__xss='nb-svg'\"><script>window.__xss='nb-svg'</script></svg>"},
    },
    {"output_type": "execute_result", "execution_count": 1, "metadata": {}, "data": {"text/markdown": MARKDOWN}},
    {"output_type": "stream", "name": "stdout", "text": xss("nb-stream")},
    {"output_type": "error", "ename": xss("nb-ename"), "evalue": xss("nb-evalue"), "traceback": [xss("nb-tb")]},
]

SCHEMA = [
    {"name": "tenure", "type": "integer", "minimum": 0, "maximum": 100},
    {"name": NUMBER, "type": "float", "minimum": 0, "maximum": 500},
    {"name": CATEGORY, "type": "category", "categories": [HOSTILE_VALUE, SAFE_VALUE]},
]

DOM_PROBLEMS = """() => {
  const problems = [];
  const urlAttributes = ["href", "src", "action", "formaction", "xlink:href", "data"];
  for (const element of document.querySelectorAll("*")) {
    for (const attribute of element.attributes) {
      const name = attribute.name.toLowerCase();
      const value = attribute.value.trim().toLowerCase().replace(/\\s/g, "");
      if (name.startsWith("on")) problems.push(`${element.tagName} ${name}`);
      if (urlAttributes.includes(name) && /^(javascript|vbscript|data:text)/.test(value)) {
        problems.push(`${element.tagName} ${name}=${value.slice(0, 40)}`);
      }
    }
    if (["IFRAME", "FRAME", "OBJECT", "EMBED", "BASE"].includes(element.tagName)) problems.push(element.tagName);
  }
  for (const script of document.querySelectorAll("script")) {
    if (!script.src && script.type !== "application/json" && script.textContent.includes("__xss")) {
      problems.push("inline script: " + script.textContent.slice(0, 40));
    }
  }
  return problems;
}"""


def _train(frame: pd.DataFrame) -> Pipeline:
    labels = ((frame[CATEGORY] == HOSTILE_VALUE) & (frame["tenure"] < 24)).astype(int)
    return Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [("numbers", StandardScaler(), ["tenure", NUMBER]), ("category", OneHotEncoder(), [CATEGORY])]
                ),
            ),
            ("classify", LogisticRegression()),
        ]
    ).fit(frame, labels)


def _hostile_frame(n: int, seed: int = 0) -> pd.DataFrame:
    frame = customers(n, seed=seed).rename(columns={"charges": NUMBER, "contract": CATEGORY})
    frame[CATEGORY] = frame[CATEGORY].map({"monthly": HOSTILE_VALUE, "yearly": SAFE_VALUE})
    return frame


@pytest.fixture
def hostile_world(author: Any, reviewer: Any, second_reviewer: Any, tmp_path: Path, settings: Any) -> dict[str, Any]:
    """A model in production whose every user-chosen text is a script, with traffic, actuals,
    a monitoring report, an open alert, a review history and a batch run with rejects."""
    model: RegisteredModel = RegisteredModelFactory.create(
        name="churn", title=short_xss("title"), description=MARKDOWN, owner=author
    )
    frame = _hostile_frame(300)
    pipeline = _train(frame)
    golden = frame.head(5).copy()
    golden["expected"] = pipeline.predict(frame.head(5))
    reference = io.BytesIO()
    frame.to_parquet(reference, index=False)
    notebook = json.loads(notebook_json(NOTEBOOK_OUTPUTS, markdown=MARKDOWN))
    notebook["cells"].append(
        {"cell_type": "markdown", "id": "links", "metadata": {}, "source": "[run](javascript:window.__xss='nb-link')"}
    )
    version = registration.version_register(
        actor=author,
        model=model,
        upload=registration.VersionUpload(
            artifact=SimpleUploadedFile("model.skops", sio.dumps(pipeline)),
            notebook=SimpleUploadedFile(f"{xss('nb-name')}.ipynb", json.dumps(notebook).encode()),
            golden_set=SimpleUploadedFile("golden.csv", golden.to_csv(index=False).encode()),
            reference_data=SimpleUploadedFile("reference.parquet", reference.getvalue()),
            release_notes=MARKDOWN,
            input_schema=json.dumps(SCHEMA),
            metrics=json.dumps({xss("metric"): 0.9, "auc": 0.91}),
            params=json.dumps({xss("param"): xss("param-value")}),
            environment=json.dumps({"python": "3.11.7", "libraries": {"scikit-learn": "1.9.1"}}),
            code_uri="javascript:window.__xss='code-uri'",
            training_data_uri=xss("training-uri"),
            code_commit=short_xss("c")[:64],
        ),
    )
    comments.comment_create(actor=reviewer, version=version, body=MARKDOWN)
    workflow.version_transition(actor=author, version=version, action="submit", comment=xss("submit"))
    workflow.version_transition(actor=reviewer, version=version, action="request_changes", comment=xss("changes"))
    workflow.version_transition(actor=author, version=version, action="submit", comment=MARKDOWN)
    workflow.version_transition(actor=reviewer, version=version, action="approve", comment=xss("approve"))
    version = workflow.version_transition(
        actor=second_reviewer, version=version, action="go_live", comment=xss("go-live")
    )
    version.refresh_from_db()
    assert version.status == "production", version.status

    _consumer, token = consumers.consumer_create(
        actor=author, model=model, name="call-centre", description=xss("consumer"), contact_email="cc@example.com"
    )
    traffic = _hostile_frame(300, seed=7)
    traffic.loc[traffic.index % 3 == 0, NUMBER] = 420.0
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    answer = client.post(
        "/api/models/churn/predict/",
        {
            "dataframe_records": traffic.to_dict("records"),
            "entity_ids": [f"{short_xss('entity')}-{i}" for i in range(300)],
        },
        format="json",
    )
    assert answer.status_code == 200, answer.content
    actuals = [{"prediction_id": pid, "actual": i % 2} for i, pid in enumerate(answer.json()["prediction_ids"])]
    assert client.post("/api/models/churn/actuals/", {"rows": actuals}, format="json").status_code in (200, 201)

    monitoring_services.monitoring_configure(
        actor=author, model=model, slice_columns=[CATEGORY], sensitive_columns=[CATEGORY], min_slice_rows=50
    )
    monitoring_services.watch(actor=reviewer, model=model, watching=True)
    monitoring_services.alert_rule_create(
        actor=author,
        model=model,
        name=short_xss("alert"),
        metric="drift_share",
        comparison=">",
        threshold=0.0,
    )
    now = timezone.now()
    report = monitoring_services.report_request(actor=author, model=model, start=now - timedelta(hours=1), end=now)
    report.refresh_from_db()
    assert report.status == Report.Status.DONE, report.error

    batch_input = _hostile_frame(60, seed=3)
    batch_input.insert(0, "customer_id", [f"{short_xss('batch-entity')}-{i}" for i in range(60)])
    batch_input.loc[5, "tenure"] = -4  # below the minimum: rejected with its value in the reason
    batch_input.loc[6, CATEGORY] = xss("unknown-category")
    upload = tmp_path / "customers.csv"
    batch_input.to_csv(upload, index=False)
    with upload.open("rb") as handle:
        job = job_create(
            actor=author,
            model=model,
            name="nightly",
            input_kind="upload",
            entity_column="customer_id",
            input_file=File(handle, name="customers.csv"),
            chunk_rows=25,
        )
    run = run_start(job=job, actor=author)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert BatchReject.objects.filter(run=run).count() >= 1
    return {"model": model, "version": version, "job": job, "run": run, "report": report}


class Watcher:
    """Records what a page must never do: open a dialog, log a blocked script, or fail with a 5xx."""

    def __init__(self, page: Any):
        self.dialogs: list[str] = []
        self.blocked: list[str] = []
        self.server_errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("response", self._response)

    def _response(self, response: Any) -> None:
        if response.status >= 500:
            self.server_errors.append(f"{response.status} {response.url}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: Any) -> None:
        text = message.text
        # Only refused scripts count here: a refused script is an injection the policy caught.
        if "Content Security Policy" in text and ("script-src" in text or "Executing inline" in text):
            self.blocked.append(text[:200])


def _visit(page: Any, url: str, problems: dict[str, list[str]], hover_charts: bool = True) -> None:
    page.goto(url)
    _visit_current(page, problems, hover_charts)


def _visit_current(page: Any, problems: dict[str, list[str]], hover_charts: bool = True) -> None:
    url = page.url
    page.wait_for_load_state("networkidle")
    if hover_charts:
        for chart in page.query_selector_all("[data-chart] .nsewdrag"):
            box = chart.bounding_box()
            if box:
                for fraction in (0.25, 0.5, 0.75):
                    page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] * fraction)
                    page.wait_for_timeout(50)
    page.wait_for_timeout(200)  # an <img onerror> fires after the load event
    found = list(page.evaluate(DOM_PROBLEMS))
    ran = page.evaluate("() => window.__xss")
    if ran is not None:
        found.append(f"window.__xss = {ran!r}")
    if found:
        problems[url] = found


def test_no_script_in_hostile_content_runs_on_any_page(
    live_server: Any,
    page: Any,
    hostile_world: dict[str, Any],
    reviewer: Any,
    author: Any,
    admin_user: Any,
    screenshot: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    model, version, job, run = (hostile_world[key] for key in ("model", "version", "job", "run"))
    watcher = Watcher(page)
    problems: dict[str, list[str]] = {}
    base = live_server.url
    slice_name = next(iter(hostile_world["report"].results.get("slices", {})), "")

    sign_in(page, live_server, reviewer.username)
    reviewer_pages = [
        f"{base}/",
        f"{base}/?q=%3Cscript%3E",
        f"{base}/models/churn/",
        f"{base}/models/churn/versions/{version.number}/",
        f"{base}/models/churn/production-at/?t=2099-01-01T00:00",
        f"{base}/reviews/",
        f"{base}/audit/",
        f"{base}/audit/?model=churn&action=version.",
        f"{base}/notifications/",
        f"{base}/monitoring/",
        f"{base}/models/churn/monitoring/",
        f"{base}/models/churn/batch/",
        f"{base}/models/churn/batch/{job.name}/",
        f"{base}/models/churn/batch/runs/{run.pk}/",
    ]
    for url in reviewer_pages:
        _visit(page, url, problems)

    # The version page really shows the hostile texts (as text), so the test is not vacuous.
    page.goto(f"{base}/models/churn/versions/{version.number}/")
    text = page.inner_text("body")
    assert "window.__xss='col'" in text  # a column name, escaped
    assert "Release notes" in text
    assert "window.__xss='nb-stream'" in text  # the notebook's stream output, shown as text
    screenshot("hostile-version")

    # The slice drill-down draws the two distributions under the hostile slice and column names.
    page.goto(f"{base}/models/churn/monitoring/")
    page.wait_for_selector('[data-chart="chart-slices"] .main-svg')
    assert "window.__xss='cat'" in page.inner_text("#slices")
    # Plotly draws the hostile column names as its axis labels (SVG text, not markup).
    assert "window.__xss='col'" in page.inner_text('[data-chart="chart-slices"]')
    screenshot("hostile-monitoring")
    drill = page.query_selector("#slices a")
    assert drill is not None
    drill.click()
    page.wait_for_selector('[data-chart="chart-distribution"] .main-svg')
    _visit(page, page.url, problems)
    assert slice_name

    page.goto(f"{base}/models/churn/batch/runs/{run.pk}/")
    assert "window.__xss='batch-entity'" in page.inner_text("body")  # rejected rows, by entity id
    screenshot("hostile-batch-run")

    # An actuals upload whose cells are scripts: the refusal names them, as text.
    actuals = tmp_path / "hostile-actuals.csv"
    pd.DataFrame({"entity_id": [short_xss("actual-entity"), "x"], "actual": [1, short_xss("actual")]}).to_csv(
        actuals, index=False
    )
    sign_in(page, live_server, author.username)
    page.goto(f"{base}/models/churn/monitoring/")
    page.set_input_files("#actuals-file", str(actuals))
    with page.expect_navigation():
        page.click("#actuals button[type=submit]")
    assert page.url.endswith("/models/churn/monitoring/"), page.url
    assert "actual" in page.inner_text(".messages, body")
    _visit_current(page, problems)
    screenshot("hostile-actuals-upload")

    for url in (f"{base}/notifications/", f"{base}/models/churn/", f"{base}/models/churn/batch/{job.name}/"):
        _visit(page, url, problems)

    sign_in(page, live_server, admin_user.username)
    for url in (
        f"{base}/admin/registry/registeredmodel/",
        f"{base}/admin/registry/registeredmodel/{model.pk}/change/",
        f"{base}/admin/registry/modelversion/",
        f"{base}/admin/registry/modelversion/{version.pk}/change/",
        f"{base}/admin/registry/auditevent/",
    ):
        _visit(page, url, problems, hover_charts=False)

    assert watcher.dialogs == [], watcher.dialogs
    assert problems == {}, json.dumps(problems, indent=1)
    assert watcher.blocked == [], watcher.blocked
    assert watcher.server_errors == [], watcher.server_errors
