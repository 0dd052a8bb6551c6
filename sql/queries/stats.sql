-- Numbers for /metrics, read when Prometheus scrapes.

-- name: active_users$
SELECT count(*) FROM users WHERE last_seen_at > now() - interval '24 hours';
