"""The UI library, IDOM 1.0 or ReactPy 1.1: the one place that knows which.

Both libraries have the same structure (``component``, ``html``, hooks, contexts,
``Layout``, ``serve_layout``, ``ConnectionContext``, a client of static files) but
separate internals: a component must be made by, and its hooks called through, the
library whose ``Layout`` renders it. authdemo's components and hooks are written once,
against the names below; each name forwards to the library of the connection being
served. The bridge selects it (``use_library``) for each websocket from the app's
``Settings.ui``, before the root is built, so everything rendered, every event handler
and every effect of that connection runs under it (asyncio tasks inherit it).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import update_wrapper
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar, overload

from idom.types import Component

from ..config import UI_NAMES, UiName

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class UiLibrary:
    """What authdemo uses of a UI library (the modules' own objects)."""

    name: UiName
    component: Callable[[Callable[..., Any]], Callable[..., Any]]
    html: Any
    event: Callable[..., Any]
    use_state: Callable[[Any], Any]
    use_effect: Callable[..., Any]
    use_context: Callable[[Any], Any]
    create_context: Callable[[Any], Any]
    current_hook: Callable[[], Any]
    """The hook of the component rendering now (``provide`` registers a context on it)."""
    ConnectionContext: Any
    Connection: Callable[..., Any]
    Location: Callable[..., Any]
    Layout: Callable[[Any], Any]
    serve_layout: Callable[..., Any]
    component_type: type
    client_dir: Path
    """``index.html`` and ``assets/`` of the library's JavaScript client."""
    url_prefix: str
    """Where the client looks for its files and websocket: ``/_idom`` or ``/_reactpy``."""
    renders_across_awaits: bool = False
    """ReactPy 1.1 keeps its stack of rendering components per *thread*, yet awaits in
    the middle of a render (its render is a coroutine): two connections rendering at
    once in one event loop push onto and pop off the same stack, and it breaks
    ("Hook stack is in an invalid state"), taking the connection with it. IDOM 1.0
    renders without awaiting. Where this is True, ``Layout`` lets one render run at a
    time per process (see ``_one_render_at_a_time``)."""


_RENDERING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
"""One lock per event loop, i.e. per thread: the scope of ReactPy's hook stack."""


def _rendering() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _RENDERING.get(loop)
    if lock is None:
        lock = _RENDERING[loop] = asyncio.Lock()
    return lock


def _one_render_at_a_time(layout_class: type) -> type:
    """``layout_class`` whose renders wait for any other such layout's render to finish.

    Renders are CPU work on the one event loop anyway; only their rare awaits (an
    unmounting component's effects finishing) are no longer overlapped. The lock is
    taken around ReactPy 1.1's ``_create_layout_update`` (one render of one component
    and what it changed), not around ``render``, which also waits for the next change.
    """

    class OneRenderAtATime(layout_class):  # type: ignore[misc]
        __slots__ = ()

        async def _create_layout_update(self, old_state: Any) -> Any:
            async with _rendering():
                return await super()._create_layout_update(old_state)

    return OneRenderAtATime


def _load(name: UiName) -> UiLibrary:
    # idom 1.0 and reactpy 1.1 lay these out identically but for the connection
    # context's module and the client's folder. What else differs is ReactPy's render
    # (above) and its form events (``_reactpy_form`` below).
    lib = importlib.import_module(name)
    core = f"{name}.core"
    hooks_module = "idom.backend.hooks" if name == "idom" else "reactpy.core.hooks"
    types = importlib.import_module(f"{name}.backend.types")
    renders_across_awaits = name == "reactpy"
    layout = importlib.import_module(f"{core}.layout").Layout
    if renders_across_awaits:
        layout = _one_render_at_a_time(layout)
    return UiLibrary(
        name=name,
        component=lib.component,
        html=lib.html,
        event=lib.event,
        use_state=lib.use_state,
        use_effect=lib.use_effect,
        use_context=lib.use_context,
        create_context=lib.create_context,
        current_hook=importlib.import_module(f"{core}.hooks").current_hook,
        ConnectionContext=importlib.import_module(hooks_module).ConnectionContext,
        Connection=types.Connection,
        Location=types.Location,
        Layout=layout,
        serve_layout=importlib.import_module(f"{core}.serve").serve_layout,
        component_type=importlib.import_module(f"{core}.component").Component,
        client_dir=Path(str(lib.__file__)).parent / ("_client" if name == "idom" else "_static"),
        url_prefix=f"/_{name}",
        renders_across_awaits=renders_across_awaits,
    )


_LOADED: dict[UiName, UiLibrary] = {}


def library(name: UiName = "idom") -> UiLibrary:
    """The library called ``name``, imported on first use."""
    found = _LOADED.get(name)
    if found is None:
        if name not in UI_NAMES:
            raise ValueError(f"unknown UI library {name!r} (known: {', '.join(UI_NAMES)})")
        try:
            found = _LOADED[name] = _load(name)
        except ImportError as missing:
            raise ImportError(
                f"authdemo on {name} needs it installed: pip install 'authdemo[{name}]'"
            ) from missing
    return found


def check_root(root: Any, lib: UiLibrary) -> None:
    """Refuse, with a hint, a root component made by the other library: it would fail
    on its first hook call with an error that names neither (or render a blank page).
    The other library need not be one authdemo loaded: a component made by it means
    its module is imported, so it is looked up there."""
    for name in UI_NAMES:
        module = sys.modules.get(f"{name}.core.component")
        if name == lib.name or module is None:
            continue
        if isinstance(root, module.Component):
            raise TypeError(
                f"this app renders with {lib.name}, but its root component {root!r} was "
                f"made by {name}'s @component: import create_app from authdemo.{name} "
                f"(the demo: `authdemo run --ui {name}`)"
            )


_CURRENT: ContextVar[UiLibrary] = ContextVar("authdemo_ui")


def current() -> UiLibrary:
    """The library of the connection being served; IDOM outside any (the default)."""
    return _CURRENT.get(None) or library("idom")


def set_library(lib: UiLibrary) -> None:
    """Make ``lib`` the library of the current task and of the tasks it starts from now
    on, for a server of one's own (a request middleware; the benchmark's references)."""
    _CURRENT.set(lib)


@contextmanager
def use_library(lib: UiLibrary) -> Iterator[None]:
    """Run the block, and every task it starts, with ``lib`` as the library."""
    token = _CURRENT.set(lib)
    try:
        yield
    finally:
        _CURRENT.reset(token)


# --- what components and hooks use ------------------------------------------------------------


class _Html:
    """``html.div(...)`` etc. of the current library."""

    def __getattr__(self, tag: str) -> Callable[..., Any]:
        lib = current()
        if tag == "form" and lib.name == "reactpy":
            return _reactpy_form
        return getattr(lib.html, tag)  # type: ignore[no-any-return]


# The form controls a form's ``elements`` lists, in document order (``<input
# type="image">`` is not one of them).
_CONTROLS = {"button", "fieldset", "input", "object", "output", "select", "textarea"}


def _control_names(children: Sequence[Any]) -> list[str | None] | None:
    """The ``name`` of each form control among ``children``, in document order; None when
    part of the form is a component (rendered later, so its controls are unknown)."""
    names: list[str | None] = []

    def walk(node: Any) -> bool:
        if isinstance(node, list | tuple):
            return all(walk(child) for child in node)
        if isinstance(node, str) or node is None:
            return True
        if not isinstance(node, dict):
            return False  # a component
        attributes = node.get("attributes", {})
        tag = node.get("tagName")
        if tag in _CONTROLS and not (tag == "input" and attributes.get("type") == "image"):
            name = attributes.get("name")
            names.append(name if isinstance(name, str) else None)
        return walk(node.get("children", []))

    return names if walk(list(children)) else None


def _reactpy_form(*arguments: Any) -> Any:
    """ReactPy's ``html.form``, with submit events in IDOM's shape.

    IDOM 1.0's client sends each of a submitted form's ``elements`` with its ``name``;
    ReactPy 1.1's sends only ``tagName`` and ``value``, in document order. The names are
    known here, where the form is built, so they are put back on the way in: handlers
    read ``data["target"]["elements"]`` the same way on both libraries."""
    lib = library("reactpy")
    attributes = arguments[0] if arguments and isinstance(arguments[0], dict) else None
    children = arguments[1:] if attributes is not None else arguments
    handler = attributes.get("on_submit") if attributes is not None else None
    names = _control_names(children) if handler is not None else None
    if attributes is None or handler is None or names is None:
        return lib.html.form(*arguments)
    if not hasattr(handler, "function"):  # a plain function: made an EventHandler first
        handler = lib.event(handler)

    async def with_names(data: Sequence[Any]) -> None:
        await handler.function([_named_elements(item, names) for item in data])

    named = type(handler)(
        with_names,
        stop_propagation=handler.stop_propagation,
        prevent_default=handler.prevent_default,
        target=handler.target,
    )
    return lib.html.form({**attributes, "on_submit": named}, *children)


def _named_elements(event: Any, names: list[str | None]) -> Any:
    target = event.get("target") if isinstance(event, dict) else None
    if not isinstance(target, dict):
        return event
    elements = target.get("elements")
    if not isinstance(elements, list) or len(elements) != len(names):
        return event  # not the form we built: leave it as it came
    named = [
        {**element, "name": name} if isinstance(element, dict) and name is not None else element
        for element, name in zip(elements, names, strict=True)
    ]
    return {**event, "target": {**target, "elements": named}}


html = _Html()


class SharedComponent(Generic[P]):
    """A component written once: called, it is a component of the current library."""

    def __init__(self, function: Callable[P, Any]) -> None:
        self.function = function
        self._made: dict[UiName, Callable[..., Any]] = {}
        update_wrapper(self, function)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Component:
        lib = current()
        made = self._made.get(lib.name)
        if made is None:
            made = self._made[lib.name] = lib.component(self.function)
        return made(*args, **kwargs)  # type: ignore[no-any-return]


def component(function: Callable[P, Any]) -> Callable[P, Component]:
    return SharedComponent(function)


def event(
    function: Callable[..., Any], *, prevent_default: bool = False, stop_propagation: bool = False
) -> Any:
    return current().event(
        function, prevent_default=prevent_default, stop_propagation=stop_propagation
    )


def use_state(initial: T) -> tuple[T, Callable[[T | Callable[[T], T]], None]]:
    value, setter = current().use_state(initial)
    return value, setter


Effect = Callable[[], Any]
"""Sync (may return a clean-up function) or async."""


@overload
def use_effect(
    function: None = None, *, dependencies: Sequence[Any] | None
) -> Callable[[Effect], None]: ...


@overload
def use_effect(function: Effect, *, dependencies: Sequence[Any] | None) -> None: ...


def use_effect(function: Effect | None = None, *, dependencies: Sequence[Any] | None) -> Any:
    """As the libraries' ``use_effect`` (dependencies required: no inference here)."""
    if function is None:
        return current().use_effect(dependencies=dependencies)
    return current().use_effect(function, dependencies=dependencies)


@dataclass(eq=False)
class SharedContext(Generic[T]):
    """A context written once: one context per library, made on first use."""

    default: T
    _made: dict[UiName, Any] = field(default_factory=dict)

    def of(self, lib: UiLibrary) -> Any:
        made = self._made.get(lib.name)
        if made is None:
            made = self._made[lib.name] = lib.create_context(self.default)
        return made

    def __call__(self, *children: Any, value: T) -> Any:
        return self.of(current())(*children, value=value)


class _ConnectionContext(SharedContext[Any]):
    """The library's own ``ConnectionContext``, which its ``use_connection`` reads."""

    def of(self, lib: UiLibrary) -> Any:
        return lib.ConnectionContext


def create_context(default: T) -> SharedContext[T]:
    return SharedContext(default)


ConnectionContext: SharedContext[Any] = _ConnectionContext(None)


class _Provision:
    """A context's value as both libraries' ``use_context`` read it off a provider:
    ``.type`` the context, the value as ``.value`` (ReactPy) and ``._value`` (IDOM)."""

    __slots__ = ("_value", "type", "value")

    def __init__(self, context: Any, value: Any) -> None:
        self.type = context
        self.value = self._value = value


def provide(context: SharedContext[T], value: T) -> None:
    """Inside a component's render: ``value`` is ``context``'s for every component below
    it, as if the component had returned ``context(children, value=value)``.

    It is the one call both libraries' context provider components make when they
    render (``current_hook().set_context_provider(self)``), made by the rendering
    component itself: no provider component in between, which a connection would hold
    in memory (its hook, its model and a fragment) for as long as its websocket is open.
    Components below read it with ``use_context`` and re-render with the component, as
    they do below a provider component."""
    lib = current()
    lib.current_hook().set_context_provider(_Provision(context.of(lib), value))


def render_again() -> Callable[[], None]:
    """Inside a component's render: a function that renders the component again (its
    hook's ``schedule_render``, what a state setter calls), for a component whose state
    lives in an object of its own rather than in a state hook."""
    schedule: Callable[[], None] = current().current_hook().schedule_render
    return schedule


def use_context(context: SharedContext[T]) -> T:
    lib = current()
    return lib.use_context(context.of(lib))  # type: ignore[no-any-return]


def use_path() -> str:
    """The path the page was opened at (``"/admin"``), as the UI library's
    ``use_location().pathname``; ``"/"`` outside a connection."""
    lib = current()
    connection = lib.use_context(lib.ConnectionContext)
    location = getattr(connection, "location", None)
    return str(getattr(location, "pathname", "/") or "/")
