"""Configuration files: YAML read into plain values, `key=value` overrides applied to them, and
YAML written back under a header comment.

    raw = read_yaml("run.yaml", "config")
    raw = apply_overrides(raw, ["optim.lr=1e-4", "dropout=hiddenkey"], "run.yaml")
    write_yaml("best_config.yaml", config, header="The best configuration of ...")

Dotted keys address sections (`optim.lr`); dropout keys are flat under `dropout`
(`dropout.attn_logits.rate`), as a `DropoutSpec` takes them.
"""

from __future__ import annotations

import copy
import numbers
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hk_tune import storage
from hk_tune.errors import ConfigError

# A config or search space is a few KB. What a file may cost to read is bounded before it is
# parsed (its size), while it is parsed (nesting depth, aliases) and after (its size with every
# alias expanded, which is what printing a value in an error message walks).
MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_ALIASES = 1_000
MAX_EXPANDED = 100_000


def read_yaml(path: str | Path, what: str) -> Any:
    """The YAML document in `path` ({} for an empty file), read within the limits above.

    Raises:
        ConfigError: one line naming the file: not a regular file (a FIFO or a device would
            block or never end), too large, unreadable, not YAML (with the line and column
            where the parser stopped), nested too deep, or too large once aliases expand.
    """
    import yaml

    where = str(path)
    text = _read_bounded(Path(path), where, what)
    try:
        raw = yaml.load(text, Loader=_bounded_loader())  # a SafeLoader: plain data only
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())[:300]
        raise ConfigError(f"{where}: not valid YAML{at}: {problem}; allowed: a YAML mapping of "
                          "keys") from None
    if _expanded_size(raw) > MAX_EXPANDED:
        raise ConfigError(f"{where}: the {what} holds more than {MAX_EXPANDED:,} values once "
                          "its aliases (*name) are expanded; allowed: a plain config, with few "
                          "or no aliases")
    return {} if raw is None else raw


def _read_bounded(path: Path, where: str, what: str) -> str:
    import stat

    try:
        mode = path.stat().st_mode  # before opening: opening a FIFO blocks until a writer comes
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{where}: cannot read the {what}: not a regular file; allowed: a "
                              "YAML file")
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ConfigError(f"{where}: the {what} is over {MAX_BYTES:,} bytes; allowed: a "
                              "YAML file of at most that size")
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ConfigError(f"{where}: cannot read the {what}: {reason}") from None


# A float as YAML 1.2 (and JSON, and Python) writes one: `5e-2`, `1E3`, `.5`. YAML 1.1, which
# PyYAML follows, needs a dot and a signed exponent, so it reads `5e-2` as text, and a rate
# written so would be refused as a string while `1.0e-2` passes.
_FLOAT = re.compile(r"""^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$
                        |^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$""", re.X)


def _bounded_loader():
    """A SafeLoader that stops at MAX_DEPTH levels of nesting and MAX_ALIASES aliases, refuses
    a key given twice in one mapping (the later would silently win), and reads numbers as YAML
    1.2 does."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        depth = 0
        aliases = 0

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` may override keys: that is what merging means
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, typing.Hashable):
                    continue  # the mapping's own construction says so
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"{key!r} is given twice in one mapping",
                        key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases")
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise yaml.YAMLError(f"nested more than {MAX_DEPTH} levels deep")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    # Ints keep their resolver, registered first: only what is not an int becomes a float.
    BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    return BoundedLoader


def _expanded_size(value: Any) -> int:
    """How many values `value` holds with shared (aliased) containers counted each time they
    occur; stops counting past MAX_EXPANDED. A container that holds itself (`&a [*a]`) never
    ends when expanded: it counts as past the limit."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(item: Any) -> int:
        if not isinstance(item, (dict, list)):
            return 1
        if id(item) in open_:
            return MAX_EXPANDED + 1
        if id(item) not in sizes:
            open_.add(id(item))
            children = item.items() if isinstance(item, dict) else enumerate(item)
            total = 1
            for _, child in children:
                total += size(child) + (1 if isinstance(item, dict) else 0)
                if total > MAX_EXPANDED:
                    break
            open_.discard(id(item))
            sizes[id(item)] = total
        return sizes[id(item)]

    return size(value)


def write_yaml(path: str | Path, data: Any, header: str = "") -> None:
    """Writes `data` as YAML to `path` (a local path or an object-store URI), under `header` as
    comment lines."""
    import yaml

    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    storage.write_text(path, comment + yaml.safe_dump(plain(data), sort_keys=False,
                                                      allow_unicode=True))


def parse_override(override: str, where: str) -> tuple[str, Any]:
    """`key=value` -> (key, value parsed as YAML, so `optim.lr=1e-4` is a number; text that is
    not YAML stays text)."""
    import yaml

    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"{where}: override {override!r} is not key=value")
    try:
        value = yaml.load(text, Loader=_bounded_loader())
    except yaml.constructor.ConstructorError as error:  # YAML, but a key given twice
        raise ConfigError(f"{where}: override {key!r}: {error.problem}; allowed: each key "
                          "once") from None
    except yaml.YAMLError:
        return key, text
    if _expanded_size(value) > MAX_EXPANDED:
        raise ConfigError(f"{where}: override {key!r} holds more than {MAX_EXPANDED:,} values "
                          "once its aliases are expanded; allowed: a plain value")
    return key, value


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], where: str) -> dict:
    """Returns a copy of `raw` with each `section.key=value` applied."""
    raw = copy.deepcopy(raw)
    for override in overrides:
        set_key(raw, *parse_override(override, where), where)
    return raw


def set_key(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Sets the dotted `key` (`optim.lr`, `dropout.attn_logits.rate`) in the nested config dict
    `raw`, in place. A string section is its short form (`model: minilm`, `dropout: hiddenkey`);
    dropout keys stay flat under `dropout`."""
    head, _, rest = key.partition(".")
    if not rest:
        raw[head] = value
        return
    section = raw.get(head)
    if head == "model" and isinstance(section, str):
        section = {"name": section}
    if head == "dropout" and isinstance(section, str):
        section = {"preset": section}
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: {head}: is {section!r}, not a section; cannot set {key}")
    section = flatten(section) if head == "dropout" else dict(section)
    section[rest] = value
    raw[head] = section


def flatten(section: dict, prefix: str = "") -> dict:
    """Nested mappings as one level of dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def plain(value: Any) -> Any:
    """`value` with numpy scalars, tuples and other oddities turned into YAML-safe builtins."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)
