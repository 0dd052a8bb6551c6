"""Tests of the database layer: migrations, the SQL files, the embedded server."""
