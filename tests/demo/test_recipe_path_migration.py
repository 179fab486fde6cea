"""Recipes saved while the demo lived in registry/demo/ keep retraining once it is the demo app."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps

from monitoring.models import RetrainingRecipe
from tests.factories import RegisteredModelFactory

pytestmark = pytest.mark.django_db

migration = importlib.import_module("monitoring.migrations.0004_demo_recipe_path")


def _recipe(callable_path: str) -> RetrainingRecipe:
    model: Any = RegisteredModelFactory()
    return RetrainingRecipe.objects.create(model=model, callable_path=callable_path, created_by=model.owner)


def test_it_rewrites_the_old_demo_package_and_nothing_else() -> None:
    demo = _recipe("registry.demo.churn:retrain")
    own = _recipe("tests.recipes:train")
    lookalike = _recipe("registry.demography:train")

    migration.forwards(apps, None)

    demo.refresh_from_db()
    own.refresh_from_db()
    lookalike.refresh_from_db()
    assert demo.callable_path == "demo.churn:retrain"
    assert own.callable_path == "tests.recipes:train"
    assert lookalike.callable_path == "registry.demography:train"


def test_it_reverses() -> None:
    demo = _recipe("demo.churn:retrain")
    lookalike = _recipe("demonstration.recipes:train")

    migration.backwards(apps, None)

    demo.refresh_from_db()
    lookalike.refresh_from_db()
    assert demo.callable_path == "registry.demo.churn:retrain"
    assert lookalike.callable_path == "demonstration.recipes:train"
