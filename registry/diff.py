"""Differences between two versions' params, metrics and schemas, for the version page."""

from dataclasses import dataclass, replace
from typing import Any

ADDED, REMOVED, CHANGED, SAME = "added", "removed", "changed", "same"


@dataclass(frozen=True)
class DiffRow:
    key: str
    old: Any
    new: Any
    change: str
    old_key: str | None = None  # the base version's name for it, when it differs (a pipeline step's prefix)

    @property
    def delta(self) -> float | None:
        """new - old for numbers, so metric changes read at a glance."""
        numeric = (int, float)
        if (
            self.change == CHANGED
            and isinstance(self.old, numeric)
            and isinstance(self.new, numeric)
            and not isinstance(self.old, bool)
            and not isinstance(self.new, bool)
        ):
            return float(self.new) - float(self.old)
        return None


def diff_mappings(old: dict[str, Any], new: dict[str, Any]) -> list[DiffRow]:
    rows = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            rows.append(DiffRow(key, None, new[key], ADDED))
        elif key not in new:
            rows.append(DiffRow(key, old[key], None, REMOVED))
        else:
            rows.append(DiffRow(key, old[key], new[key], SAME if old[key] == new[key] else CHANGED))
    return rows


def diff_params(old: dict[str, Any], new: dict[str, Any]) -> list[DiffRow]:
    """As `diff_mappings`, with a parameter matched across a pipeline prefix: a bare estimator's `C` and a
    pipeline's `classifier__C` are one parameter, compared, not one removed and another added. A name
    is matched only when one parameter on each side carries it, so that two steps' `C` stay apart."""
    removed = [key for key in old if key not in new]
    added = [key for key in new if key not in old]
    renamed: dict[str, str] = {}  # new key -> old key
    for key in added:
        before = [other for other in removed if _bare(other) == _bare(key)]
        if len(before) == 1 and sum(_bare(other) == _bare(key) for other in added) == 1:
            renamed[key] = before[0]
    aligned = {key: value for key, value in old.items() if key not in renamed.values()}
    aligned.update({key: old[was] for key, was in renamed.items()})
    return [
        replace(row, old_key=renamed[row.key]) if row.key in renamed else row for row in diff_mappings(aligned, new)
    ]


def _bare(key: str) -> str:
    return key.rsplit("__", 1)[-1]


def diff_schemas(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[DiffRow]:
    """One row per field, comparing everything but the name."""

    def by_name(fields: list[dict[str, Any]]) -> dict[str, Any]:
        return {field["name"]: describe_field(field) for field in fields}

    return diff_mappings(by_name(old), by_name(new))


def describe_field(field: dict[str, Any]) -> str:
    """A schema field as a reviewer reads it: "integer 0..100, optional"."""
    parts = [str(field.get("type", "?"))]
    if field.get("minimum") is not None or field.get("maximum") is not None:
        low = "" if field.get("minimum") is None else f"{field['minimum']:g}"
        high = "" if field.get("maximum") is None else f"{field['maximum']:g}"
        parts.append(f"{low}..{high}")
    if field.get("categories"):
        parts.append("{" + ", ".join(map(str, field["categories"])) + "}")
    text = " ".join(parts)
    return text if field.get("required", True) else f"{text}, optional"
