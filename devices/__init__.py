"""Device profiles: throughput, power, memory and per-operation energy of each device.

The one registry shared by ``snn`` (energy ledger), ``research.fed``, ``research.serving`` and
``research.eval``; it imports nothing from the repository, so every package may depend on it.
"""

from devices.profiles import DeviceProfile, get_device, list_devices, register_device, what_if

__all__ = ["DeviceProfile", "get_device", "list_devices", "register_device", "what_if"]
