"""The dashboards as Grafana's own models see them (grafana-foundation-sdk).

Grafana cannot run here (no image without a registry), so its models stand in for it:
the committed JSON must be exactly what ``grafana/generate.py`` builds with the SDK's
builders, and every committed file must read back through the SDK's dashboard model
with nothing lost (a misspelt field is dropped by the model, and fails here), every
panel a panel plugin Grafana has, every query a Prometheus query on the provisioned
datasource, ids and grid places that do not collide. test_dashboards.py runs the
same panels' queries against a real Prometheus.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel

from grafana import generate
from tests.conftest import ROOT

DASHBOARD_FILES = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
DATASOURCE = yaml.safe_load(
    (ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
)["datasources"][0]
GRID_COLUMNS = 24

# The panel plugins and query types Grafana ships, as the SDK knows them.
register_default_plugins()


def lost(written: Any, read: Any, path: str = "") -> Iterator[str]:
    """What the model dropped or changed of what was written (it may add its defaults)."""
    if isinstance(written, dict) and isinstance(read, dict):
        for key, value in written.items():
            if key not in read:
                yield f"{path}.{key}: not a field of Grafana's model (dropped)"
            else:
                yield from lost(value, read[key], f"{path}.{key}")
    elif isinstance(written, list) and isinstance(read, list) and len(written) == len(read):
        for index, (a, b) in enumerate(zip(written, read, strict=True)):
            yield from lost(a, b, f"{path}[{index}]")
    elif written != read:
        yield f"{path}: {written!r} read back as {read!r}"


def overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def model_problems(data: dict[str, Any]) -> list[str]:
    """Everything Grafana's dashboard model would not accept as written."""
    model = Dashboard.from_json(data)
    read = json.loads(json.dumps(model, cls=JSONEncoder))
    problems = list(lost(data, read))
    ids: set[int | None] = set()
    places: list[tuple[str, dict[str, int]]] = []
    for panel in model.panels or []:
        assert isinstance(panel, Panel), panel  # no rows in pq's dashboards
        name = f"panel {panel.title!r}"
        if panel.id_val in ids:
            problems.append(f"{name}: id {panel.id_val} used twice")
        ids.add(panel.id_val)
        if runtime.panelcfg_config(panel.type_val) is None:
            problems.append(f"{name}: no panel plugin {panel.type_val!r}")
        source = panel.datasource
        provisioned = (DATASOURCE["type"], DATASOURCE["uid"])
        if source is None or (source.type_val, source.uid) != provisioned:
            problems.append(f"{name}: datasource {source and source.to_json()} is not provisioned")
        refs = [getattr(t, "ref_id", None) for t in panel.targets or []]
        if not refs or len(set(refs)) != len(refs):
            problems.append(f"{name}: query refIds {refs} (none, or one used twice)")
        for target in panel.targets or []:
            if not isinstance(target, prometheus.Dataquery):
                query = json.dumps(target, cls=JSONEncoder)
                problems.append(f"{name}: {query} is not a Prometheus query")
            elif not target.expr:
                problems.append(f"{name}: query {target.ref_id} has no expression")
            elif target.datasource is not None and target.datasource.uid != DATASOURCE["uid"]:
                problems.append(f"{name}: query {target.ref_id} on another datasource")
        grid = panel.grid_pos
        if grid is None or grid.x + grid.w > GRID_COLUMNS or min(grid.w, grid.h) < 1:
            problems.append(f"{name}: grid position {grid and grid.to_json()} off the grid")
            continue
        cell = {"x": grid.x, "y": grid.y, "w": grid.w, "h": grid.h}
        problems += [f"{name} overlaps {other!r}" for other, at in places if overlaps(cell, at)]
        places.append((str(panel.title), cell))
    return problems


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_committed_dashboard_is_what_the_code_generates(path: Path) -> None:
    generated = generate.generated()
    assert path.name in generated, f"{path.name}: no code in grafana/generate.py makes it"
    assert path.read_text() == generated[path.name], (
        f"grafana/dashboards/{path.name} differs from grafana/generate.py: run `make dashboards`"
    )


def test_every_generated_dashboard_is_committed() -> None:
    assert generate.stale() == [], "run `make dashboards` and commit grafana/dashboards/"
    assert {p.name for p in DASHBOARD_FILES} == set(generate.DASHBOARDS)


def test_a_hand_edit_makes_the_committed_file_stale(tmp_path: Path) -> None:
    for name, text in generate.generated().items():
        (tmp_path / name).write_text(text)
    assert generate.stale(tmp_path) == []
    edited = tmp_path / "manager.json"
    edited.write_text(edited.read_text().replace('"refresh": "30s"', '"refresh": "5s"'))
    (tmp_path / "hand-made.json").write_text("{}")
    assert generate.stale(tmp_path) == ["manager.json", "hand-made.json"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_reads_back_through_grafanas_model(path: Path) -> None:
    assert model_problems(json.loads(path.read_text())) == []


def broken(mutate: str) -> dict[str, Any]:
    path = ROOT / "grafana" / "dashboards" / "queue-overview.json"
    data: dict[str, Any] = copy.deepcopy(json.loads(path.read_text()))
    panel, other = data["panels"][0], data["panels"][1]
    if mutate == "misspelt panel field":
        panel["titel"] = panel.pop("title")
    elif mutate == "misspelt query field":
        panel["targets"][0]["exp"] = panel["targets"][0].pop("expr")
    elif mutate == "unknown panel type":
        panel["type"] = "timeserie"
    elif mutate == "wrong datasource":
        panel["datasource"]["uid"] = "prometheus"
    elif mutate == "duplicate id":
        other["id"] = panel["id"]
    elif mutate == "overlapping panels":
        other["gridPos"] = dict(panel["gridPos"])
    elif mutate == "misspelt option":
        panel["fieldConfig"] = {"defaults": {"unti": "s"}, "overrides": []}
    return data


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        ("misspelt panel field", ".panels[0].titel: not a field of Grafana's model"),
        ("misspelt query field", ".panels[0].targets[0].exp: not a field of Grafana's model"),
        ("unknown panel type", "no panel plugin 'timeserie'"),
        ("wrong datasource", "is not provisioned"),
        ("duplicate id", "id 1 used twice"),
        ("overlapping panels", "overlaps 'Jobs by status'"),
        ("misspelt option", ".fieldConfig.defaults.unti: not a field of Grafana's model"),
    ],
)
def test_the_model_check_rejects_what_grafana_would_not_take(mutate: str, expected: str) -> None:
    problems = model_problems(broken(mutate))
    assert any(expected in problem for problem in problems), problems


def test_the_sdk_is_built_for_the_grafana_that_compose_runs() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    image = compose["services"]["grafana"]["image"]  # ${GRAFANA_IMAGE:-grafana/grafana-oss:X}
    grafana_version = image.rstrip("}").rsplit(":", 1)[1]
    sdk = version("grafana-foundation-sdk")  # <build>!<Grafana version>
    assert sdk.split("!")[-1] == grafana_version, (sdk, image)


def test_jobs_by_status_keeps_small_states_visible_beside_done() -> None:
    """Issue 16 §12: a linear axis drew three dead letters as nothing beside a million
    done jobs; a logarithmic one (linear below 1 so that empty states sit at 0) does not."""
    overview = json.loads((ROOT / "grafana" / "dashboards" / "queue-overview.json").read_text())
    [panel] = [p for p in overview["panels"] if p["title"] == "Jobs by status"]
    scale = panel["fieldConfig"]["defaults"]["custom"]["scaleDistribution"]
    assert scale == {"type": "symlog", "log": 10, "linearThreshold": 1}
