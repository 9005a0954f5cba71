"""The ready-to-copy collector configurations in ``collector-config/``.

Static checks (no Docker here): every YAML parses; every component a collector config
names is listed in ``components.txt`` (the otelcol-contrib release they were checked
against); pipelines reference only defined components and use all of them; the compose
file publishes what the configs listen on and mounts files that exist; Grafana's
cross-links point at provisioned data sources; the tail-sampling policies and the audit
file parsing use the names ``auditspan`` really writes.

The real hop through ``collector-config/rotel/`` starts processes and is in the end-to-end
tier (``tests/e2e/test_rotel_gateway_config.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from auditspan import attributes as attrs
from auditspan.events import EVENT_CLASSES, ToolCallAttemptEvent, utc_now_iso
from auditspan.records import build_record

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "collector-config"
COLLECTOR_CONFIGS = {
    "gateway": CONFIG_DIR / "otelcol-gateway.yaml",
    "loadbalancer": CONFIG_DIR / "otelcol-loadbalancer.yaml",
    "sampler": CONFIG_DIR / "otelcol-sampler.yaml",
}
COMPOSE = CONFIG_DIR / "docker-compose.yaml"
COMPONENTS_TXT = CONFIG_DIR / "components.txt"
DATASOURCES = CONFIG_DIR / "grafana" / "provisioning" / "datasources" / "datasources.yaml"

COMPONENT_KINDS = {
    "receivers": "receiver",
    "processors": "processor",
    "exporters": "exporter",
    "extensions": "extension",
    "connectors": "connector",
}

# Set by the collector on a span where a behavioural rule matched. Not (yet) a constant in
# auditspan.attributes, so it is spelled out here; the span event uses the package's prefix.
RULE_ACTION_ATTRIBUTE = "auditspan.rule.action"
RULE_MATCH_EVENT = attrs.EVENT_NAME_PREFIX + "behavior_rule_match"

# Severity names stanza's default preset maps without help (pkg/stanza docs/types/severity.md).
STANZA_DEFAULT_SEVERITIES = {"trace", "debug", "info", "warn", "error", "fatal"}

_ENV_REF = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# --- helpers -------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def with_defaults(text: str) -> str:
    """Resolve ``${env:NAME:-default}`` / ``${NAME:-default}`` to the default (``""`` if none)."""
    return _ENV_REF.sub(lambda m: m.group(2) or "", text)


def component_type(component_id: str) -> str:
    """``otlp_grpc/jaeger`` -> ``otlp_grpc``."""
    return component_id.split("/", 1)[0]


def port_of(endpoint: str) -> int:
    """The port of ``host:port``, ``http://host:port/path`` (after env defaults)."""
    match = re.search(r":(\d+)(?:/.*)?$", with_defaults(endpoint))
    assert match, f"no port in endpoint {endpoint!r}"
    return int(match.group(1))


def host_of(endpoint: str) -> str:
    text = re.sub(r"^[a-z]+://", "", with_defaults(endpoint))
    return text.rsplit(":", 1)[0]


def read_components() -> tuple[str, dict[tuple[str, str], set[str]]]:
    """components.txt -> (checked version, {(kind, type): {config names it is used in}})."""
    version = ""
    listed: dict[tuple[str, str], set[str]] = {}
    for raw in COMPONENTS_TXT.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("otelcol-contrib-version:"):
            version = line.split(":", 1)[1].strip()
            continue
        kind, ctype, module, _alias, used_in = line.split()
        assert module.startswith(("go.opentelemetry.io/collector/", "github.com/open-telemetry/")), line
        assert (kind, ctype) not in listed, f"listed twice: {kind} {ctype}"
        listed[(kind, ctype)] = set(used_in.split(","))
    return version, listed


def defined_components(config: dict[str, Any]) -> set[tuple[str, str]]:
    """(kind, component id) for every component a config defines."""
    found: set[tuple[str, str]] = set()
    for section, kind in COMPONENT_KINDS.items():
        for component_id in config.get(section) or {}:
            found.add((kind, component_id))
    return found


def operators(config: dict[str, Any]) -> list[dict[str, Any]]:
    return list(config["receivers"].get("file_log", {}).get("operators", []))


def operator(config: dict[str, Any], op_type: str) -> dict[str, Any]:
    matching = [op for op in operators(config) if op["type"] == op_type]
    assert len(matching) == 1, f"expected one {op_type} operator, got {len(matching)}"
    return matching[0]


