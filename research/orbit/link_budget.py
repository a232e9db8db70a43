"""Link budgets: free-space path loss, EIRP, G/T, margins, SNR and the rate they allow.

``C/N0 [dBHz] = EIRP - FSPL(d, f) - L_atm - L_rain - L_other + G/T + 228.6``, with
``FSPL = 20 log10(4 pi d f / c)`` and 228.6 = -10 log10(Boltzmann). The rate is either Shannon
with an implementation gap, ``B log2(1 + SNR / gap)``, or the best DVB-S2 MODCOD whose ideal
Es/N0 threshold (ETSI EN 302 307-1, Table 13, normal FECFRAME, AWGN, quasi-error-free) is met
after an implementation margin, times the symbol rate ``B / (1 + rolloff)``. Both never increase
with range. Optical ISLs are modelled by a configured rate up to a maximum range.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Protocol

import numpy as np

from research.constants import BOLTZMANN_DBW, C_M_S

# (name, spectral efficiency [bit/symbol], ideal Es/N0 [dB]) - ETSI EN 302 307-1 Table 13.
DVBS2_MODCODS: tuple[tuple[str, float, float], ...] = (
    ("QPSK 1/4", 0.490243, -2.35),
    ("QPSK 1/3", 0.656448, -1.24),
    ("QPSK 2/5", 0.789412, -0.30),
    ("QPSK 1/2", 0.988858, 1.00),
    ("QPSK 3/5", 1.188304, 2.23),
    ("QPSK 2/3", 1.322253, 3.10),
    ("QPSK 3/4", 1.487473, 4.03),
    ("QPSK 4/5", 1.587196, 4.68),
    ("QPSK 5/6", 1.654663, 5.18),
    ("QPSK 8/9", 1.766451, 6.20),
    ("QPSK 9/10", 1.788612, 6.42),
    ("8PSK 3/5", 1.779991, 5.50),
    ("8PSK 2/3", 1.980636, 6.62),
    ("8PSK 3/4", 2.228124, 7.91),
    ("8PSK 5/6", 2.478562, 9.35),
    ("8PSK 8/9", 2.646012, 10.69),
    ("8PSK 9/10", 2.679207, 10.98),
    ("16APSK 2/3", 2.637201, 8.97),
    ("16APSK 3/4", 2.966728, 10.21),
    ("16APSK 4/5", 3.165623, 11.03),
    ("16APSK 5/6", 3.300184, 11.61),
    ("16APSK 8/9", 3.523143, 12.89),
    ("16APSK 9/10", 3.567342, 13.13),
    ("32APSK 3/4", 3.703295, 12.73),
    ("32APSK 4/5", 3.951571, 13.64),
    ("32APSK 5/6", 4.119540, 14.28),
    ("32APSK 8/9", 4.397854, 15.69),
    ("32APSK 9/10", 4.453027, 16.05),
)


def _dvbs2_envelope() -> tuple[np.ndarray, np.ndarray]:
    """Thresholds (sorted) and the best efficiency reachable at or above each one."""
    rows = sorted(DVBS2_MODCODS, key=lambda r: r[2])
    thr = np.array([r[2] for r in rows])
    eff = np.maximum.accumulate(np.array([r[1] for r in rows]))
    return thr, eff


_DVBS2_THR, _DVBS2_EFF = _dvbs2_envelope()


def fspl_db(range_m: np.ndarray | float, frequency_hz: float) -> np.ndarray:
    """Free-space path loss ``20 log10(4 pi d f / c)`` in dB."""
    d = np.asarray(range_m, dtype=np.float64)
    return 20.0 * np.log10(4.0 * math.pi * d * frequency_hz / C_M_S)


def dvbs2_efficiency(esn0_db: np.ndarray | float) -> np.ndarray:
    """Best DVB-S2 spectral efficiency (bit/symbol) at this Es/N0; 0 below QPSK 1/4."""
    x = np.asarray(esn0_db, dtype=np.float64)
    idx = np.searchsorted(_DVBS2_THR, x, side="right") - 1
    return np.where(idx >= 0, _DVBS2_EFF[np.clip(idx, 0, None)], 0.0)


class LinkModel(Protocol):
    """What the contact plan needs from a link: rate from range, power, carrier, reach."""

    name: str
    tx_power_w: float
    max_range_m: float | None

    @property
    def carrier_hz(self) -> float: ...

    def rate_bps(self, range_m: np.ndarray | float) -> np.ndarray: ...

    def to_dict(self) -> dict: ...


@dataclass(frozen=True)
class RFLink:
    """A radio link budget (one direction).

    Args:
        name: label kept in saved plans.
        frequency_hz: carrier frequency.
        tx_power_w: transmitter RF output power; also the power charged as transmission energy.
        tx_gain_dbi: transmit antenna gain.
        rx_g_over_t_dbk: receive figure of merit G/T.
        bandwidth_hz: occupied bandwidth ``B``.
        tx_losses_db: feeder / line losses on the transmit side.
        atmospheric_loss_db: gaseous absorption margin (0 for ISLs).
        rain_margin_db: rain fade margin (0 for ISLs; a few dB at Ka-band).
        other_losses_db: pointing, polarisation, ... .
        rate_model: ``dvbs2`` (MODCOD table) or ``shannon``.
        shannon_gap_db: implementation gap for ``shannon``.
        implementation_margin_db: subtracted from Es/N0 before the DVB-S2 table.
        rolloff: DVB-S2 roll-off (0.20, 0.25, 0.35); symbol rate ``B/(1+rolloff)``.
        max_rate_bps: modem cap (``None``: none).
        max_range_m: beyond this range the link is down (``None``: no limit).
    """

    name: str
    frequency_hz: float
    tx_power_w: float
    tx_gain_dbi: float
    rx_g_over_t_dbk: float
    bandwidth_hz: float
    tx_losses_db: float = 0.0
    atmospheric_loss_db: float = 0.0
    rain_margin_db: float = 0.0
    other_losses_db: float = 0.0
    rate_model: str = "dvbs2"
    shannon_gap_db: float = 3.0
    implementation_margin_db: float = 1.0
    rolloff: float = 0.35
    max_rate_bps: float | None = None
    max_range_m: float | None = None

    def __post_init__(self) -> None:
        if self.rate_model not in ("dvbs2", "shannon"):
            raise ValueError(f"link {self.name}: rate_model must be 'dvbs2' or 'shannon', "
                             f"got {self.rate_model!r}")
        for k in ("frequency_hz", "tx_power_w", "bandwidth_hz"):
            if not getattr(self, k) > 0:
                raise ValueError(f"link {self.name}: {k} must be positive, got {getattr(self, k)}")
        if not 0 <= self.rolloff <= 1:
            raise ValueError(f"link {self.name}: rolloff must be in 0..1, got {self.rolloff}")

    @property
    def carrier_hz(self) -> float:
        return self.frequency_hz

    def eirp_dbw(self) -> float:
        return 10.0 * math.log10(self.tx_power_w) + self.tx_gain_dbi - self.tx_losses_db

    def cn0_dbhz(self, range_m: np.ndarray | float) -> np.ndarray:
        """Carrier-to-noise-density ratio at this range."""
        losses = self.atmospheric_loss_db + self.rain_margin_db + self.other_losses_db
        return (self.eirp_dbw() - fspl_db(range_m, self.frequency_hz) - losses
                + self.rx_g_over_t_dbk - BOLTZMANN_DBW)

    def symbol_rate(self) -> float:
        return self.bandwidth_hz / (1.0 + self.rolloff)

    def snr_db(self, range_m: np.ndarray | float) -> np.ndarray:
        """C/N in the bandwidth ``B`` (Shannon) or Es/N0 at the symbol rate (DVB-S2)."""
        ref = self.bandwidth_hz if self.rate_model == "shannon" else self.symbol_rate()
        return self.cn0_dbhz(range_m) - 10.0 * math.log10(ref)

    def rate_bps(self, range_m: np.ndarray | float) -> np.ndarray:
        """Achievable information rate (bit/s); 0 where the link does not close."""
        snr = self.snr_db(range_m)
        if self.rate_model == "shannon":
            lin = 10.0 ** ((snr - self.shannon_gap_db) / 10.0)
            rate = self.bandwidth_hz * np.log2(1.0 + lin)
        else:
            rate = dvbs2_efficiency(snr - self.implementation_margin_db) * self.symbol_rate()
        if self.max_rate_bps is not None:
            rate = np.minimum(rate, self.max_rate_bps)
        if self.max_range_m is not None:
            rate = np.where(np.asarray(range_m) <= self.max_range_m, rate, 0.0)
        return np.asarray(rate, dtype=np.float64)

    def to_dict(self) -> dict:
        return {"model": "rf", **asdict(self)}


@dataclass(frozen=True)
class OpticalLink:
    """A laser ISL: a fixed rate up to ``max_range_m`` (the terminal's rated range).

    ``tx_power_w`` is the terminal's electrical power while transmitting (charged as energy).
    """

    name: str
    rate: float
    max_range_m: float | None
    tx_power_w: float
    wavelength_m: float = 1550e-9

    def __post_init__(self) -> None:
        if not self.rate > 0 or not self.tx_power_w > 0:
            raise ValueError(f"optical link {self.name}: rate and tx_power_w must be positive")

    @property
    def carrier_hz(self) -> float:
        return C_M_S / self.wavelength_m

    def rate_bps(self, range_m: np.ndarray | float) -> np.ndarray:
        d = np.asarray(range_m, dtype=np.float64)
        lim = np.inf if self.max_range_m is None else self.max_range_m
        return np.where(d <= lim, float(self.rate), 0.0)

    def to_dict(self) -> dict:
        return {"model": "optical", **asdict(self)}


# Defaults. Representative values, to be replaced by a mission's own budget:
# - X-band EO downlink: EESS band 8025-8400 MHz (ITU Radio Regulations Art. 5); ~5 W SSPA and a
#   ~6 dBi isoflux antenna (small EO satellites, e.g. Planet's Dove/SuperDove X-band); G/T 30 dB/K
#   for a 5-7 m station dish (KSAT/SSC multi-mission antennas quote ~30-33 dB/K); 150 MHz, DVB-S2
#   ACM (CCSDS 131.3-B-1 allows DVB-S2 for EO downlinks).
# - Ka-band EO downlink: EESS 25.5-27 GHz; 10 W, 20 dBi, G/T 35 dB/K, 500 MHz, 6 dB rain margin.
# - S-band uplink (telecommand / model uploads): 2025-2110 MHz; 50 W, 35 dBi dish at the station,
#   satellite G/T -25 dB/K (low-gain antenna, ~500 K), 2 MHz.
# - RF ISL: 22.55-23.55 GHz inter-satellite service band; 10 W, 32 dBi, G/T 5 dB/K, 400 MHz.
# - Optical ISL: 10 Gbit/s up to 5000 km, 40 W terminal (class of current LEO laser terminals,
#   e.g. Tesat SCOT80, Mynaric CONDOR; SDA's standard asks >= 2.5 Gbit/s).
LINK_PRESETS: dict[str, LinkModel] = {
    "x_band_eo": RFLink("x_band_eo", 8.2e9, 5.0, 6.0, 30.0, 150e6, tx_losses_db=1.0,
                        atmospheric_loss_db=0.5, rain_margin_db=1.0, other_losses_db=1.0),
    "ka_band_eo": RFLink("ka_band_eo", 26.0e9, 10.0, 20.0, 35.0, 500e6, tx_losses_db=1.0,
                         atmospheric_loss_db=1.0, rain_margin_db=6.0, other_losses_db=1.0),
    "s_band_uplink": RFLink("s_band_uplink", 2.05e9, 50.0, 35.0, -25.0, 2e6, tx_losses_db=1.0,
                            atmospheric_loss_db=0.3, other_losses_db=1.0),
    "rf_isl": RFLink("rf_isl", 23.0e9, 10.0, 32.0, 5.0, 400e6, tx_losses_db=1.0,
                     other_losses_db=1.0, max_range_m=5.0e6),
    "optical_isl": OpticalLink("optical_isl", 10e9, 5.0e6, 40.0),
}


def list_link_presets() -> list[str]:
    return sorted(LINK_PRESETS)


def link_from_dict(d: dict) -> LinkModel:
    """Rebuild a link: ``{"preset": name, ...overrides}`` or ``{"model": "rf"|"optical", ...}``."""
    d = dict(d)
    if "preset" in d:
        name = d.pop("preset")
        if not isinstance(name, str) or name not in LINK_PRESETS:
            raise KeyError(f"unknown link preset {name!r}; valid presets: {list_link_presets()}")
        base = LINK_PRESETS[name]
        _check_fields(type(base), d, f"link preset {name}")
        return replace(base, **d) if d else base
    model = d.pop("model", None)
    cls = {"rf": RFLink, "optical": OpticalLink}.get(model)
    if cls is None:
        raise ValueError(f"link needs 'preset' or 'model' ('rf' or 'optical'), got {model!r}")
    _check_fields(cls, d, f"{model} link")
    return cls(**d)


def _check_fields(cls: type, d: dict, where: str) -> None:
    """Known keys only, each holding its field's annotated type (a bool is no number)."""
    import typing

    from research.configfile import matches_hint

    valid = [f.name for f in fields(cls)]
    unknown = [k for k in d if k not in valid]
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; valid keys: {valid}")
    hints = typing.get_type_hints(cls)
    for key, value in d.items():
        if not matches_hint(value, hints[key]):
            expected = str(hints[key]).replace("<class '", "").replace("'>", "")
            raise ValueError(f"{where}: {key} must be {expected}, got {value!r}")


def propagation_delay_s(range_m: np.ndarray | float) -> np.ndarray:
    """One-way light time."""
    return np.asarray(range_m, dtype=np.float64) / C_M_S


def doppler_shift_hz(range_rate_m_s: np.ndarray | float, carrier_hz: float) -> np.ndarray:
    """First-order Doppler shift ``-f * rdot / c`` (positive when closing)."""
    return -carrier_hz * np.asarray(range_rate_m_s, dtype=np.float64) / C_M_S
