"""The training notebook registered with each demo version, outputs included.

The notebook is what a reviewer reads in the browser, so its outputs (a table, the metrics and a
chart) are computed here rather than by running a kernel. The chart is encoded as a PNG by hand:
matplotlib is not a dependency, and three bars do not need it.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

import nbformat
import numpy as np
import pandas as pd
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from demo.churn import (
    CATEGORICAL_FEATURES,
    FEATURES,
    NUMERIC_FEATURES,
    TARGET,
    TrainedVersion,
)

TRAINING_DATA_URI = "s3://demo-telco/crm/customers-2026-10.parquet"
CHART_WIDTH = 320
CHART_HEIGHT = 160
BAR_COLOUR = (76, 120, 168)
TEXT_COLOUR = (51, 51, 51)
AXIS_COLOUR = (170, 170, 170)

# A 3x5 pixel font, one glyph per entry: five rows, "#" for ink. Upper case only; anything
# missing is drawn as a space.
_GLYPHS = {
    "A": ".#. #.# ### #.# #.#",
    "B": "##. #.# ##. #.# ##.",
    "C": ".## #.. #.. #.. .##",
    "D": "##. #.# #.# #.# ##.",
    "E": "### #.. ##. #.. ###",
    "F": "### #.. ##. #.. #..",
    "G": ".## #.. #.# #.# .##",
    "H": "#.# #.# ### #.# #.#",
    "I": "### .#. .#. .#. ###",
    "J": "..# ..# ..# #.# .#.",
    "K": "#.# #.# ##. #.# #.#",
    "L": "#.. #.. #.. #.. ###",
    "M": "#.# ### ### #.# #.#",
    "N": "##. #.# #.# #.# #.#",
    "O": ".#. #.# #.# #.# .#.",
    "P": "##. #.# ##. #.. #..",
    "Q": ".#. #.# #.# ##. .##",
    "R": "##. #.# ##. #.# #.#",
    "S": ".## #.. .#. ..# ##.",
    "T": "### .#. .#. .#. .#.",
    "U": "#.# #.# #.# #.# ###",
    "V": "#.# #.# #.# #.# .#.",
    "W": "#.# #.# ### ### #.#",
    "X": "#.# #.# .#. #.# #.#",
    "Y": "#.# #.# .#. .#. .#.",
    "Z": "### ..# .#. #.. ###",
    "0": "### #.# #.# #.# ###",
    "1": ".#. ##. .#. .#. ###",
    "2": "##. ..# .#. #.. ###",
    "3": "##. ..# .#. ..# ##.",
    "4": "#.# #.# ### ..# ..#",
    "5": "### #.. ##. ..# ##.",
    "6": ".## #.. ### #.# ###",
    "7": "### ..# .#. .#. .#.",
    "8": "### #.# ### #.# ###",
    "9": "### #.# ### ..# ##.",
    "-": "... ... ### ... ...",
    "%": "#.# ..# .#. #.. #.#",
    ".": "... ... ... ... .#.",
}
_TEXT_SCALE = 2
_CHARACTER_WIDTH = 4 * _TEXT_SCALE  # three columns of ink and one of space


def encode_png(pixels: np.ndarray) -> bytes:
    """A PNG of an (height, width, 3) uint8 RGB array: 8-bit truecolour, no filtering."""
    height, width, _ = pixels.shape
    # Each scanline starts with its filter type; 0 means the bytes are stored as they are.
    scanlines = np.hstack([np.zeros((height, 1), np.uint8), pixels.reshape(height, width * 3)])

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 9)),
            chunk(b"IEND", b""),
        ]
    )


def _draw_text(pixels: np.ndarray, text: str, left: int, top: int, colour: tuple[int, int, int]) -> None:
    for position, character in enumerate(text.upper()):
        rows = _GLYPHS.get(character, "... ... ... ... ...").split()
        for row, line in enumerate(rows):
            for column, ink in enumerate(line):
                if ink == "#":
                    y = top + row * _TEXT_SCALE
                    x = left + position * _CHARACTER_WIDTH + column * _TEXT_SCALE
                    pixels[y : y + _TEXT_SCALE, x : x + _TEXT_SCALE] = colour


def bar_chart_png(title: str, bars: list[tuple[str, float]]) -> bytes:
    """Horizontal bars of rates in [0, 1], labelled with their names and percentages."""
    pixels = np.full((CHART_HEIGHT, CHART_WIDTH, 3), 255, np.uint8)
    margin = 8
    _draw_text(pixels, title, margin, margin, TEXT_COLOUR)
    label_width = max(len(name) for name, _ in bars) * _CHARACTER_WIDTH
    bars_left = margin + label_width + margin
    value_width = len("100%") * _CHARACTER_WIDTH
    longest_bar = CHART_WIDTH - bars_left - margin - value_width - margin
    largest = max((rate for _, rate in bars), default=0.0) or 1.0
    top = margin + 5 * _TEXT_SCALE + 2 * margin
    row_height = (CHART_HEIGHT - top - margin) // max(len(bars), 1)
    bar_height = max(row_height * 3 // 5, 2)
    text_height = 5 * _TEXT_SCALE
    for index, (name, rate) in enumerate(bars):
        row_top = top + index * row_height
        bar_top = row_top + (row_height - bar_height) // 2
        text_top = row_top + (row_height - text_height) // 2
        length = max(round(longest_bar * rate / largest), 1)
        pixels[bar_top : bar_top + bar_height, bars_left : bars_left + length] = BAR_COLOUR
        _draw_text(pixels, name, margin, text_top, TEXT_COLOUR)
        _draw_text(pixels, f"{rate:.0%}", bars_left + length + margin, text_top, TEXT_COLOUR)
    pixels[top - margin // 2 : top + len(bars) * row_height, bars_left - 1] = AXIS_COLOUR
    return encode_png(pixels)


def _python_literal(value: Any) -> str:
    # JSON spells strings with double quotes, as the repository's formatter would.
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _classifier_source(version: TrainedVersion) -> tuple[str, str]:
    """The classifier's import line and constructor call, from the fitted estimator."""
    classifier = version.estimator.named_steps["classifier"]
    name = type(classifier).__name__
    module = type(classifier).__module__.split("._")[0]
    accepted = classifier.get_params(deep=False)
    arguments = [f"{key}={_python_literal(value)}" for key, value in version.params.items() if key in accepted]
    return f"from {module} import {name}", _wrapped(f"{name}(", arguments, ")")


