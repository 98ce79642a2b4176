"""Load YAML files safely while remembering the line of every value.

PyYAML's safe loader forgets where values came from and silently keeps the last of duplicate keys.
We compose the node tree ourselves so that validation errors can name `file:line` and duplicate keys
are rejected. Bounded (model/boundedio.py): regular files of at most MAX_YAML_BYTES, at most
MAX_DEPTH levels of nesting, and at most MAX_YAML_VALUES values however aliases expand, so a hostile
file ("billion laughs", a FIFO, /dev/zero) is one line and exit 2, not a hang.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .boundedio import MAX_DEPTH, MAX_YAML_BYTES, MAX_YAML_VALUES, read_text_input
from .errors import ConfigError, field_path

# libyaml's composer when PyYAML was built with it: about ten times faster on big target files.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

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


def _compose(text: str) -> yaml.Node | None:
    """The node tree, composed by libyaml when it is there; a document it refuses is composed again by
    the pure-Python loader, whose error messages (and so the one line a user sees) are the same on
    every machine."""
    for loader_class in dict.fromkeys((_Loader, yaml.SafeLoader)):
        loader = loader_class(text)
        try:
            return loader.get_single_node()
        except yaml.YAMLError:
            if loader_class is yaml.SafeLoader:
                raise
        finally:
            loader.dispose()
    return None  # pragma: no cover - the pure-Python loader either returns or raises


_OPEN = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken,
         yaml.FlowSequenceStartToken)
_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _too_deep_at(text: str) -> int | None:
    """The line where nesting first goes past MAX_DEPTH (the scanner is not recursive). libyaml's own
    scanner refuses very deep flow nesting (PyYAML >= 6.0.4: "exceeded maximum nesting depth") before
    we would find the line: then the pure-Python scanner counts."""
    for loader_class in dict.fromkeys((_Loader, yaml.SafeLoader)):
        depth, loader = 0, loader_class(text)
        try:
            while (token := loader.get_token()) is not None:
                depth += isinstance(token, _OPEN) - isinstance(token, _CLOSE)
                if depth > MAX_DEPTH:
                    return token.start_mark.line + 1
            return None
        except yaml.YAMLError:
            continue
        finally:
            loader.dispose()
    return None


class _Budget:
    """Values constructed so far: aliases share nodes, so a small file can expand without bound."""

    def __init__(self, source: str):
        self.source, self.left = source, MAX_YAML_VALUES

    def spend(self, node: yaml.Node, path: Path_) -> None:
        self.left -= 1
        if self.left < 0:
            raise ConfigError(self.source, node.start_mark.line + 1, field_path(path) or None,
                              f"expands to more than {MAX_YAML_VALUES} values (YAML aliases?)")
        if len(path) > MAX_DEPTH:
            raise ConfigError(self.source, node.start_mark.line + 1, None, f"nested more than {MAX_DEPTH} levels deep")


_SCALARS = yaml.SafeLoader("")  # one constructor for every scalar (a new loader per value is slow)


def _construct(node: yaml.Node, path: Path_, lines: dict[Path_, int], source: str, budget: _Budget) -> Any:
    budget.spend(node, path)
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
            out[key] = _construct(value_node, path + (key,), lines, source, budget)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), lines, source, budget) for i, item in enumerate(node.value)]
    return _scalar(node, source, path)


def _scalar(node: yaml.ScalarNode, source: str, path: Path_ = ()) -> Any:
    try:
        return _SCALARS.construct_object(node, deep=True)
    except yaml.YAMLError as exc:  # an unknown tag such as !custom
        raise ConfigError(source, node.start_mark.line + 1, field_path(path) or None,
                          str(exc).splitlines()[0]) from None
    except (ValueError, OverflowError) as exc:  # a date that does not exist, e.g. 2027-02-30
        raise ConfigError(source, node.start_mark.line + 1, field_path(path) or None,
                          f'cannot read "{node.value}": {exc}') from None


def parse_yaml(text: str, source: str) -> YamlDoc:
    """Parse YAML text; syntax errors become one-line ConfigErrors."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(source, None, None, f"is more than a YAML file may be ({MAX_YAML_BYTES // 2**20} MiB)")
    try:
        node = _compose(text)
    except RecursionError:
        raise ConfigError(source, _too_deep_at(text), None, f"nested more than {MAX_DEPTH} levels deep") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise ConfigError(source, line, None, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, None, None, f"invalid YAML: {exc}") from None
    lines: dict[Path_, int] = {}
    data = None if node is None else _construct(node, (), lines, source, _Budget(source))
    return YamlDoc(data=data, source=source, lines=lines)


def load_yaml(path: str | Path, display: str | None = None) -> YamlDoc:
    """Read and parse a YAML file; unreadable files become ConfigErrors."""
    display = display or str(path)
    text = read_text_input(path, display, limit=MAX_YAML_BYTES, what="YAML file")
    return parse_yaml(text, display)
