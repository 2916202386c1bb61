"""Offering a resource method elsewhere without writing its signature again.

``sdk_function`` makes a module function (``get_rollout(rollout_id, *, timeout=30.0,
backend_base=None, api_key=None, api_version=None, session=None)``) out of a resource
method (``Rollouts.get``): the method's parameters plus the connection's.
``offer`` puts a resource method on a client object that holds a ``connection``
(``client.rollouts.list``), ``on_rollout`` on a ``RolloutHandle``, with its id
(``handle.get()``). ``help()`` and ``inspect.signature`` show the
method's parameters; a preset (``auto_reconnect=True``) shows as its default.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from .http import Connection

__all__ = ["offer", "offer_as", "on_rollout", "sdk_function"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
K = TypeVar("K")

_CONNECTION = (
    ("backend_base", "str | None"),
    ("api_key", "str | None"),
    ("api_version", "str | None"),
    ("session", "HTTPSession | None"),
)


def _signature(
    method: Callable[..., Any],
    *,
    skip: int,
    preset: dict[str, Any],
    extra: list[str],
    then: Callable[..., Any] | None = None,
) -> inspect.Signature:
    signature = inspect.signature(method)
    if then is not None:
        signature = signature.replace(return_annotation=inspect.signature(then).return_annotation)
    params = [
        p.replace(default=preset[p.name]) if p.name in preset else p
        for p in list(signature.parameters.values())[skip:]
    ]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
        for name, kind in _CONNECTION
        if name in extra
    ]
    return signature.replace(parameters=params)


def sdk_function(
    name: str,
    resource: Callable[[Connection], K],
    method: Callable[Concatenate[K, P], R],
    *,
    versioned: bool = True,
    **preset: Any,
) -> Callable[..., R]:
    """``method`` as a module function taking the connection's fields as keywords.

    ``versioned=False``: the path ignores the API version (credentials, account), so the
    function takes no ``api_version``, as in the official SDK.
    """
    fields = [field for field, _ in _CONNECTION if versioned or field != "api_version"]
    signature = _signature(method, skip=1, preset=preset, extra=fields)

    def call(*args: Any, **kwargs: Any) -> R:
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}() {exc}") from None
        connection = Connection(**{field: kwargs.pop(field, None) for field in fields})
        return method(resource(connection), *args, **{**preset, **kwargs})

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    call.__module__ = "envpools_cli.client"
    call.__signature__ = signature  # type: ignore[attr-defined]
    return call


class _Offered(Generic[P, R]):
    """A descriptor: the method bound to the owner's connection (and rollout id)."""

    def __init__(
        self,
        call: Callable[..., Any],
        method: Callable[..., Any],
        skip: int,
        preset: dict[str, Any],
        then: Callable[..., Any] | None = None,
    ) -> None:
        self._call = call
        self.__doc__ = method.__doc__
        self._signature = _signature(method, skip=skip, preset=preset, extra=[], then=then)
        self._name = method.__name__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = f"{owner.__name__}.{name}"

    def __repr__(self) -> str:
        return f"<method {self._name}{self._signature}>"

    @overload
    def __get__(self, owner: None, kind: type[Any]) -> _Offered[P, R]: ...

    @overload
    def __get__(self, owner: object, kind: type[Any]) -> Callable[P, R]: ...

    def __get__(self, owner: object | None, kind: type[Any]) -> Callable[P, R] | _Offered[P, R]:
        if owner is None:
            return self
        bound = functools.partial(self._call, owner)
        bound.__signature__ = self._signature  # type: ignore[attr-defined]
        bound.__doc__ = self.__doc__
        return cast(Callable[P, R], bound)


def offer(
    resource: Callable[[Connection], K], method: Callable[Concatenate[K, P], R], **preset: Any
) -> _Offered[P, R]:
    """``method`` on an object with a ``connection`` (``client.rollouts.list``)."""

    def call(owner: Any, *args: Any, **kwargs: Any) -> Any:
        return method(resource(owner.connection), *args, **{**preset, **kwargs})

    return _Offered(call, method, 1, preset)


def on_rollout(
    resource: Callable[[Connection], K],
    method: Callable[Concatenate[K, str, P], R],
    **preset: Any,
) -> _Offered[P, R]:
    """``method`` on a ``RolloutHandle``, with its ``connection`` and ``rollout_id``."""

    def call(owner: Any, *args: Any, **kwargs: Any) -> Any:
        return method(resource(owner.connection), owner.rollout_id, *args, **{**preset, **kwargs})

    return _Offered(call, method, 2, preset)


def offer_as(
    resource: Callable[[Connection], K],
    method: Callable[Concatenate[K, P], R],
    then: Callable[[R], T],
) -> _Offered[P, T]:
    """``offer`` with the result passed through ``then`` (dicts to response models)."""

    def call(owner: Any, *args: Any, **kwargs: Any) -> T:
        return then(method(resource(owner.connection), *args, **kwargs))

    return _Offered(call, method, 1, {}, then)
