"""Database access: embedded server, connection pool, migrations, transaction retries."""
