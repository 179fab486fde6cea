"""Forms of the registry pages, and a service's refusal put before the user: the services check everything
again and name bad fields, which go onto the form, or into a message on the next page."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest

# Keys under which services and forms put errors that belong to no one field.
_NO_FIELD = frozenset({"", NON_FIELD_ERRORS, "detail"})


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


def field_errors(errors: Mapping[str, Any]) -> dict[str, list[str]]:
    """A serializer's errors as messages per field; an item of a list is named by its position
    ("item 2: Enter a valid slug"), where DRF nests its errors under the item's index."""
    found: dict[str, list[str]] = {}
    for field, value in errors.items():
        if isinstance(value, Mapping):
            found[field] = [f"item {int(index) + 1}: {message}" for index, inner in value.items() for message in inner]
        else:
            found[field] = [str(message) for message in value]
    return found


def flash_errors(request: HttpRequest, refusal: Exception | Mapping[str, Iterable[Any]]) -> None:
    """A refusal as one error message on the next page: a service's ValidationError or PermissionDenied,
    or a form's errors. Each field's errors as "field: ..."; errors of no particular field without a name."""
    if isinstance(refusal, Mapping):
        errors: Mapping[str, Iterable[Any]] = refusal
    elif isinstance(refusal, ValidationError):
        errors = refusal.message_dict if hasattr(refusal, "error_dict") else {"": refusal.messages}
    else:
        errors = {"": [str(refusal)]}
    parts = []
    for field, found in errors.items():
        text = " ".join(str(error) for error in found)
        parts.append(text if field in _NO_FIELD else f"{field}: {text}")
    messages.error(request, "; ".join(parts))
