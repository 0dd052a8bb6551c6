-- What `shopbot restore` checks before it replaces a database.

-- name: other_sessions
SELECT coalesce(nullif(application_name, ''), 'unnamed') AS application, count(*) AS sessions
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
GROUP BY 1
ORDER BY 1;
