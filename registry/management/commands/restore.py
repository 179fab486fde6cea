from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.backup import BackupError, restore


class Command(BaseCommand):
    help = (
        "Restore a backup made by `manage.py backup` into a freshly migrated database and an empty artifact "
        "store, verifying every file's sha256 (and every registered artifact against the registry)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", type=Path, help="The backup folder or archive")
        parser.add_argument("--database", default="default", help="Database alias (default: default)")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Restore into a database that holds data: it is flushed first (its audit trail too)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = restore(
                options["source"], alias=options["database"], force=options["force"], log=self.stdout.write
            )
        except (BackupError, OSError) as exc:  # OSError: a path the system refuses (too long, no access)
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {sum(result.tables.values())} rows in {len(result.tables)} tables and {result.files} "
                f"files; {result.verified_artifacts} registered files match their sha256."
            )
        )
