"""Forms of the monitoring page; the services check everything again and name bad fields."""

from __future__ import annotations

from typing import Any

from django import forms

from monitoring.models import MonitoringConfig
from monitoring.services import CONFIG_FIELDS


class ColumnsField(forms.CharField):
    """Column names, comma-separated in the page, a list in the database."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        return [part.strip() for part in (value or "").split(",") if part.strip()]


class MonitoringConfigForm(forms.ModelForm):
    slice_columns = ColumnsField(required=False, help_text="Input columns, comma-separated, e.g. region, contract")
    sensitive_columns = ColumnsField(required=False, help_text="Slice columns checked for fairness gaps")

    class Meta:
        model = MonitoringConfig
        fields = list(CONFIG_FIELDS)
        labels = {"fdr_correction": "False-discovery-rate correction (Benjamini-Hochberg)"}
