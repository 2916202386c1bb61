"""One Tab press: read the words of the line, find what is being typed, print candidates.

The shells call ``_ENVPOOLS_COMPLETE=<shell> envpools <index> <word>...`` (``index``: the
word under the cursor). The answer is a directive line (``values``, ``files`` or
``dirs``: let the shell complete paths) and then one candidate per line, in the order
to show them (recent rollouts first): bare for bash, ``value:about`` for zsh,
``value<TAB>about`` for fish.
"""

from __future__ import annotations

import sys

from envpools_cli.completion.values import Backend, Item, local_values

TYPE_CHECKING = False  # typing and dataclasses cost more to import than a Tab press may take
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Completion", "answer", "complete"]

# bash splits words at these (COMP_WORDBREAKS) and replaces only the part after the last one.
_BASH_BREAKS = ("=", ":")
_BACKEND_KINDS = {
    "rollout",
    "pool",
    "task",
    "task_ref",
    "agent",
    "agent_model",
    "model",
    "backend",
    "template",
    "pool_type",
}


class Completion:
    __slots__ = ("directive", "items")

    def __init__(self, directive: str = "values", items: list[Item] | None = None) -> None:
        self.directive = directive
        self.items: list[Item] = items if items is not None else []


class _Line:
    """What the completed words say: the command, option values given, the current slot."""

    def __init__(self, node: dict[str, Any], root: dict[str, Any]) -> None:
        self.node = node
        self.root = root
        self.values: dict[str, str] = {}  # kind -> last value given
        self.used: set[str] = set()  # option names given
        self.positional = 0
        self.expecting: dict[str, Any] | None = None
        self.only_args = False
        self.broken = False


def answer(argv: list[str], shell: str) -> int:
    """The fast path's entry: never raises, never prints a traceback on a Tab press."""
    try:
        index = int(argv[0])
        words = argv[1:]
    except (IndexError, ValueError):
        return 0
    try:
        text = render(shell, words, index)
    except Exception:  # a broken completion must not spray errors into the prompt
        return 0
    sys.stdout.write(text)
    return 0


def render(shell: str, words: list[str], index: int) -> str:
    words = words[: index + 1] + ([""] if index >= len(words) else [])
    if shell == "bash":
        words, cut = _join_bash_breaks(words)
    else:
        cut = ""
    result = complete(words[1:-1], words[-1])
    lines = [result.directive]
    for value, about in result.items:
        if shell == "bash":
            lines.append(value[len(cut) :] if value.startswith(cut) else value)
        elif shell == "zsh":
            escaped = value.replace("\\", "\\\\").replace(":", "\\:")
            lines.append(f"{escaped}:{about}" if about else escaped)
        else:
            lines.append(f"{value}\t{about}" if about else value)
    return "\n".join(lines) + "\n"


def _join_bash_breaks(words: list[str]) -> tuple[list[str], str]:
    """``--output`` ``=`` ``js`` -> ``--output=js``, and the part bash keeps (``--output=``)."""
    joined: list[str] = []
    glue = False
    for position, word in enumerate(words):
        if position > 1 and word and all(c in _BASH_BREAKS for c in word):
            joined[-1] += word
            glue = True
        elif glue:
            joined[-1] += word
            glue = False
        else:
            joined.append(word)
    current = joined[-1]
    last = max(current.rfind(c) for c in _BASH_BREAKS)
    return joined, current[: last + 1] if last >= 0 else ""


def complete(done: list[str], current: str) -> Completion:
    """Candidates for ``current`` after the completed words ``done`` (without ``envpools``)."""
    from envpools_cli.completion.spec import load

    tree = load()["tree"]
    line = _read(done, tree)
    if line.broken:
        return Completion()
    if line.expecting is not None:
        return _values(line.expecting, line, current, "")
    if current.startswith("-") and not line.only_args:
        name, sep, value = current.partition("=")
        if sep and name.startswith("--"):
            option = _option(line, name)
            if option is None or not option["value"]:
                return Completion()
            return _values(option, line, value, f"{name}=")
        return Completion(items=_option_names(line, current))
    if "commands" in line.node:
        return Completion(
            items=[
                (name, sub["help"])
                for name, sub in line.node["commands"].items()
                if name.startswith(current)
            ]
        )
    args = line.node["args"]
    if not args:
        return Completion()
    slot = args[min(line.positional, len(args) - 1)]
    if line.positional >= len(args) and not slot["many"]:
        return Completion()
    return _values(slot, line, current, "")


