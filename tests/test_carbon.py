"""The pure energy and emissions estimate (`minga.common.carbon`): exact arithmetic and the
order in which figures win."""

from __future__ import annotations

import pytest

from minga.common import carbon
from minga.common.carbon import Figure


def test_energy_is_gpus_times_watts_times_hours_times_pue():
    assert carbon.run_energy_kwh(4, 400.0, 3 * 3600.0, 1.5) == 7.2  # 4 x 0.4 kW x 3 h x 1.5
    assert carbon.run_energy_kwh(0, 400.0, 3600.0, 1.5) == 0.0


def test_emissions_are_energy_times_intensity():
    assert carbon.emissions_kg(10.0, 291.0) == pytest.approx(2.91, abs=1e-12)


def test_estimate_keeps_the_figures_it_used():
    got = carbon.estimate(2, 7200.0, Figure(700.0, "sheet"), 1.2, Figure(98.0, "owid", 2023))
    assert got.kwh == pytest.approx(2 * 0.7 * 2 * 1.2)
    assert got.kgco2e == pytest.approx(got.kwh * 98.0 / 1000)
    assert (got.intensity, got.watts, got.pue, got.intensity_source) == (98.0, 700.0, 1.2, "owid")


def test_intensity_site_beats_admin_beats_default_beats_fallback():
    site, admin = Figure(10.0, "admin"), Figure(200.0, "admin")
    assert carbon.resolve_intensity("CL", site, admin) is site
    assert carbon.resolve_intensity("CL", None, admin) is admin
    assert carbon.resolve_intensity("CL", None, None) == Figure(304.0, carbon.INTENSITY_SOURCE, 2023)
    fallback = carbon.resolve_intensity("ZZ", None, None)
    assert fallback.value == carbon.FALLBACK_INTENSITY and fallback.source.startswith("fallback")


def test_watts_by_model_name_and_fallback():
    assert carbon.resolve_watts("A100", None).value == 400.0
    assert carbon.resolve_watts("a100-pcie", None).value == 300.0
    assert carbon.resolve_watts("RTX 4090", None).value == 450.0
    assert carbon.resolve_watts("MI300X", None) == Figure(carbon.FALLBACK_WATTS, carbon.FALLBACK_WATTS_SOURCE)
    assert carbon.resolve_watts("A100", Figure(380.0, "admin")).value == 380.0


def test_bad_input_is_refused_naming_the_field():
    assert carbon.check_country("PE") == "PE"
    for bad in ("pe", "PER", "", "P1"):
        with pytest.raises(ValueError, match="country"):
            carbon.check_country(bad)
    with pytest.raises(ValueError, match="intensity"):
        carbon.check_range("intensity", -1.0, 0.0, carbon.MAX_INTENSITY)
    with pytest.raises(ValueError, match="pue"):
        carbon.check_range("pue", float("nan"), 1.0, carbon.MAX_PUE)
