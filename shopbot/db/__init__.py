"""PostgreSQL: the server, the pool, migrations and the named queries."""
