"""One registry of device profiles: time and energy of FLOPs, energy per op, with sources."""

import numpy as np
import pytest

from devices import DeviceProfile, get_device, list_devices, register_device, what_if

DENSE = ("jetson_nano", "jetson_orin_nx", "a100")
PER_OP_ONLY = ("cmos45nm", "loihi")


def test_registry_holds_every_device_once():
    assert set(list_devices()) == set(DENSE) | set(PER_OP_ONLY)
    assert list_devices() == sorted(list_devices())
    for name in list_devices():
        p = get_device(name)
        assert p.name == name and p.source and get_device(p) is p
        assert p.to_dict()["name"] == name and p.to_dict()["mac_j"] == p.mac_j


def test_seconds_and_energy_follow_throughput_and_power():
    p = get_device("jetson_nano")
    assert p.effective_flops == pytest.approx(472e9 * 0.3)
    assert p.seconds(p.effective_flops) == pytest.approx(1.0)
    assert p.energy_j(2 * p.effective_flops) == pytest.approx(2 * p.power_w)


def test_ground_is_faster_than_board():
    assert get_device("a100").seconds(1e12) < get_device("jetson_nano").seconds(1e12)


@pytest.mark.parametrize("name", DENSE)
def test_dense_mac_energy_is_power_over_sustained_throughput(name):
    """The per-op price of a dense device is the FLOP price: one number, not two."""
    p = get_device(name)
    assert not p.event_driven and p.has_throughput
    per_mac = 2 * p.power_w / (p.peak_flops * p.utilisation)
    assert p.mac_j == pytest.approx(per_mac, rel=1e-12)
    assert p.synop_j == p.neuron_update_j == p.mac_j  # a GPU runs spiking layers densely
    flops = 3.7e9
    assert p.energy_j(flops) == pytest.approx(flops / 2 * p.mac_j, rel=1e-12)


def test_dense_profile_with_inconsistent_mac_energy_is_rejected():
    a100 = get_device("a100")
    fields = {**a100.to_dict(), "name": "a100_fp32", "mac_j": 2 * 400.0 / 19.5e12}
    with pytest.raises(ValueError, match="sustained throughput"):
        DeviceProfile(**fields)


@pytest.mark.parametrize("name", PER_OP_ONLY)
def test_per_op_only_profiles_refuse_time_and_flop_energy(name):
    p = get_device(name)
    assert p.event_driven and not p.has_throughput and p.peak_flops is None
    assert p.mac_j > 0 and p.synop_j > 0 and p.neuron_update_j > 0
    for call in (lambda: p.seconds(1e9), lambda: p.energy_j(1e9), lambda: p.effective_flops,
                 p.require_throughput):
        with pytest.raises(ValueError, match="no throughput model") as err:
            call()
        assert all(d in str(err.value) for d in DENSE)
    assert get_device("a100").require_throughput() is get_device("a100")


def test_published_per_op_constants_are_kept():
    cmos, loihi = get_device("cmos45nm"), get_device("loihi")
    assert (cmos.mac_j, cmos.synop_j, cmos.neuron_update_j) == (4.6e-12, 0.9e-12, 4.6e-12)
    assert (loihi.mac_j, loihi.synop_j, loihi.neuron_update_j) == (4.6e-12, 23.6e-12, 81e-12)
    assert "Horowitz" in cmos.source and "Davies" in loihi.source
    assert "DA-09366-001" in get_device("jetson_nano").source


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown device profile 'tpu'") as err:
        get_device("tpu")
    for name in list_devices():
        assert repr(name) in str(err.value)


def test_invalid_profiles_are_named():
    with pytest.raises(ValueError, match="utilisation"):
        DeviceProfile.dense("x", 1e9, 1.5, 1.0, 1e9, "")
    with pytest.raises(ValueError, match="peak_flops and memory_bytes"):
        DeviceProfile.dense("x", -1e9, 0.5, 1.0, 1e9, "")
    with pytest.raises(ValueError, match="utilisation=None and power_w=None"):
        DeviceProfile("x", None, 0.5, None, None, 1e-12, 1e-12, 1e-12, True, "")
    with pytest.raises(ValueError, match="dense"):
        DeviceProfile("x", None, None, None, None, 1e-12, 1e-12, 1e-12, False, "")
    with pytest.raises(ValueError, match=">= 0"):
        DeviceProfile("x", None, None, None, None, -1e-12, 1e-12, 1e-12, True, "")
    with pytest.raises(ValueError, match="flops must be >= 0"):
        get_device("a100").seconds(-1)
    with pytest.raises(ValueError, match="already registered"):
        register_device(get_device("a100"))


def test_what_if_scales_throughput_keeps_power_and_memory(monkeypatch):
    from devices import profiles

    monkeypatch.setattr(profiles, "_DEVICES", dict(profiles._DEVICES))  # registers globally
    nano = get_device("jetson_nano")
    name = what_if("jetson_nano", 4)
    fast = get_device(name)
    assert name == "jetson_nano_x4" and what_if("jetson_nano", 4.0) == name  # registered once
    assert fast.seconds(1e12) == pytest.approx(nano.seconds(1e12) / 4)
    assert fast.energy_j(1e12) == pytest.approx(nano.energy_j(1e12) / 4)  # same power, 1/4 time
    assert (fast.power_w, fast.memory_bytes) == (nano.power_w, nano.memory_bytes)
    assert what_if("jetson_nano", 1) == "jetson_nano"
    for bad in (0, -2, float("nan"), "fast", True):
        with pytest.raises(ValueError, match="throughput factor > 0"):
            what_if("jetson_nano", bad)
    assert what_if("jetson_nano", np.int64(2)) == "jetson_nano_x2"
    assert what_if("jetson_nano", 1234567) != what_if("jetson_nano", 1234568)  # no rounding
    register_device(DeviceProfile.dense("jetson_nano_x3", 1e12, 0.5, 10.0, 2**30, "mine"))
    with pytest.raises(ValueError, match="'jetson_nano_x3' is registered with other numbers"):
        what_if("jetson_nano", 3)
    with pytest.raises(ValueError, match="has no throughput model"):
        what_if("loihi", 2)
