"""A task call as a job payload: ``task:`` then JSON naming the task and its arguments.

    task:{"task":"myapp.tasks.send_welcome","args":[42],"kwargs":{"locale":"de"}}

Arguments are bound against the function's signature and checked against its simple
annotations (int, str, float, bool, None, list[...], dict[str, ...], unions, Literal,
Any) when they are enqueued, so a wrong name, a missing argument, a value of the wrong
type or one JSON cannot carry is an ``InvalidArgument`` in the caller — never a failure
later in a consumer. What the task receives is what JSON gives back: tuples arrive as
lists. Any payload that does not start with ``task:{`` is not a task (the design's job
files keep their plain paths).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pqcore.exceptions import InvalidArgument
from pqcore.validation import check_json_value

PREFIX = "task:"


@dataclasses.dataclass(frozen=True)
class TaskCall:
    """A decoded task payload."""

    task: str
    args: list[Any]
    kwargs: dict[str, Any]

    def describe(self, width: int = 200) -> str:
        """``send_welcome(42, locale="de")``: the task's short name and its arguments."""
        short = self.task.rsplit(".", 1)[-1]
        parts = [_value(a) for a in self.args]
        parts += [f"{k}={_value(v)}" for k, v in self.kwargs.items()]
        text = f"{short}({', '.join(parts)})"
        return text if len(text) <= width else text[: width - 4] + "...)"


def is_task_payload(data: str) -> bool:
    return data.startswith(PREFIX + "{")


def encode(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The payload text (arguments already checked by ``bind``)."""
    body: dict[str, Any] = {"task": name}
    if args:
        body["args"] = list(args)
    if kwargs:
        body["kwargs"] = dict(kwargs)
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return PREFIX + text


def decode(data: str) -> TaskCall | None:
    """The call a payload holds; None when it is not a task payload at all. A payload
    that starts like one and is not a valid one raises ``InvalidArgument``."""
    if not is_task_payload(data):
        return None
    try:
        body = json.loads(data[len(PREFIX) :])
    except ValueError as error:
        raise InvalidArgument(f"task payload is not valid JSON: {error}") from None
    if not isinstance(body, dict) or not isinstance(body.get("task"), str):
        raise InvalidArgument("task payload does not name its task")
    args, kwargs = body.get("args", []), body.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise InvalidArgument("task payload's args must be a list and its kwargs an object")
    return TaskCall(body["task"], args, kwargs)


def describe(data: str, width: int = 200) -> str:
    """A payload as people read it: a task call, or the payload itself."""
    try:
        call = decode(data)
    except InvalidArgument:
        call = None
    return data if call is None else call.describe(width)


def bind(
    fn: Callable[..., Any], name: str, args: Sequence[Any], kwargs: Mapping[str, Any], *,
    skip_first: bool = False,
) -> None:  # fmt: skip
    """Check a call of ``fn`` (``skip_first``: its first parameter is the task context,
    passed by the runner): names, arity, annotated types, JSON values."""
    signature = inspect.signature(fn)
    if skip_first:
        parameters = list(signature.parameters.values())[1:]
        signature = signature.replace(parameters=parameters)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise InvalidArgument(f"{name}: {error}") from None
    hints = _hints(fn)
    for parameter, value in bound.arguments.items():
        what = f"argument {parameter!r} of {name}"
        check_json_value(value, what)
        kind = signature.parameters[parameter].kind
        hint = hints.get(parameter)
        if hint is None:
            continue
        values = value if kind is inspect.Parameter.VAR_POSITIONAL else None
        if kind is inspect.Parameter.VAR_KEYWORD:
            values = list(value.values())
        for item in values if values is not None else [value]:
            if not _matches(item, hint):
                raise InvalidArgument(
                    f"{what} must be {_name(hint)}, not {type(item).__name__} ({item!r:.60})"
                )


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve here: no type checks
        return {}


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a simple annotation; anything not understood fits."""
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(value, option) for option in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint in (list, tuple) or origin in (list, tuple, Sequence):
        if not isinstance(value, list | tuple):
            return False
        item = typing.get_args(hint)
        if origin is tuple and item and item[-1] is not Ellipsis:
            return len(item) == len(value) and all(map(_matches, value, item))
        return not item or all(_matches(v, item[0]) for v in value)
    if hint is dict or origin in (dict, Mapping):
        if not isinstance(value, dict):
            return False
        item = typing.get_args(hint)
        return len(item) != 2 or all(_matches(v, item[1]) for v in value.values())
    return True


def _name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
