"""Batch scoring: jobs that score a table with a version, in chunks, exactly once per entity.

A run first snapshots its input (an uploaded file, a file under MF_BATCH_INPUT_DIR or a SQL query) to
an Arrow IPC file with one record batch per chunk, so every chunk and every resume reads the same rows
cheaply, and monitoring later reads what was scored. Each chunk is scored by its own Celery task. A
chunk's scores, its rejects, its "done" mark and the run's counters are written in one transaction: a
task that is retried, or redelivered after its worker died, either finds the chunk done or writes
everything the first attempt would have written, so nothing is lost and nothing is written twice.

The modules, each importing only those above it:
- `sources`: reading inputs (uploads, server files, SQL on a scoring database);
- `snapshots`: a run's input written once as Arrow, and read back chunk by chunk;
- `writes`: scores written to the database (COPY on PostgreSQL) and to a Parquet output;
- `selectors`: reads for pages and APIs;
- `services`: jobs and their schedules;
- `runs`: a run's lifecycle, every status move along one transition table;
- `chunks`: scoring one chunk exactly once.
"""
