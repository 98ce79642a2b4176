"""Load YAML files safely while remembering the line of every value.

PyYAML's safe loader forgets where values came from and silently keeps the last of duplicate keys.
We compose the node tree ourselves so that validation errors can name `file:line` and duplicate keys
are rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, field_path

Path_ = tuple[object, ...]


@dataclass
class YamlDoc:
    """Parsed data plus a map from field path to 1-based line number."""

    data: Any
    source: str
    lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, path: Path_) -> int | None:
        """Line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def error(self, path: Path_, message: str) -> ConfigError:
        return ConfigError(self.source, self.line(path), field_path(path) or None, message)


def _construct(node: yaml.Node, path: Path_, lines: dict[Path_, int], source: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(source, key_node.start_mark.line + 1, field_path(path) or None,
                                  "mapping keys must be plain scalars")
            if key_node.tag == "tag:yaml.org,2002:merge":  # before _scalar, which cannot construct it
                raise ConfigError(source, key_node.start_mark.line + 1, field_path(path) or None,
                                  "YAML merge keys (<<) are not supported")
            key = _scalar(key_node, source, path)
            if key in out:
                raise ConfigError(source, key_node.start_mark.line + 1, field_path(path + (key,)),
                                  f'duplicate key "{key}"')
            out[key] = _construct(value_node, path + (key,), lines, source)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), lines, source) for i, item in enumerate(node.value)]
    return _scalar(node, source, path)


def _scalar(node: yaml.ScalarNode, source: str, path: Path_ = ()) -> Any:
    try:
        return yaml.SafeLoader(f"").construct_object(node, deep=True)
    except yaml.YAMLError as exc:  # an unknown tag such as !custom
        raise ConfigError(source, node.start_mark.line + 1, field_path(path) or None,
                          str(exc).splitlines()[0]) from None
    except (ValueError, OverflowError) as exc:  # a date that does not exist, e.g. 2027-02-30
        raise ConfigError(source, node.start_mark.line + 1, field_path(path) or None,
                          f'cannot read "{node.value}": {exc}') from None


def parse_yaml(text: str, source: str) -> YamlDoc:
    """Parse YAML text; syntax errors become one-line ConfigErrors."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise ConfigError(source, line, None, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, None, None, f"invalid YAML: {exc}") from None
    lines: dict[Path_, int] = {}
    data = None if node is None else _construct(node, (), lines, source)
    return YamlDoc(data=data, source=source, lines=lines)


def load_yaml(path: str | Path, display: str | None = None) -> YamlDoc:
    """Read and parse a YAML file; unreadable files become ConfigErrors."""
    display = display or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(display, None, None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(display, None, None, "is a directory, expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(display, None, None, f"cannot read: {exc}") from None
    return parse_yaml(text, display)