def _read(done: list[str], tree: dict[str, Any]) -> _Line:
    line = _Line(node=tree, root=tree)
    for word in done:
        if line.expecting is not None:
            _given(line, line.expecting, word)
            line.expecting = None
        elif word == "--" and not line.only_args:
            line.only_args = True
        elif word.startswith("-") and word != "-" and not line.only_args:
            _read_option(line, word)
        elif "commands" in line.node:
            sub = line.node["commands"].get(word)
            if sub is None:
                line.broken = True
                return line
            line.node = sub
            line.positional = 0
        else:
            args = line.node["args"]
            if line.positional < len(args) and args[line.positional]["kind"]:
                line.values[args[line.positional]["kind"]] = word
            if line.positional < len(args) and not args[line.positional]["many"]:
                line.positional += 1
    return line


def _read_option(line: _Line, word: str) -> None:
    name, sep, value = word.partition("=") if word.startswith("--") else (word, "", "")
    option = _option(line, name)
    if option is None and not word.startswith("--") and len(word) > 2:
        option = _option(line, word[:2])  # -ojson
        value, sep = word[2:], "attached"
    if option is None:
        return
    line.used.update(option["names"])
    if not option["value"]:
        return
    if sep:
        _given(line, option, value)
    else:
        line.expecting = option


def _given(line: _Line, option: dict[str, Any], value: str) -> None:
    if option["kind"] == "profile" and line.node is line.root:
        line.values["profile_flag"] = value
    if "--api-url" in option["names"]:
        line.values["api_url_flag"] = value
    if option["kind"]:
        line.values[option["kind"]] = value


def _option(line: _Line, name: str) -> dict[str, Any] | None:
    # The root's options are global only before the first command word, as in Click.
    for option in line.node["options"]:
        if name in option["names"]:
            return dict(option)
    return None


def _option_names(line: _Line, current: str) -> list[Item]:
    # A bare "-" lists the long names (one per option); "-o" or "--o" narrows to any name.
    found: list[Item] = []
    for option in line.node["options"]:
        if set(option["names"]) & line.used and not option["multiple"]:
            continue
        names = option["names"]
        if current in ("", "-"):
            names = [n for n in names if n.startswith("--")] or names
        found += [(name, option["help"]) for name in names if name.startswith(current)]
    if current in ("", "-") or (len(current) > 1 and "--help".startswith(current)):
        found.append(("--help", "Show the help and exit."))
    return found


def _values(slot: dict[str, Any], line: _Line, typed: str, shown: str) -> Completion:
    kind = slot.get("kind")
    choices = slot.get("choices")
    if kind == "file":
        return Completion("files")
    if kind == "dir":
        return Completion("dirs")
    if choices:
        items: list[Item] = [(str(c), "") for c in choices]
    elif kind in _BACKEND_KINDS:
        items = _backend_values(str(kind), line, typed)
    elif kind:
        items = local_values(str(kind)) or []
    else:
        items = []
    return Completion(items=[(shown + v, about) for v, about in items if v.startswith(typed)])


def _backend_values(kind: str, line: _Line, typed: str) -> list[Item]:
    backend = Backend(line.values.get("profile_flag"), line.values.get("api_url_flag"))
    if kind == "rollout":
        return backend.rollouts(typed)
    if kind == "pool":
        return backend.pools(typed)
    if kind == "task":
        return backend.tasks(line.values.get("pool"), typed)
    if kind == "task_ref" and line.values.get("pool"):
        # --task TASK_ID --pool P runs P's task: offer those, not other pools' tasks.
        return backend.tasks(line.values.get("pool"), typed)
    capabilities = backend.capabilities()
    models = capabilities.get("models")
    models = models if isinstance(models, dict) else {}
    if kind == "agent":
        return _agents(capabilities)
    if kind == "model":
        agent = line.values.get("agent")
        if agent:
            return [(str(m), agent) for m in models.get(agent, [])]
        return [(m, "") for m in sorted({str(m) for ms in models.values() for m in ms})]
    if kind == "agent_model":
        if ":" in typed:
            agent = typed.split(":", 1)[0]
            return [(f"{agent}:{m}", "") for m in models.get(agent, [])]
        return _agents(capabilities)
    if kind == "task_ref":
        datasets = capabilities.get("datasets")
        return [
            (f"{dataset}/{task}", "example task")
            for dataset, tasks in (datasets.items() if isinstance(datasets, dict) else [])
            for task in tasks
        ]
    if kind == "backend":
        backends = capabilities.get("backends")
        return [
            (str(name), "" if (info or {}).get("supported", True) else "stored, not run")
            for name, info in (backends.items() if isinstance(backends, dict) else [])
        ]
    listed = capabilities.get({"template": "templates", "pool_type": "pool_types"}[kind])
    return [(str(v), "") for v in listed] if isinstance(listed, list) else []


def _agents(capabilities: dict[str, Any]) -> list[Item]:
    agents = capabilities.get("agents")
    items: list[Item] = []
    for agent in agents if isinstance(agents, list) else []:
        if isinstance(agent, dict) and agent.get("name"):
            models = agent.get("models") or []
            items.append((str(agent["name"]), ", ".join(str(m) for m in models)))
        elif isinstance(agent, str):
            items.append((agent, ""))
    return items
