"""Differences between two versions' params, metrics and schemas, for the version page."""

from dataclasses import dataclass
from typing import Any

ADDED, REMOVED, CHANGED, SAME = "added", "removed", "changed", "same"


@dataclass(frozen=True)
class DiffRow:
    key: str
    old: Any
    new: Any
    change: str

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
