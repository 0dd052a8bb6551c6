"""deploy/: no container engine here, so the files are parsed and held to what an operator relies on.

The Dockerfile and compose file are read instruction by instruction and key by key, the systemd unit
goes through `systemd-analyze verify`, and every metric the Grafana dashboard queries is looked up in a
real scrape of `/metrics` from a running shop.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shopbot.config import load_config
from shopbot.config.schema import ShutdownConfig
from tests.shop_harness import running_shop

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DEFAULT_GRACE = ShutdownConfig().grace_seconds
CORE_SERVICES = ("shopbot", "postgres", "redis", "caddy")


# --- the Dockerfile ----------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, continuation lines joined, ARG defaults applied."""
    logical, current = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            logical.append(current.strip())
        current = ""
    args: dict[str, str] = {}
    instructions = []
    for text in logical:
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.strip().partition("=")
            args[name] = default
        rest = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest.strip())
        instructions.append((keyword, rest))
    return instructions


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


def test_the_dockerfile_builds_with_uv_and_runs_shopbot_unprivileged_on_python_3_12_slim() -> None:
    instructions = dockerfile_instructions(DEPLOY / "Dockerfile")
    all_stages = stages(instructions)
    runtime = all_stages[-1]
    assert len([s for s in all_stages if s[0][1].startswith("python:")]) >= 2, "a build stage and a runtime stage"
    assert runtime[0][1].startswith("python:3.12-slim"), runtime[0]

    # The build: uv pinned like ./run, the locked dependencies only.
    uv_version = re.search(r"^UV_VERSION=(\S+)$", (ROOT / "run").read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert any(k == "FROM" and rest.startswith(f"ghcr.io/astral-sh/uv:{uv_version}") for k, rest in instructions)
    syncs = [rest for k, rest in instructions if k == "RUN" and "uv sync" in rest]
    assert syncs and all("--frozen" in run and "--no-dev" in run for run in syncs)
    assert not any(k == "RUN" and "uv " in rest for k, rest in runtime), "no uv in the runtime stage"

    # The runtime: Debian's Chromium and never a downloaded browser.
    runs = " ".join(rest for k, rest in runtime if k == "RUN")
    assert re.search(r"apt-get install [^&]*\bchromium\b", runs), runs
    assert not any("playwright install" in rest for _, rest in instructions)

    final = dict(runtime)  # the last of each instruction is the one that counts
    user = final["USER"]
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))
    assert "/health" in final["HEALTHCHECK"] and final["HEALTHCHECK"].startswith("--")
    assert json.loads(final["ENTRYPOINT"]) == ["shopbot"]
    assert json.loads(final["CMD"]) == ["serve"]
    assert final["STOPSIGNAL"] == "SIGTERM"
    assert "SHOPBOT_WEB__HOST=0.0.0.0" in final["ENV"].split()


def test_everything_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, "the build context is a whitelist: everything else stays out (.venv, var/, deploy/.env)"
    for keyword, rest in dockerfile_instructions(DEPLOY / "Dockerfile"):
        if keyword != "COPY" or "--from=" in rest:
            continue
        *sources, _destination = shlex.split(rest)
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in included, f"{source} is not sent to the build (Dockerfile.dockerignore)"


