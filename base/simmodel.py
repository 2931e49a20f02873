"""The simulator's model: readings and node states as pure functions of time.

Every value is a function of ``(seed, node, sample time)``: each packet draws
its noise from its own random stream, and day-level randomness (weather,
occupancy, outages) from a stream per house or node and day. So a backfill of
a week equals two backfills of its halves, real-time mode continues a backfill
seamlessly, and a re-run produces the same rows. Nothing is held except one
small state per node, so memory does not grow with the number of days. No
database here: :mod:`base.simulate` creates the nodes and writes the rows.

The model (docs/INGEST.md): indoor temperature with heating schedule, seasonal
offset and day-to-day weather; humidity anti-correlated with it, plus showers
and cooking; CO2 rising with occupancy in evenings and at night; a house power
meter with baseload, fridge cycling, activity and kettle spikes; batteries
slowly decaying and replaced every 400 days (which reboots the mote); light
following daylight; pressure with weather. Values are quantised to each
sensor's resolution, receipt times carry a few seconds of jitter
(microseconds kept), packets go missing, and nodes go quiet for hours.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from base.simplan import (  # re-exported: the simulator's public names live here too
    _HOUSE,
    _NODE,
    _OCCUPANCY,
    _PACKET,
    _PARENT,
    _QUIET,
    _WEATHER,
    BATTERY_LIFE_DAYS,
    DAY,
    DEFAULT_SENSORS,
    EPOCH,
    MAX_NODE_ID,
    RESOLUTION,
    SLOTS_PER_HOUSE,
    SUPPORTED,
    NodeSpec,
    Packet,
    Plan,
    _rng,
    epoch_seconds,
    from_epoch_seconds,
)

__all__ = [
    "BATTERY_LIFE_DAYS", "DAY", "DEFAULT_SENSORS", "EPOCH", "MAX_NODE_ID", "RESOLUTION",
    "SLOTS_PER_HOUSE", "SUPPORTED", "NodeSpec", "Packet", "Plan", "epoch_seconds",
    "from_epoch_seconds", "generate",
]


# --------------------------------------------------------------------------- the model


def _season(ts: float) -> float:
    """-1 in late January, +1 in late July."""
    return -math.cos(2 * math.pi * ((ts / DAY - 20) % 365.25) / 365.25)


def _smooth_window(hour: float, start: float, end: float, ramp: float = 0.5) -> float:
    """1 inside [start, end) hours of the day, ramping linearly over ``ramp`` hours."""
    up = min(max((hour - start) / ramp + 0.5, 0.0), 1.0)
    down = min(max((end - hour) / ramp + 0.5, 0.0), 1.0)
    return min(up, down)


def _first_order(t_h: float, intervals: Iterable[tuple[float, float]], tau: float) -> float:
    """Response (0..1) of a first-order system driven to 1 during each (start, end) hour span."""
    total = 0.0
    for a, b in intervals:
        if t_h <= a:
            continue
        on = min(t_h, b) - a
        level = 1 - math.exp(-on / tau)
        if t_h > b:
            level *= math.exp(-(t_h - b) / tau)
        total += level
    return min(total, 1.0)


# Hours occupied, per room type, and CO2 rise at full occupancy (ppm).
OCCUPANCY = {
    "Living Room": (((18.0, 23.0),), 650.0),
    "Bedroom": (((22.5, 31.0),), 1100.0),  # 31 = 07:00 next morning
    "Kitchen": (((7.0, 8.0), (17.5, 19.0)), 500.0),
    "Bathroom": (((7.0, 7.75), (21.5, 22.0)), 300.0),
    "Hall": (((7.5, 8.5), (17.0, 18.0)), 120.0),
    "Other": (((19.0, 21.0),), 300.0),
    "Loft": ((), 0.0),
    "Outside": ((), 0.0),
    "Utility": ((), 0.0),
}
ROOM_TEMPERATURE = {
    "Living Room": 20.5,
    "Kitchen": 20.0,
    "Bedroom": 18.5,
    "Bathroom": 20.0,
    "Hall": 18.0,
    "Loft": 14.0,
    "Other": 19.0,
    "Utility": 17.0,
}


class _NodeModel:
    """The time series of one node. Holds only day-level caches: memory is constant."""

    def __init__(self, plan: Plan, spec: NodeSpec):
        self.plan = plan
        self.spec = spec
        seed = plan.seed
        nr = _rng(seed, _NODE, spec.id)
        hr = _rng(seed, _HOUSE, spec.house)
        self.phase = nr.uniform(0, plan.period)
        self.temp_offset = nr.gauss(0, 0.4)
        self.rh_offset = nr.gauss(0, 3)
        self.rssi_base = nr.uniform(-88, -45)
        self.battery_phase = nr.uniform(0, BATTERY_LIFE_DAYS) * DAY
        self.battery_new = nr.uniform(3.15, 3.25)
        self.co2_sensor_offset = nr.gauss(0, 15)
        self.baseload = hr.uniform(70, 160)
        self.fridge_phase = hr.uniform(0, 45)
        self.fridge_watts = hr.uniform(70, 120)
        self.heating = hr.uniform(1.5, 3.5)
        self.parent_hour = -1
        self.parent_id = spec.sink
        self.day = -(10**9)
        self.day_cache: dict[str, Any] = {}

    # day-level randomness: weather and occupancy per house, outages per node
    def _house_day(self, tag: int, day: int) -> random.Random:
        return _rng(self.plan.seed, tag, self.spec.house, day)

    def _weather(self, day: int) -> tuple[float, float, float]:
        r = self._house_day(_WEATHER, day)
        return r.gauss(0, 3.0), r.uniform(0.25, 1.0), r.gauss(0, 8.0)

    def _quiet(self, day: int) -> tuple[float, float] | None:
        r = _rng(self.plan.seed, _QUIET, self.spec.id, day)
        if r.random() >= self.plan.quiet_per_day:
            return None
        begin = day * DAY + r.uniform(0, DAY)
        return begin, begin + r.uniform(1, 8) * 3600

    def _load_day(self, day: int) -> None:
        self.day = day
        occ = self._house_day(_OCCUPANCY, day)
        away = occ.random() < 0.08
        self.day_cache = {
            "weather": (self._weather(day), self._weather(day + 1)),
            "occupancy": 0.0 if away else occ.uniform(0.5, 1.2),
            "occupancy_prev": self._prev_occupancy(day),
            "quiet": [q for q in (self._quiet(day - 1), self._quiet(day)) if q],
        }

    def _prev_occupancy(self, day: int) -> float:
        occ = self._house_day(_OCCUPANCY, day - 1)
        away = occ.random() < 0.08
        return 0.0 if away else occ.uniform(0.5, 1.2)

    def is_quiet(self, ts: float) -> bool:
        return any(a <= ts < b for a, b in self.day_cache["quiet"])

    def weather(self, ts: float) -> tuple[float, float, float]:
        """Outdoor anomaly (°C), cloudiness factor, pressure anomaly, smooth across days."""
        (a0, c0, p0), (a1, c1, p1) = self.day_cache["weather"]
        f = (ts % DAY) / DAY
        return a0 + (a1 - a0) * f, c0 + (c1 - c0) * f, p0 + (p1 - p0) * f

    def outdoor(self, ts: float, hour: float) -> float:
        anomaly, _, _ = self.weather(ts)
        return 10 + 7 * _season(ts) + anomaly + 4 * math.sin(2 * math.pi * (hour - 9) / 24)

    def occupancy(self, hour: float, room_type: str) -> float:
        spans, _ = OCCUPANCY.get(room_type, OCCUPANCY["Other"])
        today = self.day_cache["occupancy"]
        yesterday = self.day_cache["occupancy_prev"]
        level = 0.0
        # Yesterday's spans shifted back 24 h carry a night (22:30 → 07:00) over midnight.
        if yesterday:
            level += yesterday * _first_order(hour + 24, spans, 1.2)
        if today:
            level += today * _first_order(hour, spans, 1.2)
        return level

    def temperature(self, ts: float, hour: float) -> float:
        kind = self.spec.room_type
        outdoor = self.outdoor(ts, hour)
        if kind == "Outside":
            return outdoor
        base = ROOM_TEMPERATURE.get(kind, 19.0) + self.temp_offset
        coupling = 0.7 if kind == "Loft" else 0.3
        mean_out = 10 + 7 * _season(ts) + self.weather(ts)[0]
        heat_need = min(max((14 - (10 + 7 * _season(ts))) / 8, 0.0), 1.0)
        schedule = max(_smooth_window(hour, 6.5, 9.0), _smooth_window(hour, 17.0, 22.5))
        t = base + coupling * (mean_out - 10) + heat_need * self.heating * (schedule - 0.5)
        t += 0.6 * math.sin(2 * math.pi * (hour - 10) / 24)
        if kind == "Kitchen":
            t += 1.5 * self.occupancy(hour, kind)
        return t

    def humidity(self, temperature: float, ts: float, hour: float) -> float:
        kind = self.spec.room_type
        if kind == "Outside":
            return 80 - 3.0 * (temperature - (10 + 7 * _season(ts))) + self.rh_offset
        rh = 50 + self.rh_offset + 6 * _season(ts) - 3.0 * (temperature - 20)
        if kind == "Bathroom":
            rh += 30 * self.occupancy(hour, kind)
        elif kind == "Kitchen":
            rh += 10 * self.occupancy(hour, kind)
        elif kind == "Bedroom":
            rh += 4 * self.occupancy(hour, kind)
        return rh

    def co2(self, hour: float) -> float:
        _, rise = OCCUPANCY.get(self.spec.room_type, OCCUPANCY["Other"])
        return 420 + self.co2_sensor_offset + rise * self.occupancy(hour, self.spec.room_type)

    def power(self, hour: float, minute_of_day: float, rng: random.Random) -> float:
        watts = self.baseload
        if (minute_of_day + self.fridge_phase) % 45 < 15:
            watts += self.fridge_watts
        home = self.day_cache["occupancy"]
        activity = 250 * _smooth_window(hour, 6.75, 8.5) + 400 * _smooth_window(hour, 17.0, 23.0)
        watts += home * activity
        if home and 6.5 <= hour < 23 and rng.random() < 0.05:
            watts += rng.uniform(1500, 3000)  # kettle, oven, shower pump
        return watts

    def light(self, ts: float, hour: float, outdoor_scale: float) -> float:
        length = 12 + 4.5 * _season(ts)
        sunrise = 12.25 - length / 2
        daylight = max(0.0, math.sin(math.pi * (hour - sunrise) / length))
        _, cloud, _ = self.weather(ts)
        lux = outdoor_scale * daylight * cloud
        if self.spec.room_type != "Outside":
            lux += 150 * _smooth_window(hour, 17.0, 23.0) * self.day_cache["occupancy"]
        return lux

    def parent(self, hour_index: int) -> int:
        """Mostly the house's gateway; for some hours a neighbour relays (routes change)."""
        if hour_index != self.parent_hour:
            self.parent_hour = hour_index
            pr = _rng(self.plan.seed, _PARENT, self.spec.id, hour_index)
            self.parent_id = self.spec.sink
            if self.spec.neighbours and pr.random() < 0.2:
                self.parent_id = pr.choice(self.spec.neighbours)
        return self.parent_id

    def seq_num(self, step: int) -> int:
        """The radio's 8-bit packet counter: +1 per sample, from 0 when the mote boots."""
        # Counted on the sample grid, not the jittered time, so it never skips or repeats.
        grid_age = (step * self.plan.period + self.battery_phase) % (BATTERY_LIFE_DAYS * DAY)
        return int(grid_age // self.plan.period) % 256

    def battery(self, age_s: float, temperature: float) -> float:
        age = age_s / DAY
        v = self.battery_new - 0.0012 * age - 0.4 * max(0.0, (age - 330) / 70) ** 2
        return v + 0.002 * (temperature - 20)

    def packet(self, step: int) -> Packet | None:
        plan = self.plan
        rng = _rng(plan.seed, _PACKET, self.spec.id, step)
        ts = step * plan.period + self.phase + rng.uniform(0, plan.jitter_max)
        day = int(ts // DAY)
        if day != self.day:
            self._load_day(day)
        # Draw everything before deciding to drop, so one choice never shifts another's numbers.
        lost = rng.random() < plan.missing
        if lost or self.is_quiet(ts):
            return None
        hour = (ts % DAY) / 3600
        temperature = self.temperature(ts, hour)
        values: list[tuple[int, float]] = []
        for tid, code in self.spec.sensors:
            if code == "T":
                v = temperature + rng.gauss(0, 0.05)
            elif code == "RH":
                v = min(max(self.humidity(temperature, ts, hour) + rng.gauss(0, 0.4), 1.0), 99.9)
            elif code == "CO2":
                v = max(self.co2(hour) + rng.gauss(0, 8), 350.0)
            elif code == "BAT":
                age = (ts + self.battery_phase) % (BATTERY_LIFE_DAYS * DAY)
                v = max(self.battery(age, temperature) + rng.gauss(0, 0.002), 2.0)
            elif code == "POW":
                v = max(self.power(hour, (ts % DAY) / 60, rng) + rng.gauss(0, 5), 0.0)
            elif code == "PAR":
                scale = 40_000 if self.spec.room_type == "Outside" else 400
                v = max(self.light(ts, hour, scale) * (1 + rng.gauss(0, 0.02)), 0.0)
            elif code == "TSR":
                scale = 80_000 if self.spec.room_type == "Outside" else 700
                v = max(self.light(ts, hour, scale) * (1 + rng.gauss(0, 0.02)), 0.0)
            else:  # "P"
                v = 1013 + self.weather(ts)[2] + rng.gauss(0, 0.2)
            values.append((tid, round(v, RESOLUTION[code])))
        age = (ts + self.battery_phase) % (BATTERY_LIFE_DAYS * DAY)
        return Packet(
            time=from_epoch_seconds(ts),
            node=self.spec,
            step=step,
            values=tuple(values),
            parent=self.parent(int(ts // 3600)),
            localtime=int(age),  # seconds since the mote booted (its last battery change)
            seq_num=self.seq_num(step),
            rssi=round(self.rssi_base + rng.gauss(0, 3)),
        )


def _node_packets(plan: Plan, spec: NodeSpec, first: int, stop: int | None) -> Iterator[Packet]:
    model = _NodeModel(plan, spec)
    steps: Iterable[int] = itertools.count(first) if stop is None else range(first, stop)
    for step in steps:
        p = model.packet(step)
        if p is not None:
            yield p


def generate(
    plan: Plan, nodes: Sequence[NodeSpec], start: datetime, end: datetime | None = None
) -> Iterator[Packet]:
    """Packets of samples whose nominal time is in [start, end), in receipt-time order.

    No database needed. With ``end=None`` it never ends (real time). Memory is
    one small state per node whatever the range.
    """
    first = math.ceil(epoch_seconds(start) / plan.period)
    stop = None if end is None else math.ceil(epoch_seconds(end) / plan.period)
    streams = [_node_packets(plan, spec, first, stop) for spec in nodes]
    return heapq.merge(*streams, key=lambda p: (p.time, p.node.id))
