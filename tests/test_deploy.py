"""The deployment files in deploy/, checked offline.

- The Kubernetes manifests validate against the Kubernetes JSON schemas that the
  `kubernetes-validate` package ships (strict: an unknown or misspelt field fails), with the
  network cut off, and hang together: the probes run `vaccel health`, the Service selects the
  DaemonSet's pods, ports agree with the agent's config, the grace period outlasts the drain.
- Every agent config file (systemd, container, the ConfigMap's) parses as TOML, has the keys
  the agent reads, and its commented-out examples parse too once uncommented.
- The systemd unit passes `systemd-analyze verify` and `systemd-analyze security` where
  systemd-analyze exists, and carries its hardening options.
- The Containerfile builds from the repository root, runs as a numeric non-root user and has
  a HEALTHCHECK that runs `vaccel health`.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from vaccel.compat import tomllib

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
UNIT = DEPLOY / "systemd" / "vaccel-agent.service"
SYSTEMD_TOML = DEPLOY / "systemd" / "agent.toml"
CONTAINER_TOML = DEPLOY / "container" / "agent.toml"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
IGNOREFILE = DEPLOY / "container" / "Containerfile.dockerignore"

#: The Kubernetes release the manifests are written for (kubernetes-validate>=1.35.0 ships its
#: schemas), and the newest release the installed package has schemas for, to catch an API
#: that a newer Kubernetes drops.
K8S_VERSION = "1.35"
K8S_VERSIONS = sorted({K8S_VERSION, kubernetes_validate.latest_version()})

HEALTH = ["vaccel", "health", "tcp://127.0.0.1:8192", "--timeout", "2"]
AGENT_CMD = ["vaccel-agent", "--config", "/etc/vaccel/agent.toml"]
EXEC_START = "/usr/local/bin/vaccel-agent --config /etc/vaccel/agent.toml"
#: Active keys of every agent config, with their TOML types.
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "address": list,
    "plugins": str,
    "metrics-address": str,
    "max-memory": str,
    "max-connections": int,
    "drain-timeout": (int, float),
}
#: Keys present only as commented-out examples.
EXAMPLE_KEYS = ("token-file", "tenants")
_EXAMPLE_LINE = re.compile(r"^(\s*)#(?=[A-Za-z\[])", re.M)


# --- helpers --------------------------------------------------------------------------------


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every YAML document under deploy/kubernetes/, with its file."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return docs


def one(kind: str) -> dict[str, Any]:
    """The single manifest of `kind`."""
    found = [doc for _, doc in manifests() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec() -> dict[str, Any]:
    """The DaemonSet's pod spec."""
    spec: dict[str, Any] = one("DaemonSet")["spec"]["template"]["spec"]
    return spec


def agent_container() -> dict[str, Any]:
    """The DaemonSet's agent container."""
    containers = pod_spec()["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def configmap_toml() -> str:
    """The agent.toml text the ConfigMap holds."""
    text: str = one("ConfigMap")["data"]["agent.toml"]
    return text


def uncomment_examples(text: str) -> str:
    """`text` with its example lines (`#key = ...`, `#[table]`: no space after #) enabled."""
    return _EXAMPLE_LINE.sub(r"\1", text)


def port_of(address: str) -> int:
    """The port of a tcp://HOST:PORT address."""
    match = re.fullmatch(r"tcp://[^/]+:(\d+)", address)
    assert match, f"{address!r} is not tcp://HOST:PORT"
    return int(match.group(1))


def size_bytes(text: str) -> int:
    """A size like the agent's --max-memory takes (512M, 4G) in bytes."""
    match = re.fullmatch(r"(\d+)([KMG]?)", text, flags=re.I)
    assert match, f"{text!r} is not a size like 512M or 4G"
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2).upper()]
    return int(match.group(1)) * scale


def quantity_bytes(text: str) -> int:
    """A Kubernetes memory quantity (binary suffixes only: Mi, Gi) in bytes."""
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", text)
    assert match, f"{text!r}: use a Ki/Mi/Gi quantity"
    return int(match.group(1)) << {"Ki": 10, "Mi": 20, "Gi": 30}[match.group(2)]


