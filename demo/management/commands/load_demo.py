from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.wsgi import get_wsgi_application
from django.db import transaction

from demo import monitoring as monitoring_demo
from demo.churn import FEATURES, TARGET, generate_customers, train_versions
from demo.notebook import build_notebook
from demo.transport import WSGIAdapter
from monitoring.retraining import load_callable
from registry import roles
from registry.client import ModelFactory
from registry.models import RegisteredModel

DEMO_MODEL = "customer-churn"
DEMO_PASSWORD = "factory-demo"  # noqa: S105 - published in README for the demo users
# (username, full name, role); the first data scientist authors the demo versions.
DEMO_USERS = [
    ("admin", "Alex Admin", roles.ADMIN),
    ("ada", "Ada Lovelace", roles.DATA_SCIENTIST),
    ("rita", "Rita Reviewer", roles.REVIEWER),
    ("ravi", "Ravi Reviewer", roles.REVIEWER),
    ("maya", "Maya Manager", roles.MANAGER),
]
DESCRIPTION = """Predicts which **residential customers** are likely to cancel their contract in the
next 90 days, so that the retention team can call them first.

* Input: one row per customer from the nightly CRM extract.
* Output: `1` (likely to churn) or `0`, with the probability.
"""


class Command(BaseCommand):
    help = "Load the demo: a user per role and the customer-churn model with two versions. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=50_000, help="Size of the synthetic dataset")

    def handle(self, *args: Any, **options: Any) -> None:
        loaded = RegisteredModel.objects.filter(name=DEMO_MODEL).exists()
        if not loaded:
            self._check_retraining_allowed()
        self._ensure_users()
        if loaded:
            self.stdout.write(f"Demo already loaded ({DEMO_MODEL} exists); nothing to do.")
        else:
            self._register_model(options["customers"])
        self.stdout.write(f"\nDemo users (password for all: {DEMO_PASSWORD}):")
        for username, full_name, role in DEMO_USERS:
            self.stdout.write(f"  {username:<6} {full_name:<14} {role}")

    def _check_retraining_allowed(self) -> None:
        """The demo ends with an alert retraining the model: refuse before loading anything if the recipe may
        not run (no package is allowed by default), rather than leave a demo whose retraining fails."""
        try:
            load_callable(monitoring_demo.RETRAINING_RECIPE)
        except ValueError as exc:
            raise CommandError(
                f"The demo's retraining recipe ({monitoring_demo.RETRAINING_RECIPE}) may not run here: "
                "set MF_RETRAINING_PACKAGES=demo (`make demo` and `make run` do)."
            ) from exc

    @transaction.atomic
    def _ensure_users(self) -> None:
        roles.ensure_roles()
        for username, full_name, role in DEMO_USERS:
            first, last = full_name.split(" ", 1)
            user, created = get_user_model().objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "email": f"{username}@example.com",
                    "is_staff": role == roles.ADMIN,
                    "is_superuser": role == roles.ADMIN,
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
                user.groups.add(Group.objects.get(name=role))

    def _register_model(self, customers_count: int) -> None:
        self.stdout.write(f"Generating {customers_count:,} synthetic customers and training two versions…")
        customers = generate_customers(customers_count)
        trained = train_versions(customers)
        # The same client data scientists use, over HTTP requests handled in this process.
        host = next((h for h in settings.ALLOWED_HOSTS if h not in {"*", ""} and not h.startswith(".")), "localhost")
        session = requests.Session()
        session.mount(f"http://{host}/", WSGIAdapter(get_wsgi_application()))
        author = DEMO_USERS[1][0]
        client = ModelFactory.login(f"http://{host}", author, DEMO_PASSWORD, session=session)
        client.create_model(
            DEMO_MODEL,
            task="classification",
            title="Customer churn",
            description=DESCRIPTION,
            tags=["retention", "telco", "high-risk"],
            business_context="Owned by Retention. Scores feed the call-centre priority list every night.",
        )
        reference = customers[[*FEATURES, TARGET]]
        with tempfile.TemporaryDirectory() as directory:
            for number, version in enumerate(trained, start=1):
                notebook = Path(directory) / f"churn-v{number}.ipynb"
                notebook.write_text(build_notebook(version, number=number, customers=customers))
                client.register(
                    DEMO_MODEL,
                    version.estimator,
                    customers[FEATURES],
                    release_notes=version.release_notes,
                    notebook=notebook,
                    golden=(version.golden_inputs, version.golden_expected),
                    reference=reference,
                    params=version.params,
                    metrics=version.metrics,
                    training_data=customers,
                    training_data_uri="s3://demo-telco/crm/customers-2026-10.parquet",
                    code_uri="https://git.example.com/retention/churn-model",
                    code_commit=f"{number:040x}",
                    parent=number - 1 if number > 1 else None,
                )
                self.stdout.write(f"  registered {DEMO_MODEL} v{number}: {version.metrics}")
        self.stdout.write("Playing three months of production: go-live, traffic, a price change, reports…")
        users = {
            user.username: user for user in get_user_model().objects.filter(username__in=[u[0] for u in DEMO_USERS])
        }
        monitoring_demo.play(model=RegisteredModel.objects.get(name=DEMO_MODEL), users=users, say=self.stdout.write)
