"""The container files (Dockerfile, docker-compose.yml, .dockerignore) agree with the code.

No Docker daemon is needed, nor runs here: the image is never built by the suite, so these
files drift silently when a setting is renamed, a package added or the generation recipe
changed. What is held: every variable compose sets is one the code reads; both services
serve metrics on a published port and have a health check whose arguments the probe accepts;
the Dockerfile generates code with the Makefile's own recipe, installs no dev extra and copies
every package. The probe itself is run against a real TLS health server.

PyYAML is not a dependency, so compose is read by indentation: enough for its block style,
and each reader asserts it found what it looks for, so a layout it cannot read fails loudly.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from flowpair_shared import devcerts, healthcheck
from flowpair_shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = (ROOT / "docker-compose.yml").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
APP_SERVICES = ("orchestrator", "discovery")
_VARIABLE = re.compile(r"^\s+(FLOWPAIR_[A-Z0-9_]+|DATABASE_URL):", re.MULTILINE)


# --- reading compose ---------------------------------------------------------------------


def _entries(text: str, indent: int) -> dict[str, str]:
    """The mapping keys at exactly ``indent`` spaces, each with its own line and the lines
    under it (comments and blank lines never start or end an entry)."""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        depth = len(line) - len(line.lstrip(" "))
        key = re.match(r"([\w.<-]+):(?:\s|$)", stripped)
        if depth == indent and key:
            current = entries.setdefault(key.group(1), [])
        elif depth <= indent:
            current = None
        if current is not None:
            current.append(line)
    return {key: "\n".join(lines) for key, lines in entries.items()}


def _services() -> dict[str, str]:
    services = _entries(_entries(COMPOSE, 0)["services"], 2)
    assert {"postgres", "migrate", *APP_SERVICES} <= services.keys(), services.keys()
    return services


def _sequence(entry: str) -> list[str]:
    """A sequence of scalars, flow style (``key: [a, "b"]``, over several lines too) or
    block style (``- a`` lines)."""
    value = entry.split(":", 1)[1].strip()
    if value.startswith("["):
        assert value.endswith("]"), f"cannot read {entry!r}"
        items = value[1:-1].replace("\n", " ").split(",")
    else:
        assert not value, f"cannot read {entry!r}"
        items = re.findall(r"^\s*-\s*(.+)$", entry, re.MULTILINE)
    return [item.strip().strip("\"'") for item in items if item.strip()]


def _environment(service: str) -> dict[str, str]:
    """A service's variables, those merged from an anchor (``<<: *name``) included."""
    text = _entries(_services()[service], 4).get("environment", "")
    merged = re.findall(r"^\s+<<:\s*\*([\w-]+)", text, re.MULTILINE)
    for anchor in merged:
        (block,) = (v for v in _entries(COMPOSE, 0).values() if f"&{anchor}" in v.split("\n")[0])
        text = block + "\n" + text
    return dict(re.findall(r"^\s+([A-Z][A-Z0-9_]*):\s*(\S+)", text, re.MULTILINE))


