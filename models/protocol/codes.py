"""Machine-readable reasons, sent beside the prose so that no side parses prose.

The server puts one of these in every rejected run of a batch reply (``code``); the
pusher decides what to do by the code alone (map again, set aside) and shows the
prose to people.
"""

from __future__ import annotations

from typing import Final

UNKNOWN_NODE: Final = "unknown_node"  # the server has no such node: map it (again)
UNKNOWN_LOCATION: Final = "unknown_location"  # … no such location: map it (again)
UNKNOWN_TYPE: Final = "unknown_type"  # the sensor type is not in the server's catalogue
NOT_YOUR_SITE: Final = "not_your_site"  # the node or location belongs to another site
NODE_UNLOCATED: Final = "node_unlocated"  # the node has no location on the server
FOREIGN_READING: Final = "foreign_reading"  # would replace a reading another site stored
BAD_TIME: Final = "bad_time"  # before 1970, or more than a day ahead of the server's clock
VALUE_MISSING: Final = "value_missing"  # NULL value
BAD_VALUE: Final = "bad_value"  # NaN, infinite, out of range, not a number

REJECTION_CODES: Final = frozenset({
    UNKNOWN_NODE, UNKNOWN_LOCATION, UNKNOWN_TYPE, NOT_YOUR_SITE, NODE_UNLOCATED,
    FOREIGN_READING, BAD_TIME, VALUE_MISSING, BAD_VALUE,
})
# Codes that mean "the server lost a row we had mapped": forget the mapping, map again.
STALE_MAPPING_CODES: Final = frozenset({UNKNOWN_NODE, UNKNOWN_LOCATION})
