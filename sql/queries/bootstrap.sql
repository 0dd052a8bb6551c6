-- Run against the embedded server's maintenance database before the shop's own exists.

-- name: database_exists$
SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1);

-- name: create_shop_database!
CREATE DATABASE shopbot;
