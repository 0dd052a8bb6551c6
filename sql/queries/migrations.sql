-- The migration runner's own bookkeeping. The table is created here rather than in a migration
-- because it records the migrations themselves.

-- name: create_migrations_table!
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- name: lock_migrations!
-- Several instances may start at once; only one applies migrations, the others wait here.
SELECT pg_advisory_lock(7305813170001);

-- name: unlock_migrations!
SELECT pg_advisory_unlock(7305813170001);

-- name: applied_migrations
SELECT version, name, checksum FROM schema_migrations ORDER BY version;

-- name: record_migration!
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3);
