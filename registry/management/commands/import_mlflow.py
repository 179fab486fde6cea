from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.api import ConflictError
from registry import mlflow_import
from registry.models import RegisteredModel


class Command(BaseCommand):
    help = (
        "Register a version from a version of a model in an MLflow tracking server's registry, with its run's "
        "params, metrics and tags; the same checks as the API."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version is MLflow's word for what to import: it replaces Django's (which prints Django's version).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="Model Factory model name (slug); it must exist")
        parser.add_argument("--tracking-uri", required=True, help="e.g. https://mlflow.example.com")
        parser.add_argument("--model-name", required=True, help="The registered model's name in MLflow")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--version", help="The MLflow version number")
        which.add_argument("--alias", help="An MLflow alias, e.g. champion")
        parser.add_argument("--user", required=True, help="Username of the author")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = get_user_model().objects.get(username=options["user"])
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"No user named {options['user']!r}") from exc
        model = RegisteredModel.objects.filter(name=options["model"]).first()
        if model is None:
            raise CommandError(f"No model named {options['model']!r}.")
        try:
            version = mlflow_import.version_import_mlflow(
                actor=user,
                model=model,
                tracking_uri=options["tracking_uri"],
                model_name=options["model_name"],
                version=options["version"],
                alias=options["alias"],
            )
        except ValidationError as exc:
            by_field = exc.message_dict if hasattr(exc, "error_dict") else {"error": exc.messages}
            problems = [f"  {field}: {message}" for field, messages in by_field.items() for message in messages]
            raise CommandError("The version was not imported:\n" + "\n".join(problems)) from exc
        except (PermissionDenied, ConflictError, mlflow_import.MlflowUnavailableError) as exc:
            raise CommandError(str(exc)) from exc
        imported = version.mlflow.get("import", {}) if isinstance(version.mlflow, dict) else {}
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {version} from MLflow model {imported.get('model_name', options['model_name'])!r} "
                f"version {imported.get('version', options['version'])} (run {imported.get('run_id') or 'none'}); "
                f"untrusted types: {', '.join(version.untrusted_types) or 'none'}"
            )
        )
