"""On PostgreSQL, the prediction log becomes a table range-partitioned by UTC day on `at`; rows are kept.

The primary key becomes (id, at), as a partitioned table's unique keys must hold its partition key. Every
index and foreign key is made again on the parent under its old name, so later migrations find them.
Each day that has rows gets its partition (the copy lands there), and so do the next 7 days; any other
day lands in the DEFAULT partition until `scoring.archive.partitions.ensure_partitions` makes its own.
SQLite keeps its plain table: nothing happens there.
"""

from datetime import timedelta

from django.db import migrations
from django.utils import timezone

from scoring.archive.partitions import DEFAULT_PARTITION, TABLE, create_partition

_OLD = f"{TABLE}_unpartitioned"


def _rebuild(schema_editor, *, partitioned: bool) -> None:
    """Copy the table into a new one, partitioned or plain, with the same columns, indexes and keys."""
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = %s::regclass AND NOT i.indisprimary",
            [TABLE],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [TABLE],
        )
        foreign_keys = cursor.fetchall()
        # Index names are unique in the schema: the old table gives up its own before the new one takes them.
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {_OLD}")
        cursor.execute(f"ALTER TABLE {_OLD} RENAME CONSTRAINT {TABLE}_pkey TO {_OLD}_pkey")
        for name, _definition in indexes:
            cursor.execute(f"DROP INDEX {name}")
        if partitioned:
            cursor.execute(
                f"CREATE TABLE {TABLE} (LIKE {_OLD} INCLUDING ALL EXCLUDING INDEXES, PRIMARY KEY (id, at))"
                " PARTITION BY RANGE (at)"
            )
            cursor.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")
            cursor.execute(f"SELECT DISTINCT (at AT TIME ZONE 'UTC')::date FROM {_OLD}")
            today = timezone.now().date()
            days = {day for (day,) in cursor.fetchall()} | {today + timedelta(days=n) for n in range(8)}
            for day in sorted(days):
                create_partition(cursor, day)
        else:
            cursor.execute(f"CREATE TABLE {TABLE} (LIKE {_OLD} INCLUDING ALL EXCLUDING INDEXES, PRIMARY KEY (id))")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {_OLD}")
        for _name, definition in indexes:
            # A partitioned table's own index reads "ON ONLY"; on the plain one it covers the whole table.
            cursor.execute(definition.replace(" ON ONLY ", " ON "))
        for name, definition in foreign_keys:
            cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}")
        cursor.execute(f"DROP TABLE {_OLD}")


def partition(apps, schema_editor) -> None:
    _rebuild(schema_editor, partitioned=True)


def unpartition(apps, schema_editor) -> None:
    _rebuild(schema_editor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [("scoring", "0006_archive_lifecycle_and_uuid7_ids")]

    operations = [migrations.RunPython(partition, unpartition)]
