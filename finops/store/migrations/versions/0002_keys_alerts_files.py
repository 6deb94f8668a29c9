"""API keys (hashed), alert history and deliveries, and files written by scheduled reports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATEMENTS = [
    """CREATE TABLE api_keys (
        key_id VARCHAR PRIMARY KEY,
        key_hash VARCHAR NOT NULL UNIQUE,
        role VARCHAR NOT NULL CHECK (role IN ('viewer', 'finance', 'admin')),
        team VARCHAR,
        name VARCHAR,
        created_at TIMESTAMP NOT NULL,
        last_used_at TIMESTAMP,
        revoked_at TIMESTAMP
    )""",
    """CREATE TABLE alerts (
        alert_key VARCHAR NOT NULL,
        rule VARCHAR NOT NULL,
        severity VARCHAR NOT NULL,
        status VARCHAR NOT NULL CHECK (status IN ('firing', 'resolved')),
        summary VARCHAR NOT NULL,
        dims VARCHAR,
        amount DECIMAL(38,12),
        currency VARCHAR,
        link VARCHAR,
        started_at TIMESTAMP NOT NULL,
        last_seen_at TIMESTAMP NOT NULL,
        resolved_at TIMESTAMP,
        last_sent_at TIMESTAMP,
        PRIMARY KEY (alert_key, started_at)
    )""",
    """CREATE TABLE alert_deliveries (
        alert_key VARCHAR NOT NULL,
        started_at TIMESTAMP NOT NULL,
        channel VARCHAR NOT NULL,
        kind VARCHAR NOT NULL CHECK (kind IN ('firing', 'resolved')),
        status VARCHAR NOT NULL CHECK (status IN ('sent', 'failed')),
        attempts INTEGER NOT NULL,
        error VARCHAR,
        delivered_at TIMESTAMP NOT NULL
    )""",
    "CREATE SEQUENCE report_files_id_seq START 1",
    """CREATE TABLE report_files (
        file_id BIGINT PRIMARY KEY DEFAULT nextval('report_files_id_seq'),
        report VARCHAR NOT NULL,
        period VARCHAR NOT NULL,
        format VARCHAR NOT NULL,
        location VARCHAR NOT NULL,
        bytes BIGINT NOT NULL,
        created_at TIMESTAMP NOT NULL
    )""",
]


def upgrade() -> None:
    for sql in STATEMENTS:
        op.execute(sql)


def downgrade() -> None:
    for table in ("report_files", "alert_deliveries", "alerts", "api_keys"):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP SEQUENCE report_files_id_seq")