class _Recording(dict[str, str]):
    """An environment that remembers every variable asked of it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)


def _read_variables() -> set[str]:
    """What the code reads: every variable the settings ask for, and the names other modules
    read (quoted whole, as ``os.environ.get("FLOWPAIR_LOG_LEVEL")`` does). The modules that
    only write settings for others (devstack, devcerts) do not count."""
    env = _Recording({"DATABASE_URL": "postgresql://unused/x"})
    Settings.from_env(env)
    names = set(env.asked)
    writers = {"devstack.py", "devcerts.py"}
    for package in ("flowpair_shared", "orchestrator_svc", "discovery_svc", "migrations"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name not in writers:
                names |= set(
                    re.findall(
                        r"[\"']((?:FLOWPAIR_|DATABASE_URL)[A-Z0-9_]*)[\"']", path.read_text()
                    )
                )
    return names


# --- compose -----------------------------------------------------------------------------


def test_every_variable_compose_sets_is_one_the_code_reads() -> None:
    set_in_compose = set(_VARIABLE.findall(COMPOSE))
    assert len(set_in_compose) > 10, "found too few variables: the reader missed them"
    unread = sorted(set_in_compose - _read_variables())
    assert not unread, f"docker-compose.yml sets variables nothing reads: {unread}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_service_accepts_its_compose_settings(service: str) -> None:
    env = _environment(service)
    svc = Settings.from_env(env).service(service)  # malformed values exit here
    assert not svc.listen.startswith("127.") and svc.tls_cert_file, (
        f"{service}: the public port must be reachable from outside its container, with TLS"
    )


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_service_serves_metrics_on_a_published_port(service: str) -> None:
    listen = Settings.from_env(_environment(service)).service(service).metrics_listen
    assert listen, f"{service}: FLOWPAIR_{service.upper()}_METRICS_LISTEN is not set"
    host, _, port = listen.rpartition(":")
    assert host.strip("[]") in ("0.0.0.0", "::"), (
        f"{service}: metrics on {listen} cannot be reached from outside its container"
    )
    ports = _entries(_services()[service], 4).get("ports")
    assert ports, f"{service}: no ports"
    published = {p.split("/")[0].rsplit(":", 1)[-1] for p in _sequence(ports)}
    assert port in published, f"{service}: metrics port {port} is not among ports {published}"
    header = COMPOSE.split("\nx-", 1)[0]
    assert port in header and "/metrics" in header, (
        f"the header comment of docker-compose.yml does not say where {service}'s metrics are"
    )


def test_every_long_running_service_has_a_health_check() -> None:
    services = _services()
    one_shot = set(
        re.findall(r"([\w-]+):\s*\{\s*condition:\s*service_completed_successfully", COMPOSE)
    )
    one_shot |= {name for name, text in services.items() if "profiles:" in text}
    assert "migrate" in one_shot
    missing = [
        name
        for name, text in services.items()
        if name not in one_shot
        and "test" not in _entries(_entries(text, 4).get("healthcheck", ""), 6)
    ]
    assert not missing, f"services without a healthcheck test: {missing}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_services_health_check_is_the_probe_on_its_own_port(service: str) -> None:
    check = _entries(_entries(_services()[service], 4)["healthcheck"], 6)
    command = _sequence(check["test"])
    assert command[:4] == ["CMD", "python", "-m", "flowpair_shared.healthcheck"], command
    args = healthcheck.parser().parse_args(command[4:])
    assert args.service == service
    # The CA must be in the service's mount, put there by the credentials service.
    mount = next(v for v in _sequence(_entries(_services()[service], 4)["volumes"]))
    host_dir, container_dir = mount.split(":")[:2]
    assert args.ca_file and args.ca_file.startswith(container_dir + "/"), args.ca_file
    copied = args.ca_file.replace(container_dir, "/credentials/" + Path(host_dir).name, 1)
    assert copied in _services()["credentials"], f"the credentials service never writes {copied}"
    timeout = re.search(r"timeout:\s*(\d+)s", "\n".join(check.values()))
    assert timeout and float(timeout.group(1)) > args.timeout, "compose kills the probe first"


# --- the probe ---------------------------------------------------------------------------


@pytest.mark.parametrize("service", APP_SERVICES)
def test_the_probe_reads_the_settings_the_service_reads(service: str) -> None:
    defaults = Settings.from_env({"DATABASE_URL": "postgresql://unused/x"}).service(service)
    assert healthcheck.DEFAULT_LISTEN[service] == defaults.listen
    env = {
        "DATABASE_URL": "postgresql://unused/x",
        healthcheck.listen_variable(service): "10.1.2.3:4000",
        healthcheck.tls_cert_variable(service): "/somewhere/cert.pem",
    }
    svc = Settings.from_env(env).service(service)
    assert (svc.listen, svc.tls_cert_file) == ("10.1.2.3:4000", "/somewhere/cert.pem")


@pytest.fixture(scope="module")
def health_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, Path, health.HealthServicer]]:
    """A TLS server with the standard health service and compose's kind of certificates:
    a public CA, a certificate for ``localhost``."""
    out = tmp_path_factory.mktemp("certs")
    files = devcerts.ensure_public(out, ["localhost"])
    devcerts.ensure_internal(out)  # another CA, for the wrong-CA case
    cert = Path(files["FLOWPAIR_ORCHESTRATOR_TLS_CERT_FILE"])
    key = Path(files["FLOWPAIR_ORCHESTRATOR_TLS_KEY_FILE"])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    checks = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    port = server.add_secure_port(
        "127.0.0.1:0", grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    )
    server.start()
    yield port, out, checks
    server.stop(None)


def _probe(port: int, out: Path, *extra: str) -> int:
    env = {
        "FLOWPAIR_ORCHESTRATOR_LISTEN": f"0.0.0.0:{port}",  # reached on loopback
        "FLOWPAIR_ORCHESTRATOR_TLS_CERT_FILE": str(out / "public" / "orchestrator-public.pem"),
    }
    return healthcheck.main(["orchestrator", *extra], env)


def test_the_probe_is_healthy_only_on_serving(
    health_server: tuple[int, Path, health.HealthServicer],
) -> None:
    port, out, checks = health_server
    ca = str(out / "public" / "ca.pem")
    checks.set("", health_pb2.HealthCheckResponse.SERVING)
    assert _probe(port, out, "--ca-file", ca) == healthcheck.HEALTHY
    checks.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert _probe(port, out, "--ca-file", ca) == healthcheck.UNHEALTHY
    checks.set("", health_pb2.HealthCheckResponse.SERVING)
    assert _probe(port, out, "--ca-file", str(out / "ca.pem")) == healthcheck.UNHEALTHY
    assert (
        _probe(port, out, "--ca-file", ca, "--grpc-service", "x.Unknown") == healthcheck.UNHEALTHY
    )
    assert _probe(port, out, "--bogus") == healthcheck.UNHEALTHY  # never Docker's reserved 2
    env = {"FLOWPAIR_ORCHESTRATOR_LISTEN": "127.0.0.1:1"}  # nothing listens there
    assert healthcheck.main(["orchestrator", "--timeout", "1"], env) == healthcheck.UNHEALTHY


# --- Dockerfile and Makefile -------------------------------------------------------------


def _instructions() -> list[tuple[int, str, str]]:
    """(stage, instruction, arguments) with continuation lines joined; stage 0 is the first
    FROM."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    result, stage = [], -1
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        stage += instruction.upper() == "FROM"
        result.append((stage, instruction.upper(), arguments.strip()))
    return result


