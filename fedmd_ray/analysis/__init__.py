"""Result tables: schema, Parquet I/O, summaries (Arrow in, Arrow/pandas out)."""
