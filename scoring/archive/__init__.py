"""The columnar prediction archive: logged predictions and actuals as Parquet, partitioned by model, version and day.

`format` says what a file holds, `store` where files live (the artifact store, or MF_ARCHIVE_URL).
"""
