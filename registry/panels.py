"""Sections that other apps add to the version and model pages, so that the registry never imports them.

An app registers a panel from its AppConfig.ready(): a template, included in the page, and a function
that gives the template its context for a version (the template reads it as `panel`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from registry.models import ModelVersion, RegisteredModel

PanelContext = Callable[[ModelVersion], dict[str, Any]]
ModelPanelContext = Callable[[RegisteredModel], dict[str, Any]]

# By template, in the order registered: registering a template again (ready() run twice) replaces it.
_version_panels: dict[str, PanelContext] = {}
_model_panels: dict[str, ModelPanelContext] = {}


@dataclass(frozen=True)
class Panel:
    template: str
    context: dict[str, Any]


def version_panel_register(*, template: str, context: PanelContext) -> None:
    _version_panels[template] = context


def version_panels(version: ModelVersion) -> list[Panel]:
    """The registered panels of the version page, each with its context for `version`."""
    return [Panel(template=template, context=context(version)) for template, context in _version_panels.items()]


def model_panel_register(*, template: str, context: ModelPanelContext) -> None:
    _model_panels[template] = context


def model_panels(model: RegisteredModel) -> list[Panel]:
    """The registered panels of the model page, each with its context for `model`."""
    return [Panel(template=template, context=context(model)) for template, context in _model_panels.items()]
