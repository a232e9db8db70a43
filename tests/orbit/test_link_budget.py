"""Link budgets against hand calculations; rate never increases with range."""

from __future__ import annotations

import math

import numpy as np
import pytest

from research.orbit import LINK_PRESETS, OpticalLink, RFLink, dvbs2_efficiency, fspl_db
from research.orbit.link_budget import doppler_shift_hz, link_from_dict, propagation_delay_s


def test_fspl_textbook_formula():
    # FSPL [dB] = 92.45 + 20 log10(d / km) + 20 log10(f / GHz)
    for d_km, f_ghz in ((1000.0, 8.2), (550.0, 2.05), (4000.0, 23.0)):
        hand = 92.45 + 20 * math.log10(d_km) + 20 * math.log10(f_ghz)
        assert abs(float(fspl_db(d_km * 1e3, f_ghz * 1e9)) - hand) < 0.01


def test_shannon_rate_by_hand():
    link = RFLink("t", 8.0e9, tx_power_w=10.0, tx_gain_dbi=10.0, rx_g_over_t_dbk=20.0,
                  bandwidth_hz=100e6, rate_model="shannon", shannon_gap_db=3.0)
    d = 1000e3
    eirp = 10 * math.log10(10.0) + 10.0  # 20 dBW
    fspl = 20 * math.log10(4 * math.pi * d * 8.0e9 / 299_792_458.0)
    cn0 = eirp - fspl + 20.0 + 228.5991
    snr = cn0 - 10 * math.log10(100e6)
    rate = 100e6 * math.log2(1 + 10 ** ((snr - 3.0) / 10))
    assert link.eirp_dbw() == pytest.approx(20.0)
    assert float(link.cn0_dbhz(d)) == pytest.approx(cn0, abs=1e-9)
    assert float(link.rate_bps(d)) == pytest.approx(rate, rel=1e-9)


def test_dvbs2_rate_by_hand():
    link = RFLink("t", 8.0e9, 10.0, 10.0, 20.0, 135e6, rolloff=0.35,
                  implementation_margin_db=1.0)
    rs = 135e6 / 1.35
    for d in (500e3, 2000e3, 8000e3):
        esn0 = float(link.cn0_dbhz(d)) - 10 * math.log10(rs) - 1.0
        from research.orbit.link_budget import DVBS2_MODCODS

        ok = [eff for _, eff, thr in DVBS2_MODCODS if thr <= esn0]
        assert float(link.rate_bps(d)) == pytest.approx(max(ok) * rs if ok else 0.0)
    assert float(dvbs2_efficiency(16.1)) == pytest.approx(4.453027)  # 32APSK 9/10
    assert float(dvbs2_efficiency(1.0)) == pytest.approx(0.988858)  # QPSK 1/2
    assert float(dvbs2_efficiency(-3.0)) == 0.0


@pytest.mark.parametrize("name", sorted(LINK_PRESETS))
def test_rate_never_increases_with_range(name):
    link = LINK_PRESETS[name]
    d = np.linspace(100e3, 12000e3, 4000)
    rate = link.rate_bps(d)
    assert np.all(np.diff(rate) <= 1e-6)
    assert rate[0] > 0


def test_presets_are_sensible():
    x = LINK_PRESETS["x_band_eo"]
    r_near, r_far = x.rate_bps(np.array([600e3, 2500e3]))
    assert 100e6 < r_far < r_near <= 600e6  # hundreds of Mbit/s, ACM
    assert LINK_PRESETS["optical_isl"].rate_bps(4999e3) == 10e9
    assert LINK_PRESETS["optical_isl"].rate_bps(5001e3) == 0.0


def test_link_from_dict_and_typos():
    m = link_from_dict({"preset": "x_band_eo", "rain_margin_db": 3.0})
    assert isinstance(m, RFLink) and m.rain_margin_db == 3.0
    assert isinstance(link_from_dict(LINK_PRESETS["optical_isl"].to_dict()), OpticalLink)
    assert link_from_dict(LINK_PRESETS["ka_band_eo"].to_dict()) == LINK_PRESETS["ka_band_eo"]
    with pytest.raises(ValueError, match="unknown key.*'rain_margn_db'.*valid keys"):
        link_from_dict({"preset": "x_band_eo", "rain_margn_db": 3.0})
    with pytest.raises(KeyError, match="unknown link preset 'xband'"):
        link_from_dict({"preset": "xband"})
    with pytest.raises(ValueError, match="rate_model"):
        RFLink("t", 8e9, 1, 1, 1, 1e6, rate_model="magic")


def test_delay_and_doppler():
    assert float(propagation_delay_s(299_792_458.0)) == pytest.approx(1.0)
    # Closing at 7 km/s on 8.2 GHz: about +191 kHz.
    assert float(doppler_shift_hz(-7000.0, 8.2e9)) == pytest.approx(8.2e9 * 7000 / 299_792_458.0)
