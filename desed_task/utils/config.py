"""YAML experiment configs: loading, `key.sub=value` command-line overrides, key checks, saving next to the logs."""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from desed_task.utils.errors import BadInput, MissingInput, UnknownConfigKey
from desed_task.utils.files import write_text


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> dict:
    """Read a YAML config and apply `section.key=value` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"config file not found: {path}")
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict):
        raise BadInput(f"{path}: the top level of a config must be a mapping")
    return apply_overrides(config, overrides)


def apply_overrides(config: dict, overrides: Iterable[str]) -> dict:
    """Return a copy of `config` with each `a.b.c=value` override set; unknown keys are an error."""
    config = copy.deepcopy(config)
    for override in overrides:
        if "=" not in override:
            raise BadInput(f"override {override!r} must look like section.key=value")
        dotted, raw_value = override.split("=", 1)
        keys = dotted.split(".")
        node = config
        for depth, key in enumerate(keys[:-1]):
            if not isinstance(node.get(key), dict):
                raise UnknownConfigKey(f"override {override!r}: {'.'.join(keys[:depth + 1])} is not a config section")
            node = node[key]
        if keys[-1] not in node:
            raise UnknownConfigKey(f"override {override!r}: unknown key {dotted!r} (existing: {sorted(node)})")
        node[keys[-1]] = yaml.safe_load(raw_value)
    return config


def save_config(config: dict, path: str | Path) -> None:
    """Write the resolved config (after overrides), atomically, so a run can be reproduced from its log folder."""
    write_text(path, yaml.safe_dump(config, sort_keys=False))


def get_nested(config: dict, dotted: str, default: Any = None) -> Any:
    """Look up `a.b.c` in a nested dict, returning `default` when any level is missing."""
    node = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def set_nested(config: dict, dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, creating the missing sections."""
    *sections, key = dotted.split(".")
    node = config
    for section in sections:
        if not isinstance(node.get(section), dict):
            node[section] = {}
        node = node[section]
    node[key] = value


def dotted_keys(config: dict, prefix: str = "") -> dict[str, bool]:
    """Every key path of a nested dict (`a`, `a.b`, ...) -> whether its value is a section (a mapping)."""
    keys = {}
    for key, value in config.items():
        keys[prefix + str(key)] = isinstance(value, dict)
        if isinstance(value, dict):
            keys.update(dotted_keys(value, f"{prefix}{key}."))
    return keys


class ConfigSchema:
    """The valid and the required keys of a system's configs, learnt from its shipped configs.

    Valid: a key path some shipped config has (below a key that no shipped config uses as a section, any
    mapping is a value: e.g. a `data.mini` given where the shipped configs have null). Required: the key
    paths every shipped config has.
    """

    def __init__(self, shipped: Sequence[dict]):
        self.sections: dict[str, bool] = {}
        for config in shipped:
            for key, is_section in dotted_keys(config).items():
                self.sections[key] = self.sections.get(key, False) or is_section
        self.required = set.intersection(*(set(dotted_keys(c)) for c in shipped)) if shipped else set()

    def check(self, config: dict, source: str, required: bool = True) -> None:
        """An `UnknownConfigKey` naming `source` and the first unknown key (with a close known key, if
        any), or a `BadInput` listing the missing required keys."""
        self._check_known(config, "", source)
        if required:
            missing = sorted(key for key in self.required if get_nested(config, key, _MISSING) is _MISSING)
            if missing:
                raise BadInput(f"{source}: missing required key{'s' * (len(missing) > 1)} {', '.join(missing)}")

    def _check_known(self, node: dict, prefix: str, source: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if dotted not in self.sections:
                siblings = [k[len(prefix):] for k in self.sections if k.startswith(prefix) and "." not in k[len(prefix):]]
                close = difflib.get_close_matches(str(key), siblings, n=1)
                hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
                raise UnknownConfigKey(f"{source}: unknown key {dotted!r}{hint}")
            if isinstance(value, dict) and self.sections[dotted]:
                self._check_known(value, dotted + ".", source)


_MISSING = object()
