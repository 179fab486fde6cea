"""Sections that other apps add to the version page, so that the registry never imports them.

An app registers a panel from its AppConfig.ready(): a template, included in the page, and a function
that gives the template its context for a version (the template reads it as `panel`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from registry.models import ModelVersion

PanelContext = Callable[[ModelVersion], dict[str, Any]]

# By template, in the order registered: registering a template again (ready() run twice) replaces it.
_version_panels: dict[str, PanelContext] = {}


@dataclass(frozen=True)
class Panel:
    template: str
    context: dict[str, Any]


def version_panel_register(*, template: str, context: PanelContext) -> None:
    _version_panels[template] = context


def version_panels(version: ModelVersion) -> list[Panel]:
    """The registered panels of the version page, each with its context for `version`."""
    return [Panel(template=template, context=context(version)) for template, context in _version_panels.items()]
