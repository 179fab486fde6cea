from __future__ import annotations

import io
import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry import registration, services
from registry.choices import ArtifactFormat, ModelTask
from registry.client import mlflow_directory_zip
from registry.models import RegisteredModel


def _json_argument(value: str | None) -> Any:
    """JSON given inline or as the path of a .json file."""
    if value is None:
        return None
    path = Path(value)
    return path.read_text() if path.suffix == ".json" and path.exists() else value


class Command(BaseCommand):
    help = "Register a model version from files on disk, with the same checks as the API."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="Model name (slug)")
        parser.add_argument(
            "artifact", type=Path, help="skops, ONNX, joblib/pickle file, MLflow model zip or MLflow model directory"
        )
        parser.add_argument("--user", required=True, help="Username of the author")
        parser.add_argument("--format", choices=ArtifactFormat.values, help="Detected when omitted")
        parser.add_argument(
            "--create",
            choices=ModelTask.values,
            metavar="TASK",
            help="Create the model first, with this task, if it does not exist",
        )
        parser.add_argument("--release-notes", type=Path, help="Markdown file")
        parser.add_argument("--notebook", type=Path)
        parser.add_argument("--golden-set", type=Path, help="CSV with an 'expected' column")
        parser.add_argument("--reference-data", type=Path, help="CSV or Parquet")
        parser.add_argument("--training-data", type=Path, help="CSV or Parquet snapshot")
        parser.add_argument("--document", type=Path, action="append", default=[])
        parser.add_argument("--input-schema", help="JSON, or a .json file")
        parser.add_argument("--output-schema", help="JSON, or a .json file")
        parser.add_argument("--params", help="JSON, or a .json file")
        parser.add_argument("--metrics", help="JSON, or a .json file")
        parser.add_argument("--environment", help="JSON, or a .json file")
        parser.add_argument("--requirements", type=Path, help="requirements.txt")
        parser.add_argument("--training-data-uri", default="")
        parser.add_argument("--training-data-rows", type=int)
        parser.add_argument("--code-uri", default="")
        parser.add_argument("--code-commit", default="")
        parser.add_argument("--parent", type=int, help="Number of the version this one derives from")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = get_user_model().objects.get(username=options["user"])
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"No user named {options['user']!r}") from exc
        artifact: Path = options["artifact"]
        zipped: File | None = None
        if artifact.is_dir():
            try:
                zipped = File(io.BytesIO(mlflow_directory_zip(artifact)), name=f"{artifact.name}.zip")
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        for key in (
            "release_notes",
            "notebook",
            "golden_set",
            "reference_data",
            "training_data",
            "requirements",
        ):
            if options[key] is not None and not options[key].is_file():
                raise CommandError(f"--{key.replace('_', '-')}: no file at {options[key]}")
        if not artifact.is_dir() and not artifact.is_file():
            raise CommandError(f"artifact: no file or MLflow model directory at {artifact}")
        with ExitStack() as files:

            def open_file(path: Path | None) -> File | None:
                if path is None:
                    return None
                return File(files.enter_context(path.open("rb")), name=path.name)

            try:
                model = self._model(options, user)
                version = registration.version_register(
                    actor=user,
                    model=model,
                    upload=registration.VersionUpload(
                        artifact=zipped or open_file(artifact),  # type: ignore[arg-type]
                        format=options["format"],
                        release_notes=options["release_notes"].read_text() if options["release_notes"] else "",
                        notebook=open_file(options["notebook"]),
                        golden_set=open_file(options["golden_set"]),
                        reference_data=open_file(options["reference_data"]),
                        training_data=open_file(options["training_data"]),
                        documents=[f for f in map(open_file, options["document"]) if f is not None],
                        input_schema=_json_argument(options["input_schema"]),
                        output_schema=_json_argument(options["output_schema"]),
                        params=_json_argument(options["params"]),
                        metrics=_json_argument(options["metrics"]),
                        environment=_json_argument(options["environment"]),
                        requirements=options["requirements"].read_text() if options["requirements"] else "",
                        training_data_uri=options["training_data_uri"],
                        training_data_rows=options["training_data_rows"],
                        code_uri=options["code_uri"],
                        code_commit=options["code_commit"],
                        parent=options["parent"],
                    ),
                )
            except ValidationError as exc:
                problems = [
                    f"  {field}: {message}" for field, messages in exc.message_dict.items() for message in messages
                ]
                raise CommandError("The version was not registered:\n" + "\n".join(problems)) from exc
            except PermissionDenied as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered {version} ({version.format}); untrusted types: "
                f"{json.dumps(version.untrusted_types) if version.untrusted_types else 'none'}"
            )
        )

    def _model(self, options: dict[str, Any], user: Any) -> RegisteredModel:
        model = RegisteredModel.objects.filter(name=options["model"]).first()
        if model is not None:
            return model
        if not options["create"]:
            raise CommandError(f"No model named {options['model']!r}; pass --create TASK to create it.")
        return services.model_create(actor=user, name=options["model"], title=options["model"], task=options["create"])