def unit_entries(text: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file's active `Key=value` lines by section, repeated keys kept in order."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        assert current is not None, f"{line!r} outside a section"
        assert not line.endswith("\\"), "keep unit lines unbroken"
        key, _, value = line.partition("=")
        sections[current].append((key.strip(), value.strip()))
    return sections


def unit_value(entries: list[tuple[str, str]], key: str) -> str:
    """The last value of `key` (systemd's rule for single-valued settings)."""
    values = [v for k, v in entries if k == key]
    assert values, f"{key}= is not set"
    return values[-1]


def seconds(text: str) -> float:
    """A systemd time span such as 30, 30s, 1min or 1min 30s, in seconds."""
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        assert unit in units, f"unexpected unit {unit!r} in {text!r}"
        total += float(number) * units[unit]
    return total


def containerfile_instructions(text: str) -> list[tuple[str, str]]:
    """The Containerfile's (INSTRUCTION, arguments), continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, "the Containerfile ends inside a continued line"
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The instructions of the last stage (from its FROM on)."""
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert starts, "no FROM"
    return instructions[starts[-1] :]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to resolve a name or open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield


# --- Kubernetes -----------------------------------------------------------------------------


def test_manifests_parse_and_are_complete() -> None:
    """Each file parses; together they hold a Namespace, ConfigMap, Service and DaemonSet."""
    docs = manifests()
    assert docs, "no manifests under deploy/kubernetes"
    for path, doc in docs:
        assert isinstance(doc, dict), path
        for field in ("apiVersion", "kind", "metadata"):
            assert field in doc, f"{path.name}: no {field}"
        assert doc["metadata"].get("name"), f"{path.name}: no metadata.name"
    kinds = sorted(doc["kind"] for _, doc in docs)
    assert kinds == ["ConfigMap", "DaemonSet", "Namespace", "Service"]
    # kubectl apply -f deploy/kubernetes/ goes in name order: the Namespace comes first.
    assert docs[0][1]["kind"] == "Namespace"
    namespace = one("Namespace")["metadata"]["name"]
    for path, doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, path.name


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.usefixtures("no_network")
def test_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    """Every manifest validates against the strict schemas of `version`, offline."""
    for path, doc in manifests():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            pytest.fail(f"{path.name} ({doc['kind']}) at {where}: {exc.message}")


@pytest.mark.usefixtures("no_network")
def test_schema_validation_catches_mistakes() -> None:
    """The validation has teeth: a misspelt field and a mistyped value are both refused."""
    daemonset = one("DaemonSet")
    misspelt = copy.deepcopy(daemonset)
    spec = misspelt["spec"]["template"]["spec"]
    spec["nodeselector"] = spec.pop("nodeSelector")
    mistyped = copy.deepcopy(daemonset)
    mistyped["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8192"
    for broken in (misspelt, mistyped):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_daemonset_runs_on_accelerator_nodes() -> None:
    """The DaemonSet is pinned to labelled accelerator nodes and runs the agent on its config."""
    assert pod_spec()["nodeSelector"].get("vaccel.org/accelerator") == "true"
    container = agent_container()
    assert container["command"] == AGENT_CMD
    # The --config path is the ConfigMap's agent.toml, mounted where the command reads it.
    config_path = Path(AGENT_CMD[-1])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    assert mount.get("readOnly") is True
    volume = next(v for v in pod_spec()["volumes"] if v["name"] == mount["name"])
    sources = volume["projected"]["sources"] if "projected" in volume else [volume]
    maps = [s["configMap"] for s in sources if "configMap" in s]
    assert [m["name"] for m in maps] == [one("ConfigMap")["metadata"]["name"]]
    items = maps[0].get("items", [{"key": "agent.toml", "path": "agent.toml"}])
    assert {"key": "agent.toml", "path": config_path.name} in items


def test_probes_run_vaccel_health() -> None:
    """Startup, readiness and liveness probes all exec `vaccel health` on the agent's port."""
    container = agent_container()
    for name in ("readinessProbe", "livenessProbe"):
        assert name in container, f"no {name}"
    probes = {k: v for k, v in container.items() if k.endswith("Probe")}
    agent_port = port_of(tomllib.loads(configmap_toml())["address"][0])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["vaccel"] == agent_port
    for name, probe in probes.items():
        assert probe["exec"]["command"] == HEALTH, name
        assert port_of(HEALTH[2]) == agent_port, name
        # Room for the interpreter's start on top of --timeout 2 (the default is 1 s).
        assert probe.get("timeoutSeconds", 1) > float(HEALTH[-1]), name


def test_service_is_headless_and_selects_the_agents() -> None:
    """The Service has no cluster IP, selects the DaemonSet's pods and serves the agent port."""
    service = one("Service")
    daemonset = one("DaemonSet")
    assert service["spec"]["clusterIP"] == "None"
    pod_labels = daemonset["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector and selector.items() <= pod_labels.items()
    match_labels = daemonset["spec"]["selector"]["matchLabels"]
    assert match_labels.items() <= pod_labels.items()
    container_ports = {p["name"]: p["containerPort"] for p in agent_container()["ports"]}
    agent_port = port_of(tomllib.loads(configmap_toml())["address"][0])
    (port,) = service["spec"]["ports"]
    assert port["port"] == agent_port
    assert container_ports[port["targetPort"]] == agent_port


def test_metrics_port_is_annotated_for_scraping() -> None:
    """prometheus.io/* annotations on the pods name the metrics port the agent serves."""
    annotations = one("DaemonSet")["spec"]["template"]["metadata"]["annotations"]
    metrics_port = port_of(tomllib.loads(configmap_toml())["metrics-address"])
    container_ports = {p["name"]: p["containerPort"] for p in agent_container()["ports"]}
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(metrics_port)
    assert container_ports["metrics"] == metrics_port


def test_pod_is_locked_down() -> None:
    """Non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp, limits."""
    spec = pod_spec()
    container = agent_container()
    pod_sc = spec["securityContext"]
    sc = container["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] != 0
    assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["capabilities"].get("add")
    assert not sc.get("privileged")
    assert not spec.get("hostNetwork") and not spec.get("hostPID")
    # The read-only root needs a writable /tmp for the runtime's rundir.
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    limit = quantity_bytes(resources["limits"]["memory"])
    max_memory = size_bytes(tomllib.loads(configmap_toml())["max-memory"])
    assert limit > max_memory, "the memory limit must leave room above max-memory"
    assert quantity_bytes(resources["requests"]["memory"]) <= limit


def test_grace_period_outlasts_the_drain() -> None:
    """The kubelet's SIGKILL comes after the agent's drain timeout, not during it."""
    drain = tomllib.loads(configmap_toml())["drain-timeout"]
    assert pod_spec()["terminationGracePeriodSeconds"] > drain


# --- agent config files ---------------------------------------------------------------------


CONFIGS = {
    "systemd": lambda: SYSTEMD_TOML.read_text(),
    "container": lambda: CONTAINER_TOML.read_text(),
    "configmap": configmap_toml,
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_agent_config_has_the_agents_keys(name: str) -> None:
    """The config parses, sets the agent's keys with the right types, and no others."""
    config = tomllib.loads(CONFIGS[name]())
    assert config.keys() == REQUIRED_KEYS.keys()
    for key, kind in REQUIRED_KEYS.items():
        assert isinstance(config[key], kind), f"{key} = {config[key]!r}"
    assert config["address"] and all(isinstance(a, str) for a in config["address"])
    assert any(a.startswith("tcp://") for a in config["address"])
    port_of(config["metrics-address"])
    assert size_bytes(config["max-memory"]) > 0
    assert config["max-connections"] > 0 and config["drain-timeout"] > 0
    assert all(p for p in config["plugins"].split(":"))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_agent_config_examples_parse(name: str) -> None:
    """Its commented-out token-file and [tenants.NAME] examples are valid once enabled."""
    text = CONFIGS[name]()
    config = tomllib.loads(text)
    for key in EXAMPLE_KEYS:
        assert key not in config, f"{key} is an example: keep it commented out"
    enabled = tomllib.loads(uncomment_examples(text))
    assert enabled.keys() == REQUIRED_KEYS.keys() | set(EXAMPLE_KEYS)
    assert {k: enabled[k] for k in config} == config
    assert enabled["token-file"].startswith("/")
    assert enabled["tenants"] and all(
        isinstance(t, dict) and t for t in enabled["tenants"].values()
    )


def test_container_config_matches_the_configmap() -> None:
    """The image's built-in config and the ConfigMap's say the same (comments aside)."""
    assert tomllib.loads(CONTAINER_TOML.read_text()) == tomllib.loads(configmap_toml())
    enabled = tomllib.loads(uncomment_examples(CONTAINER_TOML.read_text()))
    assert enabled == tomllib.loads(uncomment_examples(configmap_toml()))


def test_config_keys_are_agent_flags() -> None:
    """Once the agent takes --config, every active key of the config files is one of its flags.

    The commented-out examples (token-file, tenants) name features that may land later, so
    they are not held to the agent's flags here.
    """
    agent = shutil.which("vaccel-agent", path=str(Path(sys.executable).parent))
    if agent is None:
        pytest.skip("vaccel-agent is not installed beside this interpreter")
    done = subprocess.run(
        [agent, "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, f"vaccel-agent --help failed: {done.stderr}"
    flags = set(re.findall(r"--[a-z][a-z0-9-]*", done.stdout))
    if "--config" not in flags:
        pytest.skip("this vaccel-agent does not read a config file yet")
    for name, read in CONFIGS.items():
        for key in tomllib.loads(read()):
            if key == "plugins" and "--plugins" not in flags:
                continue  # VACCEL_PLUGINS' key, where the agent has no flag for it
            assert f"--{key}" in flags, f"{name}: {key} is not a vaccel-agent flag"


# --- systemd --------------------------------------------------------------------------------


def test_unit_runs_the_agent_with_its_hardening() -> None:
    """ExecStart, start and stop semantics, and the hardening options the unit promises."""
    sections = unit_entries(UNIT.read_text())
    assert {"Unit", "Service", "Install"} <= sections.keys()
    service = sections["Service"]
    assert unit_value(service, "ExecStart") == EXEC_START
    assert unit_value(service, "Type") == "exec"
    assert unit_value(service, "Restart") == "on-failure"
    assert unit_value(service, "KillSignal") == "SIGTERM"
    drain = tomllib.loads(SYSTEMD_TOML.read_text())["drain-timeout"]
    assert seconds(unit_value(service, "TimeoutStopSec")) > drain
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "LockPersonality": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_VSOCK",
        "RuntimeDirectory": "vaccel",
        "SystemCallArchitectures": "native",
    }
    for key, value in expected.items():
        assert unit_value(service, key) == value, key
    filters = [v for k, v in service if k == "SystemCallFilter"]
    assert filters and filters[0] == "@system-service"
    user = dict(service).get("User")
    assert dict(service).get("DynamicUser") == "yes" or user not in (None, "root", "0")
    # Deliberately off (see the unit's comment): JIT-using plugins need W+X memory.
    assert "MemoryDenyWriteExecute" not in dict(service)
    assert ("WantedBy", "multi-user.target") in sections["Install"]
    # The unix socket of agent.toml lives in the RuntimeDirectory.
    addresses = tomllib.loads(SYSTEMD_TOML.read_text())["address"]
    sockets = [a for a in addresses if a.startswith("unix://")]
    assert sockets and all(a.startswith("unix:///run/vaccel/") for a in sockets)
    config_path = EXEC_START.split("--config", 1)[1].strip()
    assert config_path == "/etc/vaccel/agent.toml"


def _systemd_analyze() -> str:
    """The systemd-analyze command, or skip."""
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed here")
    return found


def _runnable_copy(tmp_path: Path, text: str) -> Path:
    """The unit, its ExecStart pointed at a vaccel-agent that exists here."""
    agent = shutil.which("vaccel-agent", path=str(Path(sys.executable).parent))
    if agent is None:
        pytest.skip("vaccel-agent is not installed beside this interpreter")
    assert EXEC_START.split()[0] in text
    copied = tmp_path / UNIT.name
    copied.write_text(text.replace(EXEC_START.split()[0], agent, 1))
    return copied


def _verify(tool: str, unit: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify unit`, without a running systemd."""
    return subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, timeout=30, check=False
    )


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd-analyze verify finds nothing wrong (with ExecStart at an agent that exists)."""
    tool = _systemd_analyze()
    done = _verify(tool, _runnable_copy(tmp_path, UNIT.read_text()))
    assert done.returncode == 0, done.stderr
    # verify reports unknown keys and bad values on stderr and still exits 0.
    assert done.stderr.strip() == "" and done.stdout.strip() == ""


def test_unit_as_shipped_only_lacks_the_agent_binary() -> None:
    """The unit as installed: at most the one complaint that /usr/local/bin has no agent here."""
    tool = _systemd_analyze()
    done = _verify(tool, UNIT)
    binary = EXEC_START.split()[0]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if Path(binary).exists():
        assert lines == [] and done.returncode == 0, done.stderr
    else:
        # systemd 252: "vaccel-agent.service: Command /usr/local/bin/vaccel-agent is not
        # executable: No such file or directory"; the wording varies between releases.
        assert len(lines) == 1, done.stderr
        assert binary in lines[0] and "executable" in lines[0], done.stderr


def test_systemd_analyze_verify_catches_mistakes(tmp_path: Path) -> None:
    """The verify check has teeth: a bad value and an unknown key are both reported."""
    tool = _systemd_analyze()
    text = UNIT.read_text()
    assert "\nProtectHome=yes\n" in text
    broken = text.replace("\nProtectHome=yes\n", "\nProtectHome=maybe\nProtecHostname=yes\n")
    done = _verify(tool, _runnable_copy(tmp_path, broken))
    assert "ProtectHome" in done.stderr or "protect home" in done.stderr.lower()
    assert "ProtecHostname" in done.stderr


def test_unit_exposure_stays_low(tmp_path: Path) -> None:
    """systemd-analyze security rates the unit's exposure 2.5 or lower (0 best, 10 worst)."""
    tool = _systemd_analyze()
    unit = _runnable_copy(tmp_path, UNIT.read_text())
    done = subprocess.run(
        [tool, "security", "--offline=yes", "--threshold=25", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if "--offline" in done.stderr or "--threshold" in done.stderr:
        pytest.skip(f"this systemd-analyze has no offline security check: {done.stderr.strip()}")
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert level, done.stdout + done.stderr
    assert done.returncode == 0, f"exposure {level.group(1)} is above 2.5"


# --- container ------------------------------------------------------------------------------


def test_containerfile_builds_from_the_repository_root() -> None:
    """python:3.11-slim, `pip install '.[metrics]'` of the source tree (the shipped config
    sets metrics-address, which needs prometheus-client: a bare `.` would not start),
    files copied from the root."""
    instructions = containerfile_instructions(CONTAINERFILE.read_text())
    froms = [args for word, args in instructions if word == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms)
    assert any(
        word == "RUN" and re.search(r"pip install\s+'\.\[metrics\]'(\s|$)", args)
        for word, args in instructions
    )
    for word, args in instructions:
        if word == "COPY" and "--from=" not in args:
            *sources, _dest = args.split()
            for source in sources:
                assert source == "." or (ROOT / source).exists(), f"COPY {source}: not in the repo"
    ignored = {line.strip() for line in IGNOREFILE.read_text().splitlines()}
    assert {".git", ".venv"} <= ignored


def test_containerfile_runs_the_agent_as_non_root_with_a_healthcheck() -> None:
    """The final stage runs as a numeric non-root user, checks health and starts the agent."""
    stage = final_stage(containerfile_instructions(CONTAINERFILE.read_text()))
    words = [word for word, _ in stage]
    users = [args for word, args in stage if word == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "USER must be a numeric uid other than 0"
    # USER comes before the commands the image runs, and nothing after it switches back.
    assert words.index("USER") < words.index("CMD")
    assert pod_spec()["securityContext"]["runAsUser"] == int(user)

    (healthcheck,) = [args for word, args in stage if word == "HEALTHCHECK"]
    command = healthcheck.split(" CMD ", 1)[1].strip()
    assert json.loads(command) == HEALTH

    (cmd,) = [args for word, args in stage if word == "CMD"]
    assert json.loads(cmd) == AGENT_CMD
    config_copies = [
        args for word, args in stage if word == "COPY" and args.endswith(AGENT_CMD[-1])
    ]
    assert config_copies == [f"{CONTAINER_TOML.relative_to(ROOT)} {AGENT_CMD[-1]}"]

    exposed = {
        int(p.split("/")[0]) for word, args in stage if word == "EXPOSE" for p in args.split()
    }
    config = tomllib.loads(CONTAINER_TOML.read_text())
    assert exposed == {port_of(config["address"][0]), port_of(config["metrics-address"])}
    assert port_of(HEALTH[2]) == port_of(config["address"][0])
