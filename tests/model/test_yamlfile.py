"""The YAML loader: line numbers for every field, duplicate keys and merge keys rejected."""

import pytest

from conformance.model.errors import ConfigError, did_you_mean, field_path
from conformance.model.yamlfile import parse_yaml


def test_lines_of_fields():
    doc = parse_yaml("# c\na: 1\nb:\n  - x: 2\n    y: [1, 2]\n", "f.yaml")
    assert doc.data == {"a": 1, "b": [{"x": 2, "y": [1, 2]}]}
    assert doc.line(("a",)) == 2
    assert doc.line(("b", 0, "y")) == 5
    assert doc.line(("b", 0, "y", 1)) == 5
    assert doc.line(("b", 0, "nope")) == 4  # nearest ancestor
    err = doc.error(("b", 0, "y"), "bad")
    assert str(err) == "f.yaml:5: b[0].y: bad"


def test_duplicate_key():
    with pytest.raises(ConfigError) as info:
        parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\n", "f.yaml")
    assert str(info.value) == 'f.yaml:4: b.c: duplicate key "c"'


def test_merge_keys_rejected():
    with pytest.raises(ConfigError, match="merge keys"):
        parse_yaml("base: &b {x: 1}\nother:\n  <<: *b\n", "f.yaml")


def test_syntax_error_is_one_located_line():
    with pytest.raises(ConfigError) as info:
        parse_yaml("a: [1, 2\nb: 3\n", "f.yaml")
    assert str(info.value).startswith("f.yaml:") and "invalid YAML" in str(info.value)
    assert "\n" not in str(info.value)


def test_dates_stay_dates_and_unsafe_tags_are_refused():
    import datetime as dt

    assert parse_yaml("d: 2027-01-31\n", "f").data == {"d": dt.date(2027, 1, 31)}
    # python tags never construct objects: a tagged sequence is plain data, a tagged scalar is refused
    assert parse_yaml("x: !!python/object/apply:os.system [echo hi]\n", "f").data == {"x": ["echo hi"]}
    with pytest.raises(ConfigError) as info:
        parse_yaml("a: 1\nx: !!python/name:os.system ''\n", "f.yaml")
    assert str(info.value).startswith("f.yaml:2: x: ")


def test_impossible_date_is_a_located_error_not_a_traceback():
    with pytest.raises(ConfigError) as info:
        parse_yaml("w:\n  expires: 2027-02-30\n", "f.yaml")
    assert str(info.value) == 'f.yaml:2: w.expires: cannot read "2027-02-30": day is out of range for month'


def test_helpers():
    assert field_path(["requirements", 3, "expect"]) == "requirements[3].expect"
    assert did_you_mean("msec", ["ms", "s"]) == ' (did you mean "ms"?)'
    assert did_you_mean("zzz", ["ms"]) == ""


def test_too_deep_is_located_when_libyaml_refuses_deep_nesting_itself(monkeypatch):
    """PyYAML >= 6.0.4's libyaml stops deep flow nesting with its own error before our depth count
    finds the line; the pure-Python scanner then counts, so the line is the same on every machine."""
    import yaml

    from conformance.model import yamlfile

    class RefusingLoader(yaml.SafeLoader):
        def get_token(self):
            raise yaml.scanner.ScannerError("while increasing flow level", None,
                                            "exceeded maximum nesting depth", None)

        def get_single_node(self):
            return self.get_token()

    monkeypatch.setattr(yamlfile, "_Loader", RefusingLoader)
    text = "id: deep\nx: " + "[" * 1100 + "]" * 1100 + "\n"  # deep enough to exhaust the recursive composer
    with pytest.raises(ConfigError, match=r"^f\.yaml:2: nested more than 64 levels deep$"):
        yamlfile.parse_yaml(text, "f.yaml")
