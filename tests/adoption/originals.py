"""Cogent-house databases as the original project left them, built by hand from its models
and migrations (github jbrusey/cogent-house): the central server's schema at the head of
its master chain, the "flat" branch's NodeState without an id, and the schema from before
Location existed. Rows are written the way BaseLogger wrote them: NULL for a value it
could not read, a node heard before anyone placed it, MyISAM tables that enforced nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, text

T0 = datetime(2013, 5, 20, 12, 0, 0)

INNODB = " ENGINE=InnoDB DEFAULT CHARSET=utf8"
MYISAM = " ENGINE=MyISAM DEFAULT CHARSET=latin1"


def _ddl(sql: str, mysql: bool) -> str:
    if mysql:
        return (sql.replace("{SERIAL}", "INT NOT NULL AUTO_INCREMENT PRIMARY KEY")
                .replace("{LT}", "`localtime`")
                .replace("{INNODB}", INNODB).replace("{MYISAM}", MYISAM))
    return (sql.replace("{SERIAL}", "INTEGER PRIMARY KEY").replace("{INNODB}", "")
            .replace("{LT}", '"localtime"')
            .replace("{MYISAM}", "").replace(" FLOAT", " REAL"))


CATALOGUE = """
CREATE TABLE Deployment (id {SERIAL}, name VARCHAR(255), description VARCHAR(255),
  startDate DATETIME, endDate DATETIME){INNODB};
CREATE TABLE Server (id {SERIAL}, hostname VARCHAR(255), baseid INT){INNODB};
CREATE TABLE RoomType (id {SERIAL}, name VARCHAR(20)){INNODB};
CREATE TABLE Room (id {SERIAL}, roomTypeId INT, name VARCHAR(20),
  FOREIGN KEY (roomTypeId) REFERENCES RoomType (id)){INNODB};
CREATE TABLE NodeType (id INT NOT NULL PRIMARY KEY, name VARCHAR(20), time DATETIME, seq INT,
  updated_seq INT, period INT, blink BOOLEAN, configured VARCHAR(10)){INNODB};
CREATE TABLE SensorType (id INT NOT NULL PRIMARY KEY, name VARCHAR(255), code VARCHAR(50),
  units VARCHAR(20), c0 FLOAT, c1 FLOAT, c2 FLOAT, c3 FLOAT){INNODB};
CREATE TABLE Weather (time DATETIME NOT NULL PRIMARY KEY, outTemp FLOAT, outHum FLOAT){MYISAM};
"""

# Central server at the head of the original master chain (1dce0115d073).
MASTER_HEAD = CATALOGUE + """
CREATE TABLE House (id {SERIAL}, deploymentId INT, address VARCHAR(255), startDate DATETIME,
  endDate DATETIME, serverid INT,
  FOREIGN KEY (deploymentId) REFERENCES Deployment (id),
  CONSTRAINT fk_house_server_id FOREIGN KEY (serverid) REFERENCES Server (id)){INNODB};
CREATE TABLE Location (id {SERIAL}, houseId INT, roomId INT, UNIQUE (houseId, roomId),
  FOREIGN KEY (houseId) REFERENCES House (id), FOREIGN KEY (roomId) REFERENCES Room (id)){INNODB};
CREATE TABLE Node (id INT NOT NULL PRIMARY KEY, locationId INT, nodeTypeId INT,
  FOREIGN KEY (locationId) REFERENCES Location (id),
  FOREIGN KEY (nodeTypeId) REFERENCES NodeType (id)){INNODB};
CREATE TABLE Sensor (id {SERIAL}, sensorTypeId INT, nodeId INT, calibrationSlope FLOAT,
  calibrationOffset FLOAT, FOREIGN KEY (sensorTypeId) REFERENCES SensorType (id),
  FOREIGN KEY (nodeId) REFERENCES Node (id)){INNODB};
CREATE TABLE Reading (time DATETIME NOT NULL, nodeId INT NOT NULL, type INT NOT NULL,
  locationId INT, value FLOAT, PRIMARY KEY (time, nodeId, type)){MYISAM};
CREATE INDEX r_1 ON Reading (nodeId, type, locationId);
CREATE INDEX ix_Reading_type ON Reading (type);
CREATE TABLE NodeState (id {SERIAL}, time DATETIME, nodeId INT, parent INT, {LT} BIGINT,
  seq_num INT, rssi INT){MYISAM};
