"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 22:01:48.432878
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from base.migrate import refuse_downgrade_with_data

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "Deployment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=255).with_variant(
                mysql.VARCHAR(length=255, collation="utf8mb4_bin"), "mysql", "mariadb"
            ),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "startDate",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "endDate",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_Deployment")),
        sa.UniqueConstraint("name", name=op.f("uq_Deployment_name")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "NodeType",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("configured", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_NodeType")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "RoomType",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=255).with_variant(
                mysql.VARCHAR(length=255, collation="utf8mb4_bin"), "mysql", "mariadb"
            ),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_RoomType")),
        sa.UniqueConstraint("name", name=op.f("uq_RoomType_name")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "SensorType",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("units", sa.String(length=20), nullable=False),
        sa.Column(
            "c0",
            sa.Double()
            .with_variant(mysql.DOUBLE(), "mariadb")
            .with_variant(mysql.DOUBLE(), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "c1",
            sa.Double()
            .with_variant(mysql.DOUBLE(), "mariadb")
            .with_variant(mysql.DOUBLE(), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "c2",
            sa.Double()
            .with_variant(mysql.DOUBLE(), "mariadb")
            .with_variant(mysql.DOUBLE(), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "c3",
            sa.Double()
            .with_variant(mysql.DOUBLE(), "mariadb")
            .with_variant(mysql.DOUBLE(), "mysql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_SensorType")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "Site",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=128).with_variant(
                mysql.VARCHAR(length=128, collation="utf8mb4_bin"), "mysql", "mariadb"
            ),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "created",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "lastSeen",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_Site")),
        sa.UniqueConstraint("name", name=op.f("uq_Site_name")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "SyncCursor",
        sa.Column("remote", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=128), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("remote", "stream", name=op.f("pk_SyncCursor")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "SyncIdMap",
        sa.Column("remote", sa.String(length=64), nullable=False),
        sa.Column("tableName", sa.String(length=64), nullable=False),
        sa.Column("localId", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("remoteId", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column(
            "updated",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("remote", "tableName", "localId", name=op.f("pk_SyncIdMap")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "SyncRejected",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("remote", sa.String(length=64), nullable=False),
        sa.Column("tableName", sa.String(length=64), nullable=False),
        sa.Column("localId", sa.BigInteger(), nullable=False),
        sa.Column("syncSeq", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "firstSeen",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "lastSeen",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_SyncRejected")),
        sa.UniqueConstraint(
            "remote", "tableName", "localId", name=op.f("uq_SyncRejected_remote_tableName_localId")
        ),
        sqlite_autoincrement=True,
        **TABLE_OPTIONS,
    )
    op.create_table(
        "SyncRemote",
        sa.Column("remote", sa.String(length=64), nullable=False),
        sa.Column(
            "lastAttempt",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "lastSuccess",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column("lastError", sa.Text(), nullable=True),
        sa.Column(
            "lastErrorAt",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column("remoteRevision", sa.String(length=64), nullable=True),
        sa.Column(
            "lastMetadataSync",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("remote", name=op.f("pk_SyncRemote")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "SyncSequence",
        sa.Column("tableName", sa.String(length=64), nullable=False),
        sa.Column("lastSeq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tableName", name=op.f("pk_SyncSequence")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "ApiKey",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("siteId", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("keyHash", sa.String(length=64), nullable=False),
        sa.Column(
            "created",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "revoked",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "lastUsed",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(["siteId"], ["Site.id"], name=op.f("fk_ApiKey_siteId_Site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ApiKey")),
        sa.UniqueConstraint("keyHash", name=op.f("uq_ApiKey_keyHash")),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("ApiKey", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ApiKey_siteId"), ["siteId"], unique=False)

    op.create_table(
        "House",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deploymentId", sa.Integer(), nullable=False),
        sa.Column(
            "address",
            sa.String(length=255).with_variant(
                mysql.VARCHAR(length=255, collation="utf8mb4_bin"), "mysql", "mariadb"
            ),
            nullable=False,
        ),
        sa.Column(
            "startDate",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "endDate",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column("siteId", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deploymentId"], ["Deployment.id"], name=op.f("fk_House_deploymentId_Deployment")
        ),
        sa.ForeignKeyConstraint(["siteId"], ["Site.id"], name=op.f("fk_House_siteId_Site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_House")),
        sa.UniqueConstraint("deploymentId", "address", name=op.f("uq_House_deploymentId_address")),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("House", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_House_siteId"), ["siteId"], unique=False)

    op.create_table(
        "Room",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=255).with_variant(
                mysql.VARCHAR(length=255, collation="utf8mb4_bin"), "mysql", "mariadb"
            ),
            nullable=False,
        ),
        sa.Column("roomTypeId", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["roomTypeId"], ["RoomType.id"], name=op.f("fk_Room_roomTypeId_RoomType")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_Room")),
        sa.UniqueConstraint("name", name=op.f("uq_Room_name")),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("Room", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_Room_roomTypeId"), ["roomTypeId"], unique=False)

    op.create_table(
        "Location",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("houseId", sa.Integer(), nullable=False),
        sa.Column("roomId", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["houseId"], ["House.id"], name=op.f("fk_Location_houseId_House")),
        sa.ForeignKeyConstraint(["roomId"], ["Room.id"], name=op.f("fk_Location_roomId_Room")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_Location")),
        sa.UniqueConstraint("houseId", "roomId", name=op.f("uq_Location_houseId_roomId")),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("Location", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_Location_roomId"), ["roomId"], unique=False)

    op.create_table(
        "Node",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("locationId", sa.Integer(), nullable=True),
        sa.Column("nodeTypeId", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["locationId"], ["Location.id"], name=op.f("fk_Node_locationId_Location")
        ),
        sa.ForeignKeyConstraint(
            ["nodeTypeId"], ["NodeType.id"], name=op.f("fk_Node_nodeTypeId_NodeType")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_Node")),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("Node", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_Node_locationId"), ["locationId"], unique=False)
        batch_op.create_index(batch_op.f("ix_Node_nodeTypeId"), ["nodeTypeId"], unique=False)

    op.create_table(
        "NodeState",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column("nodeId", sa.Integer(), nullable=False),
        sa.Column("parent", sa.Integer(), nullable=True),
        sa.Column("localtime", sa.BigInteger(), nullable=True),
        sa.Column("seq_num", sa.Integer(), nullable=False),
        sa.Column("rssi", sa.Integer(), nullable=True),
        sa.Column("syncSeq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["nodeId"], ["Node.id"], name=op.f("fk_NodeState_nodeId_Node")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_NodeState")),
        sa.UniqueConstraint(
            "nodeId", "time", "seq_num", name=op.f("uq_NodeState_nodeId_time_seq_num")
        ),
        sqlite_autoincrement=True,
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("NodeState", schema=None) as batch_op:
        batch_op.create_index("ix_NodeState_syncSeq_id", ["syncSeq", "id"], unique=False)
        batch_op.create_index("ix_NodeState_time", ["time"], unique=False)

    op.create_table(
        "Reading",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column("nodeId", sa.Integer(), nullable=False),
        sa.Column("type", sa.Integer(), nullable=False),
        sa.Column("locationId", sa.Integer(), nullable=True),
        sa.Column(
            "value",
            sa.Double()
            .with_variant(mysql.DOUBLE(), "mariadb")
            .with_variant(mysql.DOUBLE(), "mysql"),
            nullable=True,
        ),
        sa.Column("syncSeq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["locationId"], ["Location.id"], name=op.f("fk_Reading_locationId_Location")
        ),
        sa.ForeignKeyConstraint(["nodeId"], ["Node.id"], name=op.f("fk_Reading_nodeId_Node")),
        sa.ForeignKeyConstraint(
            ["type"], ["SensorType.id"], name=op.f("fk_Reading_type_SensorType")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_Reading")),
        sa.UniqueConstraint("nodeId", "type", "time", name=op.f("uq_Reading_nodeId_type_time")),
        sqlite_autoincrement=True,
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("Reading", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_Reading_locationId"), ["locationId"], unique=False)
        batch_op.create_index("ix_Reading_syncSeq_id", ["syncSeq", "id"], unique=False)
        batch_op.create_index("ix_Reading_time", ["time"], unique=False)
        batch_op.create_index(batch_op.f("ix_Reading_type"), ["type"], unique=False)

    op.create_table(
        "Sensor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sensorTypeId", sa.Integer(), nullable=False),
        sa.Column("nodeId", sa.Integer(), nullable=False),
        sa.Column(
            "calibrationSlope",
            sa.Double()
            .with_variant(mysql.DOUBLE(), "mariadb")
            .with_variant(mysql.DOUBLE(), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "calibrationOffset",
            sa.Double()
            .with_variant(mysql.DOUBLE(), "mariadb")
            .with_variant(mysql.DOUBLE(), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["nodeId"], ["Node.id"], name=op.f("fk_Sensor_nodeId_Node")),
        sa.ForeignKeyConstraint(
            ["sensorTypeId"], ["SensorType.id"], name=op.f("fk_Sensor_sensorTypeId_SensorType")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_Sensor")),
        sa.UniqueConstraint("nodeId", "sensorTypeId", name=op.f("uq_Sensor_nodeId_sensorTypeId")),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("Sensor", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_Sensor_sensorTypeId"), ["sensorTypeId"], unique=False)


def downgrade() -> None:
    refuse_downgrade_with_data(op.get_bind(), "0001")
    # Dropping a table drops its indexes; dropping them first fails on MySQL where a foreign key needs them.
    op.drop_table("Sensor")
    op.drop_table("Reading")
    op.drop_table("NodeState")
    op.drop_table("Node")
    op.drop_table("Location")
    op.drop_table("Room")
    op.drop_table("House")
    op.drop_table("ApiKey")
    op.drop_table("SyncSequence")
    op.drop_table("SyncRemote")
    op.drop_table("SyncRejected")
    op.drop_table("SyncIdMap")
    op.drop_table("SyncCursor")
    op.drop_table("Site")
    op.drop_table("SensorType")
    op.drop_table("RoomType")
    op.drop_table("NodeType")
    op.drop_table("Deployment")
