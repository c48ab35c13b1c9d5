"""Issue 15, item 3: every zone on Earth has a ``leozone`` label value Kubernetes accepts.

The seed wrote ``<lat>_<lon>``; south of the equator that starts with ``-``,
which is no label value (the API refused the pod with 422 and the emulator's
selector with 400 on every tick). :func:`krios.config.leozone.leozone_label`
keeps the seed's form where it is valid and writes ``s33.8688_e151.2093``
otherwise; :func:`krios.orbits.zones.parse_leozone` reads both. The cluster
tests create real pods on the real apiserver and run the real krios
scheduler on one southern zone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from scheduling_helpers import clean_workers, create_pods, list_pods, orbits, pod_body, raw, set_sat_labels, wait_for

from krios.config import scenarios
from krios.config.leozone import LABEL_VALUE_MAX, LABEL_VALUE_RE, is_label_value, leozone_coordinates
from krios.errors import ConfigError
from krios.orbits.zones import Zone, leozone_label, parse_leozone

REPO = Path(__file__).resolve().parents[1]

#: (name, lat, lon, expected label value)
PLACES = [
    ("sydney", -33.8688, 151.2093, "s33.8688_e151.2093"),
    ("cape_town", -33.9249, 18.4241, "s33.9249_e18.4241"),
    ("santiago", -33.4489, -70.6693, "s33.4489_w70.6693"),
    ("antimeridian_east", 0.0, 180.0, "0_180"),
    ("antimeridian_west", 0.0, -180.0, "0_-180"),
    ("antimeridian_south", -17.7134, -180.0, "s17.7134_w180"),
    ("fiji_east", -17.7134, 180.0, "s17.7134_e180"),
    ("north_pole", 90.0, 0.0, "90_0"),
    ("south_pole", -90.0, 0.0, "s90_e0"),
    ("south_pole_west", -90.0, -45.5, "s90_w45.5"),
    ("san_francisco", 37.7749, -122.4194, "37.7749_-122.4194"),  # the seed's form, unchanged
    ("tokyo", 35.6762, 139.6503, "35.6762_139.6503"),
    ("negative_zero", -0.0, -0.0, "0_0"),
    ("tiny", -1e-300, 5e-324, "s1e-300_e5e-324"),
]


def k8s_valid(value: str) -> bool:
    """Kubernetes' IsValidLabelValue, written out independently of the module under test."""
    import re

    return len(value) <= 63 and re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", value) is not None


@pytest.mark.parametrize(("name", "lat", "lon", "label"), PLACES, ids=[p[0] for p in PLACES])
def test_label_is_valid_and_round_trips(name, lat, lon, label):
    value = leozone_label(lat, lon)
    assert value == label
    assert k8s_valid(value) and is_label_value(value)
    zone = parse_leozone(value, 100, 25)
    assert (zone.lat_deg, zone.lon_deg) == (lat, lon)  # bit-exact, -0.0 == 0.0
    assert Zone(lat, lon).label == value


def test_every_latitude_and_longitude_gives_a_valid_label():
    for lat in [x / 4 for x in range(-360, 361)]:
        for lon in (-180.0, -179.99, -122.4194, -0.5, 0.0, 0.5, 151.2093, 179.999999999, 180.0):
            value = leozone_label(lat, lon)
            assert k8s_valid(value), value
            assert leozone_coordinates(value) == (lat, lon)
    worst = leozone_label(-2.2250738585072014e-308, -1.2345678901234567e-100)
    assert k8s_valid(worst) and len(worst) <= LABEL_VALUE_MAX


@pytest.mark.parametrize("seed", ["37.7749_-122.4194", "0_0", "90_180", "1e-05_2", "35.6762_139.6503"])
def test_the_seeds_form_stays_accepted(seed):
    lat, lon = (float(p) for p in seed.split("_"))
    zone = parse_leozone(seed)
    assert (zone.lat_deg, zone.lon_deg) == (lat, lon)


@pytest.mark.parametrize(("value", "lat", "lon"), [
    ("-33.8688_151.2093", -33.8688, 151.2093),  # the seed's southern form still parses (CLI input)
    ("S33.8688_E151.2093", -33.8688, 151.2093),
    ("n37.7749_w122.4194", 37.7749, -122.4194),
    ("s33.4489_-70.6693", -33.4489, -70.6693),
])
def test_both_forms_parse(value, lat, lon):
    assert leozone_coordinates(value) == (lat, lon)


@pytest.mark.parametrize("bad", ["s-33_e151", "e33_n151", "n33_s151", "x33_e151", "s33", "s33_e151_1",
                                 "nan_0", "n_e", "s_e1", "sinf_e0", "s91_e0", "n0_e181", ""])
def test_malformed_values_are_one_clear_error(bad):
    with pytest.raises(ConfigError) as err:
        parse_leozone(bad)
    assert err.value.source == "label leozone"
    assert "\n" not in str(err.value)


def test_the_module_regex_is_kubernetes_rule():
    assert LABEL_VALUE_RE.pattern == r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
    vars_text = (REPO / "roles" / "krios_validate" / "vars" / "main.yml").read_text()
    assert "krios_validate_label_value_regex: '^" + LABEL_VALUE_RE.pattern + "$'" in vars_text


def southern_scenario(folder: Path, name: str = "sydney_4workers", lat: float = -33.8688,
                      lon: float = 151.2093) -> Path:
    text = (REPO / "scenarios" / "sf_4workers.yml").read_text()
    text = text.replace("name: sf_4workers", f"name: {name}")
    text = text.replace("lat: 37.7749", f"lat: {lat}").replace("lon: -122.4194", f"lon: {lon}")
    path = folder / f"{name}.yml"
    path.write_text(text)
    return path