CREATE INDEX ns_1 ON NodeState (time, nodeId, {LT});
CREATE TABLE Occupier (id {SERIAL}, houseId INT, name VARCHAR(255), contactNumber VARCHAR(20),
  startDate DATETIME, endDate DATETIME, FOREIGN KEY (houseId) REFERENCES House (id)){INNODB};
CREATE TABLE NodeHistory (nodeId INT NOT NULL, startDate DATETIME NOT NULL, endDate DATETIME,
  houseAddress VARCHAR(255), PRIMARY KEY (nodeId, startDate),
  FOREIGN KEY (nodeId) REFERENCES Node (id)){INNODB};
CREATE TABLE PushStatus (id {SERIAL}, hostname VARCHAR(255), {LT} DATETIME,
  version VARCHAR(20)){INNODB};
"""

# The "flat" branch (1a04848f8857): NodeState keyed by (nodeId, time, seq_num), no id.
FLAT_NODESTATE = """
CREATE TABLE NodeState (time DATETIME NOT NULL, nodeId INT NOT NULL, parent INT,
  {LT} BIGINT, seq_num INT NOT NULL, rssi INT, PRIMARY KEY (nodeId, time, seq_num)){MYISAM};
"""

# Before revision 31851b4865f1: a node names its house and room; readings have an id.
PRE_LOCATION = CATALOGUE + """
CREATE TABLE House (id {SERIAL}, deploymentId INT, address VARCHAR(255), startDate DATETIME,
  endDate DATETIME, FOREIGN KEY (deploymentId) REFERENCES Deployment (id)){INNODB};
CREATE TABLE Node (id INT NOT NULL PRIMARY KEY, roomId INT, houseId INT, nodeTypeId INT,
  FOREIGN KEY (nodeTypeId) REFERENCES NodeType (id)){INNODB};
CREATE TABLE Sensor (id {SERIAL}, sensorTypeId INT, nodeId INT, calibrationSlope FLOAT,
  calibrationOffset FLOAT){INNODB};
CREATE TABLE Reading (id {SERIAL}, time DATETIME NOT NULL, nodeId INT NOT NULL,
  type INT NOT NULL, value FLOAT){INNODB};
CREATE TABLE NodeState (id {SERIAL}, time DATETIME, nodeId INT, parent INT,
  {LT} BIGINT){INNODB};
"""

CATALOGUE_ROWS = """
INSERT INTO SensorType VALUES (0, 'Temperature', 'T', 'deg.C', 0, 1, 0, 0);
INSERT INTO SensorType VALUES (2, 'Humidity', 'RH', '%', 0, 1, 0, 0);
INSERT INTO SensorType VALUES (8, 'CO2', 'CO2', 'ppm', 0, 1, 0, 0);
INSERT INTO SensorType VALUES (20, 'Delta CO2', 'dCO2', 'ppm/s', 0, 1, 0, 0);
INSERT INTO SensorType VALUES (40, 'Opti Smart Count', 'imp', 'imp', NULL, NULL, NULL, NULL);
INSERT INTO NodeType VALUES (0, 'Base', '2011-07-10 00:00:00', 1, 0, 307200, 0, '31,4');
INSERT INTO NodeType VALUES (1, 'Current Cost', '2011-07-10 00:00:00', 1, 0, 307200, 0, '31,5');
INSERT INTO RoomType (id, name) VALUES (1, 'Bedroom'), (2, 'Living Area');
INSERT INTO Room (id, roomTypeId, name) VALUES (1, 1, 'Master Bedroom'), (2, 2, 'Living Room'),
  (3, 2, 'Living Room');
INSERT INTO Deployment (id, name) VALUES (1, 'Trial'), (2, 'Trial');
INSERT INTO Weather VALUES ('2013-05-20 12:00:00', 11.5, 80);
"""

MASTER_ROWS = CATALOGUE_ROWS + """
INSERT INTO Server (id, hostname) VALUES (1, 'central');
INSERT INTO House (id, deploymentId, address, serverid) VALUES (1, 1, '1 Elm Road', 1),
  (2, NULL, '2 Oak Road', NULL), (3, 2, NULL, NULL);