def _wrapped(opening: str, items: list[str], closing: str) -> str:
    """Items on one line when short, else one per line, as the formatter would lay them out."""
    one_line = opening + ", ".join(items) + closing
    if len(one_line) <= 80:
        return one_line
    return opening + "\n" + "".join(f"    {item},\n" for item in items) + closing


def _list_source(values: list[str]) -> str:
    return _wrapped("[", [json.dumps(value) for value in values], "]")


def build_notebook(version: TrainedVersion, *, number: int, customers: pd.DataFrame) -> str:
    """The notebook for one version as nbformat 4 JSON, with its outputs already filled in."""
    classifier_import, classifier_call = _classifier_source(version)
    classifier_name = type(version.estimator.named_steps["classifier"]).__name__
    test_size = version.params.get("test_size", 0.2)
    seed = version.params.get("random_state", 7)
    churn_rate = float(customers[TARGET].mean())
    by_contract = customers.groupby("contract")[TARGET].agg(customers="count", churn_rate="mean").round(3)
    bars = [(str(contract), float(rate)) for contract, rate in by_contract["churn_rate"].items()]
    chart = bar_chart_png("Churn rate by contract", bars)
    chart_description = "Churn rate by contract: " + ", ".join(f"{contract} {rate:.0%}" for contract, rate in bars)
    metrics_text = "".join(f"{name:<10} {value:.4f}\n" for name, value in version.metrics.items())
    held_out = round(len(customers) * test_size)

    cells = [
        new_markdown_cell(
            f"# Customer churn — version {number}\n"
            "\n"
            "**Purpose.** Predict which residential customers will cancel their contract in the "
            "next 90 days, so that the retention team can call them first. This notebook trains "
            f"version {number} (`{classifier_name}`) and records the metrics submitted with it.\n"
            "\n"
            f"**Data.** The nightly CRM extract: {len(customers):,} customers, "
            f"{len(FEATURES)} features, churn rate {churn_rate:.1%}. One row per customer; "
            f"`{TARGET}` is 1 when the customer left within 90 days of the snapshot."
        ),
        new_code_cell(
            f'import pandas as pd\n\ncustomers = pd.read_parquet("{TRAINING_DATA_URI}")\ncustomers.shape',
            outputs=[
                new_output(
                    "execute_result",
                    data={"text/plain": repr(customers.shape)},
                )
            ],
        ),
        new_markdown_cell(
            "## Churn by contract\n"
            "\n"
            "Month-to-month customers leave far more often than customers on one- or two-year "
            "contracts: the contract is the strongest single signal in the data."
        ),
        new_code_cell(
            "churn_by_contract = (\n"
            f'    customers.groupby("contract")["{TARGET}"]\n'
            '    .agg(customers="count", churn_rate="mean")\n'
            "    .round(3)\n"
            ")\n"
            "churn_by_contract",
            outputs=[
                new_output(
                    "execute_result",
                    data={
                        "text/html": by_contract.to_html(),
                        "text/plain": by_contract.to_string(),
                    },
                )
            ],
        ),
        new_code_cell(
            'churn_by_contract["churn_rate"].plot.barh(title="Churn rate by contract");',
            outputs=[
                new_output(
                    "display_data",
                    data={
                        "image/png": base64.b64encode(chart).decode("ascii"),
                        "text/plain": f"<Figure size {CHART_WIDTH}x{CHART_HEIGHT} with 1 Axes>",
                    },
                    # nbconvert reads the image's alternative text from here.
                    metadata={"image/png": {"alt": chart_description}},
                )
            ],
        ),
        new_markdown_cell(
            "## Training\n"
            "\n"
            "Numeric features are standardised and categorical ones one-hot encoded; categories "
            "unseen in training are ignored rather than rejected, so a new region does not stop "
            "scoring."
        ),
        new_code_cell(
            "from sklearn.compose import ColumnTransformer\n"
            f"{classifier_import}\n"
            "from sklearn.model_selection import train_test_split\n"
            "from sklearn.pipeline import Pipeline\n"
            "from sklearn.preprocessing import OneHotEncoder, StandardScaler\n"
            "\n"
            f"numeric = {_list_source(NUMERIC_FEATURES)}\n"
            f"categorical = {_list_source(CATEGORICAL_FEATURES)}\n"
            "features = numeric + categorical\n"
            "train, test = train_test_split(\n"
            f"    customers, test_size={test_size}, random_state={seed}, "
            f'stratify=customers["{TARGET}"]\n'
            ")\n"
            "preprocess = ColumnTransformer([\n"
            '    ("numeric", StandardScaler(), numeric),\n'
            '    ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), '
            "categorical),\n"
            "])\n"
            f"classifier = {classifier_call}\n"
            'model = Pipeline([("preprocess", preprocess), ("classifier", classifier)])\n'
            f'model.fit(train[features], train["{TARGET}"])\n'
            'print(f"Trained on {len(train):,} customers; {len(test):,} held out.")',
            outputs=[
                new_output(
                    "stream",
                    name="stdout",
                    text=f"Trained on {version.training_rows:,} customers; {held_out:,} held out.\n",
                )
            ],
        ),
        new_markdown_cell("## Evaluation on the held-out customers"),
        new_code_cell(
            "from sklearn import metrics\n"
            "\n"
            "predicted = model.predict(test[features])\n"
            "probability = model.predict_proba(test[features])[:, 1]\n"
            f'actual = test["{TARGET}"]\n'
            "scores = {\n"
            '    "accuracy": metrics.accuracy_score(actual, predicted),\n'
            '    "precision": metrics.precision_score(actual, predicted),\n'
            '    "recall": metrics.recall_score(actual, predicted),\n'
            '    "f1": metrics.f1_score(actual, predicted),\n'
            '    "roc_auc": metrics.roc_auc_score(actual, probability),\n'
            "}\n"
            "for name, score in scores.items():\n"
            '    print(f"{name:<10} {score:.4f}")',
            outputs=[new_output("stream", name="stdout", text=metrics_text)],
        ),
        new_markdown_cell(
            "## Conclusion\n"
            "\n"
            f"Version {number} reaches a ROC AUC of {version.metrics.get('roc_auc', 0.0):.3f} and "
            f"a recall of {version.metrics.get('recall', 0.0):.1%} on customers it never saw. "
            "The release notes compare it with the previous version."
        ),
    ]
    execution_count = 0
    for index, cell in enumerate(cells, start=1):
        # Fixed ids rather than random ones: the same version always yields the same file,
        # so re-running the demo does not show a spurious notebook diff.
        cell.id = f"cell-{index}"
        if cell.cell_type == "code":
            execution_count += 1
            cell.execution_count = execution_count
            for output in cell.outputs:
                if output.output_type == "execute_result":
                    output.execution_count = execution_count

    notebook = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python", "version": "3.11"},
        },
    )
    text: str = nbformat.writes(notebook)
    return text
