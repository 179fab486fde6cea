from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.backup import BackupError, backup


class Command(BaseCommand):
    help = (
        "Back up the database (every table, as JSON lines) and the artifact store (every file) to a new "
        "folder or a .tar / .tar.gz archive, with a manifest of row counts and sha256 checksums."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("destination", type=Path, help="A new folder, or an archive path ending in .tar.gz")
        parser.add_argument("--database", default="default", help="Database alias (default: default)")

    def handle(self, *args: Any, **options: Any) -> None:
        destination: Path = options["destination"]
        try:
            manifest = backup(destination, alias=options["database"], log=self.stdout.write)
        except (BackupError, OSError) as exc:  # OSError: a path the system refuses (too long, no access)
            raise CommandError(str(exc)) from exc
        rows = sum(table["rows"] for table in manifest["tables"].values())
        self.stdout.write(
            self.style.SUCCESS(
                f"Backed up {rows} rows in {len(manifest['tables'])} tables and {len(manifest['files'])} files "
                f"to {destination}"
            )
        )
        if manifest["problems"]:
            raise CommandError(
                f"{len(manifest['problems'])} registered files are missing or changed (listed above and in the "
                "manifest); the backup was written but will not restore until they are repaired."
            )