def _sources(copy: str) -> list[str]:
    """What a COPY takes from the build context (none when it copies from a stage)."""
    words = copy.split()
    if any(w.startswith("--from") for w in words):
        return []
    return [w for w in words[:-1] if not w.startswith("--")]


def _rule(target: str) -> str:
    """The recipe of a Makefile rule whose targets name ``target``."""
    match = re.search(
        rf"^(?!#)(?:\S+ )*{re.escape(target)}(?: \S+)*:(?!=).*\n((?:\t.*\n?)*)",
        MAKEFILE,
        re.MULTILINE,
    )
    assert match, f"the Makefile has no rule for {target}"
    return match.group(1)


def test_the_dockerfile_generates_code_with_the_makefile_recipe() -> None:
    runs = [args for _, instruction, args in _instructions() if instruction == "RUN"]
    assert not any("protoc" in run for run in runs), "the Dockerfile runs protoc by hand"
    targets = [m.group(1) for run in runs for m in re.finditer(r"\bmake\s+([\w-]+)", run)]
    assert len(targets) == 1, f"expected one make call, got {targets}"
    # Both rules run the one canned recipe, and only it.
    recipes = {t: re.findall(r"\$\(call ([\w-]+)", _rule(t)) for t in (targets[0], "$(GEN_STAMP)")}
    called = {name for names in recipes.values() for name in names}
    assert all(len(names) == 1 for names in recipes.values()) and len(called) == 1, (
        f"make {targets[0]} and make protos do not run one recipe: {recipes}"
    )
    assert "protoc" in MAKEFILE.split(f"define {called.pop()}", 1)[1].split("endef", 1)[0]


def test_the_image_installs_no_dev_extra_and_every_package() -> None:
    instructions = _instructions()
    final = max(stage for stage, _, _ in instructions)
    assert final >= 1, "one stage: the generator's tools would stay in the image"
    assert "[dev]" not in DOCKERFILE
    runtime = " ".join(a for s, i, a in instructions if s == final and i == "RUN")
    assert re.search(r"pip install .*\bflowpair\b", runtime), runtime
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    tools = [r for r in dev if re.match(r"(grpcio-tools|mypy-protobuf)\b", r)]
    build = " ".join(a for s, i, a in instructions if s < final and i == "RUN")
    for requirement in tools:
        assert f"'{requirement}'" in build, f"the build stage does not install {requirement}"
        assert requirement.split(">")[0] not in runtime
    copied = {
        source for s, i, a in instructions if s < final and i == "COPY" for source in _sources(a)
    }
    patterns = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        p.name
        for p in ROOT.iterdir()
        if (p / "__init__.py").exists() and any(fnmatch.fnmatch(p.name, pat) for pat in patterns)
    }
    missing = sorted(packages - copied - {"flowpair"})  # flowpair/ is generated in the image
    assert not missing, f"the Dockerfile does not copy {missing}"
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".compose", ".data", ".venv"} <= set(ignored), "secrets or the venv in the context"
    every_copy = {source for _, i, a in instructions if i == "COPY" for source in _sources(a)}
    for source in every_copy:
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
