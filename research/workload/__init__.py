"""Capture workloads: sensors (what a scene weighs) and schedules (who captures what, when).

No torch here: a workload is sizes, times and the indices of the real test images that stand for
each scene's tiles; schemes and the network price them.
"""

from research.workload.captures import Capture, orbital_period_s, schedule_captures
from research.workload.sensors import SensorSpec, get_sensor, list_sensors, register_sensor

__all__ = ["Capture", "SensorSpec", "get_sensor", "list_sensors", "orbital_period_s",
           "register_sensor", "schedule_captures"]
