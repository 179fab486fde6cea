"""Compiling a scikit-learn model to an ONNX graph for fast serving: estimator in, ONNX bytes out.

Pure: no Django. The caller (registry/compilation_services.py `compilation_run`) stores the graph, and the
"Compiled model agrees" check (registry/checks/compiled.py) decides whether it may serve.

Precision: the graph computes in double where skl2onnx and onnxruntime allow it, so that tree
thresholds are not rounded to float32 (a rounded threshold sends rows near a split down the other
branch). Two things skl2onnx 1.20 does not do by itself, done here:

- it writes tree thresholds and leaf weights as float attributes (float32) even for double input;
  `_double_tree_attributes` hands them to ONNX as double tensors (`nodes_values_as_tensor` and the
  like, ai.onnx.ml opset 3) instead, and rounds the trees' input through float32 first, because
  scikit-learn's trees do exactly that (float32 values against double thresholds); without it, a
  value between its float32 rounding and itself took the other branch of a split near it (measured:
  4 of 320 rows of a 30-tree forest gave other probabilities);
- onnxruntime's TreeEnsembleRegressor and TreeEnsembleClassifier sum in double but only *output*
  float32; `_cast_tree_outputs` casts those outputs back to double, as the rest of the graph expects.
  That one float32 rounding of a sum (~6e-8 relative) is the only precision lost, well inside the
  check's 1e-6.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
# The order of the columns stacked into a single-tensor input, kept in the graph's metadata.
COLUMNS_METADATA = "model_factory.columns"
NUMBER, STRING = "number", "string"

_TREE_OPS = ("TreeEnsembleRegressor", "TreeEnsembleClassifier")
# The float-only output of each tree op: the regressor's values, the classifier's scores.
_FLOAT_OUTPUT = {"TreeEnsembleRegressor": 0, "TreeEnsembleClassifier": 1}
_DOUBLE_ATTRIBUTES = ("nodes_values", "nodes_hitrates", "base_values", "class_weights", "target_weights")
# skl2onnx's converters are shared module state: one conversion patches them at a time.
_PATCH_LOCK = threading.Lock()
_MAX_MESSAGE = 500
# Nodes that skl2onnx puts between a text input and its encoder, passing its values on unchanged
# (and Gather, which picks the column out of a one-column input).
_PASS_THROUGH = ("Identity", "Concat", "Cast", "Reshape", "Flatten")


class UnsupportedModelError(Exception):
    """The converter has no ONNX translation for a part of the model; the message names it."""


class CompilationError(Exception):
    """The converter or onnxruntime failed on a model it should handle."""


@dataclass(frozen=True)
class CompiledModel:
    onnx: bytes
    # How it was made, for the version page: library versions, opsets, precision and inputs.
    converter: dict[str, Any]


def compile_estimator(estimator: Any, columns: list[tuple[str, str]]) -> CompiledModel:
    """The estimator as an ONNX graph taking `columns` ((name, "number" | "string"), in the order the
    estimator was fitted on): one double tensor when every column is a number, else one input per column."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator

    if not columns:
        raise CompilationError("The model has no input columns to compile for.")
    all_numbers = all(kind == NUMBER for _, kind in columns)
    if all_numbers:
        initial_types: list[tuple[str, Any]] = [("X", DoubleTensorType([None, len(columns)]))]
    else:
        initial_types = [
            (name, DoubleTensorType([None, 1]) if kind == NUMBER else StringTensorType([None, 1]))
            for name, kind in columns
        ]
    final = _final_estimator(estimator)
    # Plain probability arrays rather than a list of {class: probability} dicts per row (ZipMap).
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    try:
        with _double_tree_attributes():
            graph = to_onnx(estimator, initial_types=initial_types, target_opset=TARGET_OPSET, options=options)
    except (MissingShapeCalculator, MissingConverter) as exc:
        raise UnsupportedModelError(f"{_unsupported_name(exc, estimator)} ({_first_line(exc)})") from exc
    except Exception as exc:  # a converter bug or an estimator state it cannot read
        raise CompilationError(
            f"skl2onnx could not convert the model: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    _cast_tree_outputs(graph)
    if all_numbers:
        entry = graph.metadata_props.add()
        entry.key, entry.value = COLUMNS_METADATA, json.dumps([name for name, _ in columns])
    data = graph.SerializeToString()
    _assert_loads(data)
    return CompiledModel(onnx=data, converter=_converter_info(graph, all_numbers=all_numbers, columns=len(columns)))


def column_kinds(names: list[str], types: dict[str, str]) -> list[tuple[str, str]]:
    """(name, kind) per column from the schema's field types: text and categories are strings."""
    for name in names:
        if types.get(name) in ("datetime", "binary"):
            raise UnsupportedModelError(
                f"unsupported: the {types[name]} column {name!r} (ONNX inputs here are numbers or text)"
            )
    return [(name, STRING if types.get(name) in ("string", "category") else NUMBER) for name in names]


def known_categories(data: bytes) -> dict[str, tuple[str, ...]]:
    """The text inputs of a graph that one of its encoders refuses outside a fixed list, with that list.

    A OneHotEncoder node with `zeros=0` (scikit-learn's `handle_unknown="error"`) fails the whole run on a
    value it does not know, with onnxruntime's words ("Unknown Category and zeros = 0"), naming neither
    the column nor the value; serving checks those columns' values first instead, by row and field.
    """
    import onnx
    from onnx import helper

    graph = onnx.load_model_from_string(data).graph
    inputs = {item.name for item in graph.input}
    producers = {output: node for node in graph.node for output in node.output}
    found: dict[str, tuple[str, ...]] = {}
    for node in graph.node:
        if node.domain != "ai.onnx.ml" or node.op_type != "OneHotEncoder" or not node.input:
            continue
        attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
        if attributes.get("zeros", 1) != 0 or not attributes.get("cats_strings"):
            continue
        name = node.input[0]
        while name not in inputs and name in producers:
            producer = producers[name]
            # A Gather picks the column out of its input, one column wide when text comes in per column.
            if producer.op_type != "Gather" and (producer.op_type not in _PASS_THROUGH or len(producer.input) != 1):
                break
            name = producer.input[0]
        if name in inputs:
            found[name] = tuple(value.decode() for value in attributes["cats_strings"])
    return found


def _final_estimator(estimator: Any) -> Any:
    while hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator


def _unsupported_name(exc: Exception, estimator: Any) -> str:
    """The class the converter could not handle, as "module.Class"."""
    message = str(exc)
    for part in _parts(estimator):
        if type(part).__name__ in message:
            return f"unsupported: {type(part).__module__}.{type(part).__qualname__}"
    return "unsupported"


def _parts(estimator: Any) -> Iterator[Any]:
    yield estimator
    for _, step in getattr(estimator, "steps", []):
        yield from _parts(step)
    for _, transformer, _ in getattr(estimator, "transformers_", []):
        if not isinstance(transformer, str):
            yield from _parts(transformer)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return line if len(line) <= _MAX_MESSAGE else line[:_MAX_MESSAGE] + "…"


@contextlib.contextmanager
def _double_tree_attributes() -> Iterator[None]:
    """Give tree ops their thresholds and weights as double tensors instead of float32 attributes."""
    from onnx import TensorProto, numpy_helper
    from skl2onnx.common._container import ModelComponentContainer

    original = ModelComponentContainer.add_node

    def add_node(
        self: Any, op_type: str, inputs: Any, outputs: Any, op_domain: str = "", op_version: Any = None, **attrs: Any
    ) -> Any:
        if op_domain == "ai.onnx.ml" and op_type in _TREE_OPS:
            # scikit-learn's trees round their input to float32 and compare it with double thresholds.
            # onnxruntime compares in double only for a double input: round through float32 and back.
            rounded, widened = f"{outputs[0]}_input_float32", f"{outputs[0]}_input_float32_double"
            self.add_node(
                "Cast", list(inputs) if isinstance(inputs, list) else [inputs], [rounded], to=TensorProto.FLOAT
            )
            self.add_node("Cast", [rounded], [widened], to=TensorProto.DOUBLE)
            inputs = [widened]
            for name in _DOUBLE_ATTRIBUTES:
                value = attrs.get(name)
                if isinstance(value, np.ndarray) and value.dtype == np.float64:
                    attrs[f"{name}_as_tensor"] = numpy_helper.from_array(value.ravel(), name=name)
                    del attrs[name]
            # The *_as_tensor attributes exist from ai.onnx.ml opset 3 on.
            op_version = max(op_version or 1, 3)
        return original(self, op_type, inputs, outputs, op_domain=op_domain, op_version=op_version, **attrs)

    with _PATCH_LOCK:
        ModelComponentContainer.add_node = add_node
        try:
            yield
        finally:
            ModelComponentContainer.add_node = original


def _cast_tree_outputs(graph: Any) -> None:
    """Cast each tree op's float32 output to double, where skl2onnx declared (and downstream expects) double."""
    from onnx import TensorProto, helper

    declared = {output.name: output.type.tensor_type.elem_type for output in graph.graph.output}
    nodes = []
    for node in graph.graph.node:
        nodes.append(node)
        if node.domain != "ai.onnx.ml" or node.op_type not in _FLOAT_OUTPUT:
            continue
        position = _FLOAT_OUTPUT[node.op_type]
        if len(node.output) <= position:
            continue
        name = node.output[position]
        # A graph output skl2onnx declared float stays float; everything else was typed as double.
        if declared.get(name) == TensorProto.FLOAT:
            continue
        node.output[position] = f"{name}_float32"
        nodes.append(helper.make_node("Cast", [f"{name}_float32"], [name], to=TensorProto.DOUBLE))
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)


def _assert_loads(data: bytes) -> None:
    import onnxruntime as ort

    try:
        ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for an invalid graph
        raise CompilationError(f"onnxruntime refused the compiled graph: {_first_line(exc)}") from exc


def _converter_info(graph: Any, *, all_numbers: bool, columns: int) -> dict[str, Any]:
    libraries = {}
    for name in ("skl2onnx", "onnx", "onnxruntime", "scikit-learn"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            libraries[name] = importlib.metadata.version(name)
    return {
        "libraries": libraries,
        "opsets": {entry.domain or "ai.onnx": entry.version for entry in graph.opset_import},
        "precision": "double",
        "inputs": "one double tensor" if all_numbers else f"{columns} inputs, one per column",
    }
