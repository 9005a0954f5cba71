"""The shared YAML/JSON reader and the one configuration error type (``auditspan._config_files``).

Behavioural rules, classification rules and ``configure()`` report bad
configuration with one class, ``ConfigurationError``: a setting's message, or a
file's (file, line, rule, field). ``ConfigError`` is the same class.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import auditspan
import auditspan.classification
import auditspan.configuration
import auditspan.rules
from auditspan._config_files import ConfigDocument, ConfigurationError, read_config
from auditspan.classification import ClassificationRule, load_classification_rules
from auditspan.rules import BehaviourRule, load_rules

DATA = Path(__file__).parents[1] / "data" / "rules"


def test_there_is_one_configuration_error_type() -> None:
    assert auditspan.ConfigurationError is ConfigurationError
    assert auditspan.configuration.ConfigurationError is ConfigurationError
    assert auditspan.classification.ConfigError is ConfigurationError
    assert auditspan.rules.ConfigError is ConfigurationError
    assert issubclass(ConfigurationError, ValueError)


def test_the_setting_form_is_its_message() -> None:
    exc = ConfigurationError("otlp_protocol: unknown protocol 'carrier-pigeon'")
    assert str(exc) == "otlp_protocol: unknown protocol 'carrier-pigeon'"
    assert (exc.source, exc.reason, exc.path, exc.line) == (
        None,
        "otlp_protocol: unknown protocol 'carrier-pigeon'",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("path", "line", "message"),
    [
        ("rules[1].condition.within", 14, "rules.yaml:14: rules[1].condition.within: invalid duration"),
        ("rules[1].condition.within", None, "rules.yaml: rules[1].condition.within: invalid duration"),
        (None, 14, "rules.yaml:14: invalid duration"),
        (None, None, "rules.yaml: invalid duration"),
    ],
)
def test_the_file_form_names_file_line_and_field(path: str | None, line: int | None, message: str) -> None:
    exc = ConfigurationError("rules.yaml", "invalid duration", path=path, line=line)
    assert str(exc) == message
    assert (exc.source, exc.reason, exc.path, exc.line) == ("rules.yaml", "invalid duration", path, line)
    by_name = ConfigurationError(source="rules.yaml", reason="invalid duration", path=path, line=line)
    assert str(by_name) == message


def test_a_file_error_survives_pickling_with_its_attributes() -> None:
    """An error crossing a process boundary (multiprocessing, concurrent.futures) keeps what it says."""
    exc = ConfigurationError("rules.yaml", "invalid duration", path="rules[1].condition.within", line=14)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is ConfigurationError
    assert str(back) == str(exc)
    assert (back.source, back.reason, back.path, back.line) == (exc.source, exc.reason, exc.path, exc.line)


def test_both_rule_loaders_raise_the_one_type() -> None:
    with pytest.raises(ConfigurationError) as behaviour:
        load_rules(DATA / "bad_within.yaml")
    assert (behaviour.value.line, behaviour.value.path) == (14, "rules[1].condition.within")
    with pytest.raises(ConfigurationError) as classification:
        load_classification_rules("rules:\n  - tool: a\n    type: LLM_CALL\n  - tool: b\n    type: NOPE\n")
    assert str(classification.value).startswith("<text>:5: rules[1].type: unknown operation type 'NOPE'")
    assert (classification.value.source, classification.value.line) == ("<text>", 5)


def test_a_rule_built_in_code_raises_a_configuration_error_naming_the_field() -> None:
    with pytest.raises(ConfigurationError, match=r"^field 'type': unknown operation type 'NOPE'"):
        ClassificationRule("crm_*", "NOPE")
    with pytest.raises(ConfigurationError, match=r"^field 'condition\.within': must be a positive number"):
        BehaviourRule("r", "DATABASE_READ", None, ("EMAIL_SEND",), -1, "deny")


def test_configure_names_the_setting_before_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "classes.json"
    bad.write_text('{"rules": [{"tool": "a", "type": "NOPE"}]}', encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        auditspan.configure(output_dir=tmp_path, environ={}, set_global=False, classification_rules=bad)
    assert str(caught.value).startswith(f"classification_rules: {bad}: rules[0].type: unknown operation type")


def test_yaml_documents_know_the_line_of_each_key_and_item() -> None:
    doc = read_config("rules:\n  - tool: a\n    type: LLM_CALL\n  - tool: b\n    type: FILE_READ\n")
    assert doc.source == "<text>"
    assert doc.data == {"rules": [{"tool": "a", "type": "LLM_CALL"}, {"tool": "b", "type": "FILE_READ"}]}
    assert doc.line_of(("rules",)) == 1
    assert doc.line_of(("rules", 1)) == 4
    assert doc.line_of(("rules", 1, "type")) == 5
    assert doc.line_of(("rules", 1, "colour")) == 4  # unknown: its nearest known parent
    error = doc.error(("rules", 1, "type"), "unknown operation type")
    assert str(error) == "<text>:5: rules[1].type: unknown operation type"


def test_json_documents_have_no_lines_but_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"rules": [{"tool": "a"}]}', encoding="utf-8")
    doc = read_config(path)
    assert doc == ConfigDocument({"rules": [{"tool": "a"}]}, str(path), {})
    assert str(doc.error(("rules", 0), "missing field 'type'")) == f"{path}: rules[0]: missing field 'type'"
    path.write_text('{"rules": [\n{"tool": }]}', encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        read_config(path)
    assert (caught.value.source, caught.value.line) == (str(path), 2)
    assert caught.value.reason.startswith("invalid JSON: ")


def test_the_reader_imports_neither_pyyaml_nor_the_rule_modules() -> None:
    """The reader is a leaf: rules and classification import it, never the other way round."""
    code = (
        "import sys, importlib.util\n"
        "spec = importlib.util.spec_from_file_location('cf', sys.argv[1])\n"
        "module = sys.modules['cf'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(sorted(m for m in sys.modules if m == 'yaml' or m.startswith('auditspan')))\n"
    )
    source = Path(auditspan.__file__).parent / "_config_files.py"
    out = subprocess.run(
        [sys.executable, "-c", code, str(source)], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