# --- compose.yaml ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def seconds(duration: str) -> float:
    """A compose duration such as "30s" or "1m30s"."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    assert parts and duration, duration
    hours, minutes, secs = parts.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)


def env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)(?::?[-?][^}]*)?\}", lambda m: env.get(m.group(1), ""), value)


def test_compose_runs_the_shop_with_postgres_redis_and_caddy_all_health_checked(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in CORE_SERVICES:
        assert name in services, name
        assert "profiles" not in services[name], f"{name} must start without a profile"
        check = services[name]["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL") and len(check) > 1, name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "/health" in " ".join(services["shopbot"]["healthcheck"]["test"])
    for dependency in ("postgres", "redis"):
        assert services["shopbot"]["depends_on"][dependency]["condition"] == "service_healthy"
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name


def test_the_shop_has_time_to_stop_gracefully(compose: dict[str, Any]) -> None:
    shop = compose["services"]["shopbot"]
    assert seconds(shop["stop_grace_period"]) > DEFAULT_GRACE
    assert shop.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert shop["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}


def test_state_lives_in_named_volumes_and_mounted_files_exist(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is missing"
            else:
                assert source in declared, f"{name} uses volume {source}, not declared"
    for name, target in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data"), ("shopbot", "/var/lib/shopbot")):
        assert any(
            v.split(":")[1] == target and not v.startswith((".", "/")) for v in compose["services"][name]["volumes"]
        ), name


def test_only_caddy_faces_the_world(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            if name == "caddy":
                assert port.split(":")[0] in ("80", "443"), port
            else:
                assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"
    published = {port.split("/")[0] for port in compose["services"]["caddy"]["ports"]}
    assert {"80:80", "443:443"} <= published


def test_secrets_come_from_the_env_file_and_every_shopbot_variable_names_a_key(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    shop = compose["services"]["shopbot"]
    assert shop["env_file"] in (".env", [".env"], ["./.env"])
    example = env_example()
    text = (DEPLOY / "compose.yaml").read_text()
    for variable in set(re.findall(r"\$\{(\w+)", text)):
        assert variable in example, f"${{{variable}}} is used in compose.yaml but not in .env.example"
    # Secrets are never written into compose.yaml itself.
    for key, value in shop["environment"].items():
        if any(word in key for word in ("TOKEN", "SECRET", "KEY", "SEED", "PASSWORD", "COOKIES")):
            assert str(value).startswith("${"), f"{key} belongs in deploy/.env"
    assert ":${POSTGRES_PASSWORD" in shop["environment"]["SHOPBOT_DATABASE__URL"]
    # What the container sees: the env file, then compose's environment; every SHOPBOT_ name is a real key.
    environment = {**example, **{k: interpolate(str(v), example) for k, v in shop["environment"].items()}}
    ours = {k: v for k, v in environment.items() if k.startswith("SHOPBOT_")}
    (tmp_path / "shopbot.toml").write_text("")
    config = load_config(tmp_path / "shopbot.toml", ours)
    assert config.web.host == "0.0.0.0"
    assert (config.metrics.host, config.metrics.port) == ("0.0.0.0", 9464)
    assert config.web.public_url == f"https://{example['SHOP_DOMAIN']}"
    caddy_address = compose["services"]["caddy"]["networks"]["shop"]["ipv4_address"]
    assert caddy_address in config.web.trusted_proxies
    assert config.database.url.reveal().startswith("postgresql://shopbot:")


def test_caddy_proxies_to_the_shop_and_prometheus_scrapes_it(compose: dict[str, Any]) -> None:
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert "{$SHOP_DOMAIN}" in caddyfile and "reverse_proxy shopbot:8080" in caddyfile
    assert "/webhook/*" in caddyfile
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = prometheus["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    # /metrics is on its own listener: Prometheus's container reaches it on the compose network, and the
    # host sees it on loopback only.
    shopbot = compose["services"]["shopbot"]
    assert job["static_configs"][0]["targets"] == [f"shopbot:{shopbot['environment']['SHOPBOT_METRICS__PORT']}"]
    assert shopbot["environment"]["SHOPBOT_METRICS__HOST"] == "0.0.0.0"
    assert "127.0.0.1:9464:9464" in shopbot["ports"]


def test_grafana_is_provisioned_with_the_datasource_and_dashboard(compose: dict[str, Any]) -> None:
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/shopbot.yml").read_text())
    dashboard = json.loads((DEPLOY / "grafana/shopbot.json").read_text())
    uid = datasources["datasources"][0]["uid"]
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid, panel["title"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["grafana"]["volumes"]}
    dashboards_dir = providers["providers"][0]["options"]["path"]
    assert mounts[f"{dashboards_dir}/shopbot.json"] == "./grafana/shopbot.json"
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"


# --- the systemd unit ------------------------------------------------------------------------------


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_systemd_unit_is_hardened_and_stops_gracefully() -> None:
    settings = unit_settings((DEPLOY / "shopbot.service").read_text())
    assert settings["ExecStart"] == ["/opt/shopbot/.venv/bin/shopbot serve"]
    assert settings["User"][0] not in ("root", "0")
    assert float(settings["TimeoutStopSec"][0]) > DEFAULT_GRACE
    assert settings["KillSignal"] == ["SIGTERM"] and settings["KillMode"] == ["mixed"]
    for key, value in (
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "shopbot"),
    ):
        assert settings[key] == [value], key


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip(
            "systemd-analyze is not installed here (Debian: apt-get install systemd); the unit's settings "
            "are still checked by test_the_systemd_unit_is_hardened_and_stops_gracefully"
        )
    # verify also checks that ExecStart exists: point it at this checkout's shopbot instead of /opt/shopbot's.
    unit = tmp_path / "shopbot.service"
    unit.write_text((DEPLOY / "shopbot.service").read_text().replace("/opt/shopbot/.venv", str(ROOT / ".venv")))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # Unknown keys and bad values are only warnings (exit 0): any line about the unit is a failure too.
    assert result.returncode == 0, result.stderr
    assert "shopbot.service" not in result.stdout + result.stderr, result.stdout + result.stderr


# --- the Grafana dashboard -------------------------------------------------------------------------

# Keywords and modifiers of PromQL that look like identifiers; function names are told apart by "(".
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: not functions, keywords, labels, ranges or strings."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors, Grafana's $__rate_interval among them
    # Label lists go with their keyword, so `sum by (le) (...)` reads as the function call it is.
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group().lower() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def test_metric_names_are_told_apart_from_functions_keywords_and_labels() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(a_seconds_bucket{kind="x", le!="1e3"}[$__rate_interval])))'
        " / on(job) group_left b_total + sum(c) without (instance) and bool 2e3 > d offset 5m"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c", "d"}


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((DEPLOY / "grafana/shopbot.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    queries = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        queries += [(panel["title"], target["expr"]) for target in panel["targets"]]
    return queries


def exported_names(exposition: str) -> set[str]:
    """Every sample name the families in a Prometheus text exposition can produce."""
    names = set()
    for line in exposition.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, family, kind = line.split()
        names.add(family)
        if kind == "counter" and not family.endswith("_total"):
            names.add(family + "_total")
        if kind == "histogram":
            names |= {family + "_bucket", family + "_sum", family + "_count"}
        if kind == "summary":
            names |= {family + "_sum", family + "_count"}
    return names


async def test_every_metric_the_dashboard_queries_is_exported_by_a_running_shop(database_url: str) -> None:
    async with running_shop(database_url) as shop, httpx.AsyncClient() as client:
        response = await client.get(shop.metrics_url)
    assert response.status_code == 200
    exported = exported_names(response.text)
    assert "telegram_bot_updates_total" in exported and "telegram_bot_response_time_seconds_bucket" in exported
    queried: set[str] = set()
    for title, expr in dashboard_queries():
        names = metric_names(expr)
        assert names, f"{title}: {expr} reads no metric"
        missing = names - exported
        assert not missing, f"panel {title!r} queries {sorted(missing)}, which /metrics does not export"
        queried |= names
    # What the issue asks the dashboard to show.
    for needed in (
        "telegram_bot_updates_total",
        "telegram_bot_response_time_seconds_bucket",
        "telegram_bot_payments_total",
        "shopbot_orders_in_state",
        "shopbot_wallet_balance_ton",
        "shopbot_circuit_state",
        "telegram_bot_rate_limit_hits_total",
        "telegram_bot_errors_total",
    ):
        assert needed in queried, needed
