"""YAML experiment configs: loading, `key.sub=value` command-line overrides, saving next to the logs."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

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
