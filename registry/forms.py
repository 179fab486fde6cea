"""Forms of the registry pages; the services check everything again and name bad fields."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest


class MlflowImportForm(forms.Form):
    tracking_uri = forms.CharField(label="Tracking server", max_length=250, help_text="e.g. https://mlflow.example.com")
    model_name = forms.CharField(label="Registered model in MLflow", max_length=200)
    version = forms.RegexField(
        label="Version", regex=r"^[1-9][0-9]*$", max_length=18, required=False, help_text="A number, or give an alias"
    )
    alias = forms.CharField(label="or alias", max_length=200, required=False, help_text="e.g. champion")


def form_apply_errors(form: forms.Form, exc: ValidationError) -> None:
    """A service's errors by field onto the form (errors of fields the form lacks go on top)."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def flash_errors(request: HttpRequest, exc: Exception) -> None:
    messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
