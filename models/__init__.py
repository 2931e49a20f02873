"""The one schema both sides share (base station and central server)."""

from models.access import ROLES, ApiKey, Site, UserAccount
from models.base import Base
from models.catalogue import NodeType, RoomType, SensorType
from models.deployment import Deployment, House, Location, Room
from models.node import Node, Sensor
from models.readings import RESTORED_SEQ, NodeState, Reading, ReadingDay
from models.stations import StationStatus
from models.sync import SyncCursor, SyncIdMap, SyncRejected, SyncRemote, SyncSequence

# The tables people and programs browse at /rest/<lower-cased table name>/.
DATA_TABLES: tuple[type[Base], ...] = (
    SensorType,
    NodeType,
    RoomType,
    Room,
    Deployment,
    House,
    Location,
    Node,
    Sensor,
    Reading,
    NodeState,
)

__all__ = [
    "DATA_TABLES",
    "RESTORED_SEQ",
    "ROLES",
    "ApiKey",
    "Base",
    "Deployment",
    "House",
    "Location",
    "Node",
    "NodeState",
    "NodeType",
    "Reading",
    "ReadingDay",
    "Room",
    "RoomType",
    "Sensor",
    "SensorType",
    "Site",
    "StationStatus",
    "SyncCursor",
    "SyncIdMap",
    "SyncRejected",
    "SyncRemote",
    "SyncSequence",
    "UserAccount",
]
