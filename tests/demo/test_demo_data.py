"""The demo's synthetic churn data, its two trained versions and their notebooks."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import nbformat
import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from demo.churn import (
    FEATURES,
    ID_COLUMN,
    TARGET,
    TrainedVersion,
    generate_customers,
    train_versions,
)
from demo.notebook import bar_chart_png, build_notebook, encode_png

CATEGORIES = {
    "contract": {"month-to-month", "one-year", "two-year"},
    "region": {"north", "south", "east", "west", "central"},
    "payment_method": {"electronic-check", "mailed-check", "bank-transfer", "credit-card"},
    "internet_service": {"dsl", "fiber", "none"},
}


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return generate_customers(5_000)


@pytest.fixture(scope="module")
def versions(customers: pd.DataFrame) -> list[TrainedVersion]:
    return train_versions(customers)


def _png_outputs(text: str) -> list[bytes]:
    notebook = nbformat.reads(text, as_version=4)
    return [
        base64.b64decode(output["data"]["image/png"])
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]


def test_it_generates_the_same_customers_for_the_same_seed() -> None:
    pd.testing.assert_frame_equal(generate_customers(2_000, 3), generate_customers(2_000, 3))
    assert not generate_customers(2_000, 3).equals(generate_customers(2_000, 4))


def test_it_generates_the_documented_columns_types_and_ranges(customers: pd.DataFrame) -> None:
    assert list(customers.columns) == [ID_COLUMN, *FEATURES, TARGET]
    assert len(customers) == 5_000
    assert not customers.isna().any().any()
    assert customers[ID_COLUMN].is_unique
    for column in [
        "tenure_months",
        "support_calls",
        "senior_citizen",
        "paperless_billing",
        "num_products",
        TARGET,
        ID_COLUMN,
    ]:
        assert pd.api.types.is_integer_dtype(customers[column]), column
    for column in ["monthly_charges", "total_charges"]:
        assert pd.api.types.is_float_dtype(customers[column]), column
    for column, allowed in CATEGORIES.items():
        assert set(customers[column]) == allowed, column
    assert customers["tenure_months"].between(0, 72).all()
    assert customers["monthly_charges"].between(18, 120).all()
    assert (customers["monthly_charges"].round(2) == customers["monthly_charges"]).all()
    assert (customers["total_charges"] >= 0).all()
    assert customers["support_calls"].between(0, 10).all()
    assert customers["num_products"].between(1, 6).all()
    for column in ["senior_citizen", "paperless_billing", TARGET]:
        assert set(customers[column]) == {0, 1}, column


def test_it_numbers_customers_from_start_id() -> None:
    frame = generate_customers(10, start_id=1_001)
    assert frame[ID_COLUMN].tolist() == list(range(1_001, 1_011))


def test_churn_is_plausible_and_follows_the_known_effects(customers: pd.DataFrame) -> None:
    assert 0.2 <= customers[TARGET].mean() <= 0.32
    by_contract = customers.groupby("contract")[TARGET].mean()
    assert by_contract["month-to-month"] > by_contract["one-year"] > by_contract["two-year"]
    by_service = customers.groupby("internet_service")[TARGET].mean()
    assert by_service["fiber"] > by_service["none"]
    many_calls = customers["support_calls"] >= 4
    assert customers[many_calls][TARGET].mean() > customers[~many_calls][TARGET].mean()


def test_a_price_increase_raises_charges_and_churn() -> None:
    before = generate_customers(5_000, seed=11)
    after = generate_customers(5_000, seed=11, price_increase=0.15)
    ratio = after["monthly_charges"].mean() / before["monthly_charges"].mean()
    assert ratio == pytest.approx(1.15, abs=0.01)
    assert after[TARGET].mean() > before[TARGET].mean()
    pd.testing.assert_series_equal(before["contract"], after["contract"])


def test_it_trains_a_baseline_and_a_boosted_version(versions: list[TrainedVersion]) -> None:
    baseline, boosted = versions
    assert baseline.params["classifier"] == "LogisticRegression"
    assert boosted.params["classifier"] == "HistGradientBoostingClassifier"
    for version in versions:
        assert set(version.metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
        assert all(0 <= value <= 1 for value in version.metrics.values())
        assert version.metrics["roc_auc"] > 0.75
        assert version.training_rows == 4_000
        json.dumps(version.params)
        assert "| ROC AUC |" in version.release_notes
    assert boosted.metrics["roc_auc"] >= baseline.metrics["roc_auc"] - 0.02
    assert "version 1" in boosted.release_notes


def test_golden_outputs_are_what_the_estimator_predicts(versions: list[TrainedVersion]) -> None:
    for version in versions:
        assert list(version.golden_inputs.columns) == FEATURES
        assert len(version.golden_inputs) == 20
        predicted = version.estimator.predict(version.golden_inputs)
        assert np.array_equal(np.asarray(version.golden_expected), predicted)
        assert set(np.unique(predicted)) <= {0, 1}


@pytest.mark.parametrize("index", [0, 1])
def test_estimators_round_trip_through_skops(
    versions: list[TrainedVersion], customers: pd.DataFrame, index: int
) -> None:
    estimator = versions[index].estimator
    data = sio.dumps(estimator)
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    inputs = customers[FEATURES].head(500)
    assert np.array_equal(loaded.predict(inputs), estimator.predict(inputs))


def test_the_notebook_is_valid_and_shows_its_outputs(versions: list[TrainedVersion], customers: pd.DataFrame) -> None:
    text = build_notebook(versions[1], number=2, customers=customers)
    notebook = nbformat.reads(text, as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[0].source.startswith("# Customer churn — version 2")
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert any("text/html" in output.get("data", {}) for output in outputs)
    streams = "".join(output["text"] for output in outputs if output.output_type == "stream")
    assert f"roc_auc    {versions[1].metrics['roc_auc']:.4f}" in streams
    images = _png_outputs(text)
    assert len(images) == 1
    assert images[0].startswith(b"\x89PNG")


def test_the_notebook_is_the_same_every_time(versions: list[TrainedVersion], customers: pd.DataFrame) -> None:
    first = build_notebook(versions[0], number=1, customers=customers)
    assert build_notebook(versions[0], number=1, customers=customers) == first


def test_the_png_encoder_writes_a_decodable_image() -> None:
    pixels = np.zeros((3, 4, 3), np.uint8)
    pixels[1, 2] = (255, 0, 0)
    png = encode_png(pixels)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    width, height, depth, colour_type = struct.unpack(">IIBB", png[16:26])
    assert (width, height, depth, colour_type) == (4, 3, 8, 2)
    data_length = struct.unpack(">I", png[33:37])[0]
    assert png[37:41] == b"IDAT"
    scanlines = zlib.decompress(png[41 : 41 + data_length])
    # One filter byte, then four RGB pixels, per row.
    assert len(scanlines) == 3 * (1 + 4 * 3)
    assert scanlines[13 + 1 + 2 * 3 : 13 + 1 + 3 * 3] == b"\xff\x00\x00"
    assert png.endswith(b"IEND\xaeB`\x82")


def test_the_chart_draws_the_longest_bar_for_the_highest_rate() -> None:
    png = bar_chart_png("Churn", [("low", 0.1), ("high", 0.5)])
    length = struct.unpack(">I", png[33:37])[0]
    scanlines = zlib.decompress(png[41 : 41 + length])
    width, height = struct.unpack(">II", png[16:24])
    pixels = np.frombuffer(scanlines, np.uint8).reshape(height, 1 + width * 3)[:, 1:]
    pixels = pixels.reshape(height, width, 3)
    bar_lengths = np.all(pixels == (76, 120, 168), axis=2).sum(axis=1)
    drawn = bar_lengths[bar_lengths > 0]
    assert sorted(set(drawn.tolist())) == [drawn[0], drawn[-1]]
    assert drawn[-1] == pytest.approx(5 * drawn[0], abs=2)