def test_a_southern_scenario_labels_its_zone_validly(tmp_path):
    sc = scenarios.load(southern_scenario(tmp_path))
    assert sc.leozone == "s33.8688_e151.2093"
    zone = parse_leozone(sc.leozone)
    assert (zone.lat_deg, zone.lon_deg) == (-33.8688, 151.2093)


def test_cli_leozone_option_is_written_as_a_valid_label(tmp_path, capsys):
    """``krios bench ... --leozone -33.8688_151.2093`` parses; the label it puts on pods must be valid."""
    from krios.orbits.zones import is_label_value as public

    value = "-33.8688_151.2093"
    zone = parse_leozone(value)
    assert not public(value) and public(zone.label) and zone.label == "s33.8688_e151.2093"


# ------------------------------------------------------------------ validate.yml

def test_validate_refuses_an_invalid_leozone_label(tmp_path):
    from provisioning_helpers import cloudlab_inventory, run_playbook, write_inventory

    inv = write_inventory(tmp_path / "inv.yml", cloudlab_inventory())
    run = run_playbook("validate.yml", [inv], {"krios_deploy_app_leozone": "-33.8688_151.2093"})
    assert run.returncode != 0, run.explain()
    assert ("variables: krios_deploy_app_leozone: -33.8688_151.2093 is not a valid Kubernetes label value"
            in run.output), run.explain()
    ok = run_playbook("validate.yml", [inv], {"krios_deploy_app_leozone": "s33.8688_e151.2093"})
    assert ok.returncode == 0, ok.explain()


# ------------------------------------------------------------------ the real apiserver

@pytest.mark.cluster
@pytest.mark.parametrize(("name", "lat", "lon", "label"), PLACES, ids=[p[0] for p in PLACES])
def test_the_apiserver_accepts_pods_and_selectors_with_the_label(api_client, namespace, name, lat, lon, label):
    client = raw(api_client)
    value = leozone_label(lat, lon)
    create_pods(client, namespace, [pod_body(f"zone-{name.replace('_', '-')}", {"leozone": value},
                                             scheduler="nobody")])
    found = list_pods(client, namespace, selector=f"leozone={value}")  # the emulator's selector
    assert [p["metadata"]["labels"]["leozone"] for p in found] == [value]


@pytest.mark.cluster
def test_the_seeds_southern_value_is_what_the_apiserver_refuses(api_client, namespace):
    """The failure this encoding fixes, on the real apiserver (a 422 for the pod)."""
    from kubernetes.client.exceptions import ApiException

    client = raw(api_client)
    with pytest.raises(ApiException) as err:
        create_pods(client, namespace, [pod_body("seed-south", {"leozone": "-33.8688_151.2093"},
                                                 scheduler="nobody")])
    assert err.value.status == 422, err.value
    with pytest.raises(ApiException) as err:
        list_pods(client, namespace, selector="leozone=-33.8688_151.2093")
    assert err.value.status == 400, err.value


@pytest.fixture
def workers(control_plane, api_client) -> Iterator[list[str]]:
    yield from clean_workers(control_plane, api_client)


@pytest.mark.cluster
@pytest.mark.parametrize(("lat", "lon"), [(-33.8688, 151.2093), (-33.4489, -70.6693)], ids=["sydney", "santiago"])
def test_the_scheduler_places_a_southern_pod_in_zone(api_client, namespace, workers, lat, lon):
    """The real krios scheduler binds a pod labelled with a southern zone to an in-zone satellite."""
    from krios.control.scheduler import Scheduler
    from krios.kube.clock import Clock
    from krios.orbits.passes import ZoneTracker

    o = orbits()  # sf_4workers' constellation (starlink-1, 53 deg: covers 33 deg S)
    zone = Zone(lat, lon, 100.0, 25.0)
    tracker = ZoneTracker(o.constellation, zone, horizon_s=3600.0, start=o.t0)
    t_start, inside = math.nan, []
    for step in range(0, 3000, 30):  # the first moment a satellite stays >= 120 s
        t = o.t0 + step
        sats = [int(s) for s in tracker.in_zone(t) if tracker.exit_time(int(s), t) - t >= 120]
        if sats:
            t_start, inside = t, sats
            break
    assert inside, f"no satellite over ({lat}, {lon}) within 50 min"
    away = []
    for sat in range(len(o.constellation)):
        entry = tracker.next_entry(sat, t_start)
        if sat not in inside and (entry != entry or entry - t_start >= 600):
            away.append(sat)
            if len(away) == len(workers) - 1:
                break
    client = raw(api_client)
    sat_of = dict(zip(workers, [inside[0], *away], strict=True))
    set_sat_labels(client, sat_of)
    sched = Scheduler(api_client, o.constellation, clock=Clock.starting(epoch_sim=t_start, rate=1.0),
                      backoff_base_s=0.2, backoff_max_s=1.0, parallelism=2)
    sched.start(sync_timeout=30)
    try:
        assert sched.wait_leading(30), "the scheduler never took the lease"
        labels = {"leozone": leozone_label(lat, lon), "radius": "100"}
        assert labels["leozone"].startswith("s")
        create_pods(client, namespace, [pod_body("south-app", labels)])

        def bound() -> str | None:
            pods = list_pods(client, namespace)
            return pods[0]["spec"].get("nodeName") if pods else None

        node = wait_for(bound, 20, "the southern pod bound")
        now_in = {int(s) for s in tracker.in_zone(sched.now())}
        assert sat_of[node] in now_in, f"bound to {node}, satellite {sat_of[node]} not over ({lat}, {lon})"
        assert sat_of[node] == inside[0]
    finally:
        sched.stop()