INSERT INTO Location (id, houseId, roomId) VALUES (1, 1, 1), (2, 1, 2), (3, 2, 3), (4, 3, 1);
INSERT INTO Node VALUES (101, 1, 0), (102, 2, 0), (103, NULL, 0), (104, 3, 1), (105, 4, 0);
INSERT INTO Sensor (id, sensorTypeId, nodeId, calibrationSlope, calibrationOffset) VALUES
  (1, 0, 101, 1, 0), (2, 2, 101, NULL, NULL);
INSERT INTO Reading VALUES ('2013-05-20 12:00:00', 101, 0, 1, 21.3),
  ('2013-05-20 12:00:00', 101, 2, 1, 55.5), ('2013-05-20 12:00:00', 101, 8, 1, NULL),
  ('2013-05-20 12:00:00', 102, 8, 2, 123456.7), ('2013-05-20 12:00:00', 103, 0, NULL, 19.9),
  ('2013-05-20 12:00:00', 104, 0, 3, 20.1), ('2013-05-20 12:00:00', 105, 0, 4, -12.345678),
  ('2013-05-20 12:05:00', 999, 0, 1, 18.2);
INSERT INTO Occupier (id, houseId, name) VALUES (1, 1, 'A. Tenant');
INSERT INTO NodeHistory (nodeId, startDate, houseAddress) VALUES (101, '2013-01-01', '1 Elm Road');
INSERT INTO PushStatus (id, hostname, version) VALUES (1, 'station-1', '1.0');
"""

NODESTATE_ROWS_WITH_ID = """
INSERT INTO NodeState (id, time, nodeId, parent, {LT}, seq_num, rssi) VALUES
  (1, '2013-05-20 12:00:00', 101, 100, 5, 1, -70),
  (2, '2013-05-20 12:00:00', 101, 100, 6, NULL, NULL),
  (3, '2013-05-20 12:05:00', 102, 100, 7, 3, -60), (4, '2013-05-20 12:05:00', 102, 100, 7, 3, -60);
"""

FLAT_NODESTATE_ROWS = """
INSERT INTO NodeState (time, nodeId, parent, {LT}, seq_num, rssi) VALUES
  ('2013-05-20 12:00:00', 101, 100, 5, 1, -70), ('2013-05-20 12:05:00', 102, 100, 7, 3, -60);
"""

PRE_LOCATION_ROWS = CATALOGUE_ROWS + """
INSERT INTO House (id, deploymentId, address) VALUES (1, 1, '1 Elm Road');
INSERT INTO Node (id, roomId, houseId, nodeTypeId) VALUES (101, 1, 1, 0), (102, 2, 1, 0),
  (103, NULL, NULL, 0);
INSERT INTO Reading (id, time, nodeId, type, value) VALUES
  (1, '2013-05-20 12:00:00', 101, 0, 21.3),
  (2, '2013-05-20 12:00:00', 102, 0, 19.5), (3, '2013-05-20 12:00:00', 103, 0, 18.0),
  (4, '2013-05-20 12:05:00', 101, 0, NULL);
INSERT INTO NodeState (id, time, nodeId, parent, {LT}) VALUES
  (1, '2013-05-20 12:00:00', 101, 100, 5);
"""


def build(engine: Engine, kind: str, revision: str | None) -> None:
    """Make ``engine``'s empty database a Cogent-house one of ``kind`` ("master", "flat",
    "pre-location") at ``revision`` (None: no alembic_version, as BaseLogger left it)."""
    mysql = engine.dialect.name in ("mysql", "mariadb")
    if kind == "pre-location":
        script = PRE_LOCATION + PRE_LOCATION_ROWS
    elif kind == "flat":
        script = (MASTER_HEAD.split("CREATE TABLE NodeState")[0]
                  + MASTER_HEAD.split("CREATE INDEX ns_1 ON NodeState (time, nodeId, {LT});")[1]
                  + FLAT_NODESTATE + MASTER_ROWS + FLAT_NODESTATE_ROWS)
    else:
        script = MASTER_HEAD + MASTER_ROWS + NODESTATE_ROWS_WITH_ID
    with engine.begin() as conn:
        if mysql:
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))  # node 999: MyISAM never checked
        for statement in _ddl(script, mysql).split(";"):
            if statement.strip():
                # PyMySQL formats a statement with "%" even without parameters.
                conn.exec_driver_sql(statement.replace("%", "%%") if mysql else statement)
        if revision is not None:
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})
        if mysql:
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