def stanza_get(entry: dict[str, Any], field: str) -> Any:
    """Resolve a stanza field path (``attributes.a.b``, ``attributes["x.y"]``) in ``entry``."""
    parts = re.findall(r'\["([^"]+)"\]|([^.\[\]]+)', field)
    value: Any = entry
    for quoted, plain in parts:
        key = quoted or plain
        assert isinstance(value, dict) and key in value, f"{field!r}: no {key!r} in {value!r}"
        value = value[key]
    return value


def policies(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    by_type: dict[str, dict[str, Any]] = {}
    for policy in config["processors"]["tail_sampling"]["policies"]:
        assert policy["type"] not in by_type, f"two {policy['type']} policies"
        by_type[policy["type"]] = policy
    return by_type


def compose_ports(service: dict[str, Any]) -> dict[int, str]:
    """container port -> host binding (``127.0.0.1:4317``) of a compose service."""
    published: dict[int, str] = {}
    for spec in service.get("ports", []):
        host_ip, host_port, container_port = str(spec).split(":")
        published[int(container_port)] = f"{host_ip}:{host_port}"
    return published


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path (env defaults resolved) of a compose service's bind mounts."""
    found: dict[str, str] = {}
    for spec in service.get("volumes", []):
        source, target, *_mode = with_defaults(str(spec)).split(":")
        found[target] = source
    return found


# --- every file parses, every component is known ---------------------------------------------------


def test_every_yaml_file_parses_to_a_mapping() -> None:
    files = sorted(CONFIG_DIR.rglob("*.yaml")) + sorted(CONFIG_DIR.rglob("*.yml"))
    names = {p.relative_to(CONFIG_DIR).as_posix() for p in files}
    assert {
        "otelcol-gateway.yaml",
        "otelcol-loadbalancer.yaml",
        "otelcol-sampler.yaml",
        "docker-compose.yaml",
        "tempo.yaml",
        "loki.yaml",
        "grafana/provisioning/datasources/datasources.yaml",
    } <= names
    for path in files:
        assert isinstance(load_yaml(path), dict), path


@pytest.mark.parametrize("name", sorted(COLLECTOR_CONFIGS))
def test_every_component_is_listed_in_components_txt(name: str) -> None:
    _version, listed = read_components()
    config = load_yaml(COLLECTOR_CONFIGS[name])
    used = {(kind, component_type(cid)) for kind, cid in defined_components(config)}
    for kind, ctype in sorted(used):
        assert (kind, ctype) in listed, f"{name}: {kind} {ctype} is not in components.txt"
        assert name in listed[(kind, ctype)], f"components.txt does not list {kind} {ctype} as used in {name}"
    # ... and components.txt claims nothing the config does not use.
    claimed = {
        key for key, configs in listed.items() if name in configs and key[0] in COMPONENT_KINDS.values()
    }
    assert claimed == used, f"{name}: components.txt lists {sorted(claimed - used)} that are not used"


@pytest.mark.parametrize("name", sorted(COLLECTOR_CONFIGS))
def test_operators_and_policies_are_listed_in_components_txt(name: str) -> None:
    _version, listed = read_components()
    config = load_yaml(COLLECTOR_CONFIGS[name])
    for op in operators(config):
        assert ("operator", op["type"]) in listed, f"{name}: operator {op['type']} not in components.txt"
    if "tail_sampling" in config["processors"]:
        for policy_type in policies(config):
            assert ("policy", policy_type) in listed, f"{name}: policy {policy_type} not in components.txt"


def test_components_txt_version_is_the_compose_collector_image() -> None:
    version, listed = read_components()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    image = load_yaml(COMPOSE)["services"]["otel-collector"]["image"]
    assert image == f"otel/opentelemetry-collector-contrib:{version}"
    # The contrib `loki` exporter left the distribution; nothing may rely on it.
    assert ("exporter", "loki") not in listed


# --- pipelines --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COLLECTOR_CONFIGS))
def test_pipelines_use_exactly_the_defined_components(name: str) -> None:
    config = load_yaml(COLLECTOR_CONFIGS[name])
    service = config["service"]
    defined = defined_components(config)
    referenced: set[tuple[str, str]] = {("extension", e) for e in service.get("extensions", [])}
    assert service["pipelines"], f"{name}: no pipelines"
    for pipeline_id, pipeline in service["pipelines"].items():
        assert component_type(pipeline_id) in {"traces", "logs", "metrics", "profiles"}, pipeline_id
        assert pipeline.get("receivers") and pipeline.get("exporters"), f"{name}/{pipeline_id} is incomplete"
        for section in ("receivers", "processors", "exporters"):
            kind = COMPONENT_KINDS[section]
            for component_id in pipeline.get(section) or []:
                # A connector may stand where a receiver or exporter stands.
                if ("connector", component_id) in defined and section != "processors":
                    kind = "connector"
                assert (kind, component_id) in defined, f"{name}/{pipeline_id}: {component_id} is not defined"
                referenced.add((kind, component_id))
    assert defined == referenced, f"{name}: defined but unused: {sorted(defined - referenced)}"


@pytest.mark.parametrize("name", sorted(COLLECTOR_CONFIGS))
def test_memory_limiter_first_and_batch_after_sampling(name: str) -> None:
    for pipeline_id, pipeline in load_yaml(COLLECTOR_CONFIGS[name])["service"]["pipelines"].items():
        processors = pipeline.get("processors") or []
        assert processors[0] == "memory_limiter", f"{name}/{pipeline_id}"
        assert processors[-1] == "batch", f"{name}/{pipeline_id}"
        if "tail_sampling" in processors:
            assert pipeline_id.startswith("traces")
            assert processors.index("tail_sampling") < processors.index("batch")


def test_logs_are_never_sampled() -> None:
    for name, path in COLLECTOR_CONFIGS.items():
        for pipeline_id, pipeline in load_yaml(path)["service"]["pipelines"].items():
            if pipeline_id.startswith("logs"):
                assert "tail_sampling" not in (pipeline.get("processors") or []), f"{name}/{pipeline_id}"


# --- tail sampling keeps what an auditor needs -----------------------------------------------------


@pytest.mark.parametrize("name", ["gateway", "sampler"])
def test_tail_sampling_keeps_errors_denials_and_rule_matches(name: str) -> None:
    config = load_yaml(COLLECTOR_CONFIGS[name])
    by_type = policies(config)
    # Only independent "keep" policies plus the probabilistic rest: no and/drop/not/composite
    # that could veto a keep decision.
    assert set(by_type) == {"status_code", "string_attribute", "ottl_condition", "probabilistic"}

    assert by_type["status_code"]["status_code"]["status_codes"] == ["ERROR"]

    outcome = by_type["string_attribute"]["string_attribute"]
    assert outcome["key"] == attrs.TOOL_OUTCOME
    assert sorted(outcome["values"]) == sorted([attrs.OUTCOME_DENIED, attrs.OUTCOME_BLOCKED])
    assert not outcome.get("invert_match", False)
    assert not outcome.get("enabled_regex_matching", False)

    ottl = by_type["ottl_condition"]["ottl_condition"]
    assert ottl["span"] == [f'span.attributes["{RULE_ACTION_ATTRIBUTE}"] != nil']
    assert ottl["spanevent"] == [f'spanevent.name == "{RULE_MATCH_EVENT}"']

    percentage = by_type["probabilistic"]["probabilistic"]["sampling_percentage"]
    assert 0 < percentage < 100


def test_sampler_tier_samples_exactly_like_the_gateway() -> None:
    gateway = load_yaml(COLLECTOR_CONFIGS["gateway"])["processors"]["tail_sampling"]
    sampler = load_yaml(COLLECTOR_CONFIGS["sampler"])["processors"]["tail_sampling"]
    assert sampler == gateway


# --- the audit file is parsed with the names auditspan writes ---------------------------------------


def _canonical_record_line() -> tuple[str, str, str]:
    """One canonical audit record as auditspan writes it, plus its trace and span ids."""
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    event = ToolCallAttemptEvent(
        tool_name="web_search", turn_id="0a1b2c3d4e5f", agent_id="planner", session_id="sess-01"
    )
    record = build_record(
        event.to_dict(),
        event_id="evt_1",
        operation_type="EXTERNAL_API_CALL",
        target="https://example.invalid",
        trace_id=trace_id,
        span_id=span_id,
    )
    return json.dumps(record), trace_id, span_id


@pytest.mark.parametrize("name", ["gateway", "loadbalancer"])
def test_file_log_operators_resolve_in_a_real_audit_record(name: str) -> None:
    config = load_yaml(COLLECTOR_CONFIGS[name])
    line, trace_id, span_id = _canonical_record_line()
    # What json_parser produces: the parsed object under `attributes`, the raw line as body.
    parser = operator(config, "json_parser")
    assert parser["parse_from"] == "body" and parser["parse_to"] == "attributes"
    assert parser["on_error"] == "send"  # a malformed line is still shipped, never dropped
    entry = {"body": line, "attributes": json.loads(line)}

    timestamp = stanza_get(entry, parser["timestamp"]["parse_from"])
    assert timestamp == json.loads(line)["timestamp"]
    assert parser["timestamp"]["layout_type"] == "gotime"
    severity = stanza_get(entry, parser["severity"]["parse_from"])
    assert severity == "info"

    tracer = operator(config, "trace_parser")
    assert stanza_get(entry, tracer["trace_id"]["parse_from"]) == trace_id
    assert stanza_get(entry, tracer["span_id"]["parse_from"]) == span_id

    # Every retained attribute exists in a record (log.file.name is added by the receiver).
    entry["attributes"]["log.file.name"] = "audit.jsonl"
    retained = operator(config, "retain")["fields"]
    for field in retained:
        stanza_get(entry, field)
    assert stanza_get(entry, "attributes.type") == "EXTERNAL_API_CALL"


def test_every_event_severity_maps_to_an_otel_severity() -> None:
    parser = operator(load_yaml(COLLECTOR_CONFIGS["gateway"]), "json_parser")
    mapped = {str(value) for value in parser["severity"]["mapping"].values()}
    severities = {cls().severity for cls in EVENT_CLASSES.values()}
    assert {"info", "warning", "error"} <= severities
    for severity in severities:
        assert severity in STANZA_DEFAULT_SEVERITIES or severity in mapped, severity


def test_event_timestamps_fit_the_rfc3339nano_layout() -> None:
    # Go's RFC3339Nano layout (the gotime layout in the configs) accepts an optional fraction of
    # up to 9 digits and either Z or a +hh:mm offset: the shapes the seed systems write.
    parser = operator(load_yaml(COLLECTOR_CONFIGS["gateway"]), "json_parser")
    assert parser["timestamp"]["layout"] == "2006-01-02T15:04:05.999999999Z07:00"
    shape = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
    for stamp in (utc_now_iso(), "2026-11-21T19:24:17+00:00", "2026-11-21T19:24:17.134Z"):
        assert shape.fullmatch(stamp), stamp


# --- compose: ports, mounts, backends ---------------------------------------------------------------


def _listen_ports(config: dict[str, Any]) -> set[int]:
    """Ports a collector config listens on (receivers' protocols and extensions)."""
    ports: set[int] = set()
    for receiver in config["receivers"].values():
        for protocol in (receiver or {}).get("protocols", {}).values():
            ports.add(port_of(protocol["endpoint"]))
    for extension in config["extensions"].values():
        if extension and "endpoint" in extension:
            ports.add(port_of(extension["endpoint"]))
    return ports


def test_compose_publishes_every_port_the_gateway_listens_on() -> None:
    gateway = load_yaml(COLLECTOR_CONFIGS["gateway"])
    published = compose_ports(load_yaml(COMPOSE)["services"]["otel-collector"])
    listening = _listen_ports(gateway)
    assert {4317, 4318, 13133} <= listening
    assert listening == set(published), f"listening {sorted(listening)}, published {sorted(published)}"


def test_compose_publishes_to_loopback_only_and_pins_images() -> None:
    for name, service in load_yaml(COMPOSE)["services"].items():
        for binding in compose_ports(service).values():
            assert binding.startswith("127.0.0.1:"), f"{name} publishes {binding}"
        repository, _, tag = service["image"].rpartition(":")
        assert repository and re.fullmatch(r"\d+\.\d+\.\d+", tag), (
            f"{name}: image not pinned: {service['image']}"
        )


def test_compose_mounts_point_to_files_that_exist() -> None:
    services = load_yaml(COMPOSE)["services"]
    for name, service in services.items():
        for target, source in mounts(service).items():
            assert source.startswith("./"), f"{name}: {source} is not relative to collector-config/"
            assert (CONFIG_DIR / source).exists(), f"{name}: {source} (mounted at {target}) does not exist"
    # Each service's config file is the one mounted where its command says.
    collector = services["otel-collector"]
    (config_arg,) = [a for a in collector["command"] if a.startswith("--config=")]
    assert mounts(collector)[config_arg.split("=", 1)[1]] == "./otelcol-gateway.yaml"
    for name, file in (("tempo", "./tempo.yaml"), ("loki", "./loki.yaml")):
        (arg,) = [a for a in services[name]["command"] if a.startswith("-config.file=")]
        assert mounts(services[name])[arg.split("=", 1)[1]] == file
    grafana = mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning/datasources"] == "./grafana/provisioning/datasources"


def test_audit_log_glob_lies_in_the_mounted_folder() -> None:
    gateway = load_yaml(COLLECTOR_CONFIGS["gateway"])
    collector = load_yaml(COMPOSE)["services"]["otel-collector"]
    (include,) = gateway["receivers"]["file_log"]["include"]
    assert "AUDITSPAN_AUDIT_LOG" in include
    for pattern in (with_defaults(include), collector["environment"]["AUDITSPAN_AUDIT_LOG"]):
        folder = pattern.rsplit("/", 1)[0]
        assert folder in mounts(collector), f"{pattern} is not inside a mounted folder"
        assert pattern.endswith(".jsonl")


def test_gateway_exporters_point_at_the_compose_backends() -> None:
    gateway = load_yaml(COLLECTOR_CONFIGS["gateway"])
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    environment = services["otel-collector"]["environment"]
    tempo_grpc = load_yaml(CONFIG_DIR / "tempo.yaml")["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]
    loki_port = load_yaml(CONFIG_DIR / "loki.yaml")["server"]["http_listen_port"]
    expected = {
        # Jaeger v2's all-in-one config listens for OTLP/gRPC on 4317 (no config file mounted).
        "otlp_grpc/jaeger": ("jaeger", 4317, "JAEGER_OTLP_ENDPOINT"),
        "otlp_grpc/tempo": ("tempo", port_of(tempo_grpc["endpoint"]), "TEMPO_OTLP_ENDPOINT"),
        "otlp_http/loki": ("loki", loki_port, "LOKI_OTLP_ENDPOINT"),
    }
    assert set(gateway["exporters"]) == set(expected)
    for exporter_id, (service, port, variable) in expected.items():
        endpoint = gateway["exporters"][exporter_id]["endpoint"]
        assert variable in endpoint
        # The config's default and the compose environment agree, and both name the service.
        assert with_defaults(endpoint) == environment[variable]
        assert host_of(endpoint) == service and service in services
        assert port_of(endpoint) == port
    assert with_defaults(gateway["exporters"]["otlp_http/loki"]["endpoint"]).endswith("/otlp")
    assert compose_ports(services["tempo"]).keys() == {
        load_yaml(CONFIG_DIR / "tempo.yaml")["server"]["http_listen_port"]
    }
    assert compose_ports(services["loki"]).keys() == {loki_port}


def test_grafana_links_traces_and_audit_records_both_ways() -> None:
    datasources = {d["uid"]: d for d in load_yaml(DATASOURCES)["datasources"]}
    assert datasources["tempo"]["type"] == "tempo" and datasources["loki"]["type"] == "loki"
    tempo_port = load_yaml(CONFIG_DIR / "tempo.yaml")["server"]["http_listen_port"]
    loki_port = load_yaml(CONFIG_DIR / "loki.yaml")["server"]["http_listen_port"]
    assert datasources["tempo"]["url"] == f"http://tempo:{tempo_port}"
    assert datasources["loki"]["url"] == f"http://loki:{loki_port}"

    to_logs = datasources["tempo"]["jsonData"]["tracesToLogsV2"]
    assert datasources[to_logs["datasourceUid"]]["type"] == "loki"
    assert to_logs["filterByTraceID"] is True
    assert "trace_id=" in to_logs["query"] and "__trace.traceId" in to_logs["query"]

    (derived,) = datasources["loki"]["jsonData"]["derivedFields"]
    assert datasources[derived["datasourceUid"]]["type"] == "tempo"
    assert derived["matcherType"] == "label" and derived["matcherRegex"] == "trace_id"

    # Grafana expands `${...}` in provisioning files itself: Grafana's own variables need `$$`.
    text = DATASOURCES.read_text(encoding="utf-8")
    assert not re.search(r"(?<!\$)\$\{", text), "unescaped ${ in datasources.yaml"


# --- scale-out --------------------------------------------------------------------------------------


def test_load_balancer_routes_by_trace_id_to_the_sampler_port() -> None:
    balancer = load_yaml(COLLECTOR_CONFIGS["loadbalancer"])
    sampler = load_yaml(COLLECTOR_CONFIGS["sampler"])
    exporter = balancer["exporters"]["load_balancing"]
    assert exporter["routing_key"] == "traceID"
    assert "endpoint" not in exporter["protocol"]["otlp"]  # filled per backend by the exporter
    sampler_port = port_of(sampler["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])
    hostnames = exporter["resolver"]["static"]["hostnames"]
    assert len(hostnames) >= 2
    assert {port_of(h) for h in hostnames} == {sampler_port}
    # Traces are routed, not sampled, on tier 1; the audit file is read on one tier only.
    traces = balancer["service"]["pipelines"]["traces"]
    assert traces["exporters"] == ["load_balancing"] and "tail_sampling" not in traces["processors"]
    assert "file_log" not in sampler["receivers"]
