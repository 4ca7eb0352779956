"""The plugin host: loads the enabled plugins by entry point and calls hooks in config order."""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .config import Config, ConfigError
from .errors import GatewayError, PluginFailed

log = logging.getLogger("llm_router.plugins")

ENTRY_POINT_GROUP = "llm_router"
hookimpl = pluggy.HookimplMarker("llm_router")


class PluginHost:
    """The enabled plugins, in call order, and the one way the core calls their hooks."""

    def __init__(self, config: Config, extra: list[tuple[str, object]] = ()) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.failures: Counter[str] = Counter()
        self._impls: dict[str, list[pluggy.HookImpl]] = {}
        self._is_async: dict[Any, bool] = {}
        installed = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        for name in config.plugins.enabled:
            if name not in installed:
                known = ", ".join(sorted(installed)) or "none"
                raise ConfigError([f"plugins.enabled: no plugin named {name!r} is installed (installed: {known})"])
            self.register(installed[name].load(), name)
        for name, plugin in extra:
            self.register(plugin, name)
        self._check_security_first()
        for name in sorted(set(config.plugins.settings) - set(self.names)):
            # Not an error: switching a plugin off should not mean deleting its settings.
            log.warning("plugins.%s: settings for a plugin that is not enabled (a typo?)", name)

    def _check_security_first(self) -> None:
        """Fail-closed plugins (redaction) must rewrite the request before any other plugin reads it.

        An optimisation plugin that ran first could send unmasked text to a scorer or a
        planner, so a config that orders them so is refused rather than served.
        """
        seen_open: str | None = None
        for impl in self.impls("pre_request"):
            if not getattr(impl.plugin, "FAIL_CLOSED", False):
                seen_open = seen_open or impl.plugin_name
            elif seen_open:
                raise ConfigError(
                    [
                        f"plugins.enabled: {impl.plugin_name!r} must come before {seen_open!r}: "
                        "security plugins rewrite the request before any other plugin sees it"
                    ]
                )

    def register(self, plugin: object, name: str) -> None:
        if self.pm.has_plugin(name):
            raise ConfigError([f"plugins.enabled: {name!r} is listed twice"])
        self.pm.register(plugin, name=name)
        self._impls.clear()

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._impls.clear()

    @property
    def names(self) -> list[str]:
        """Plugin names in call order."""
        return [name for name, _ in self.pm.list_name_plugin()]

    def impls(self, hook: str) -> list[pluggy.HookImpl]:
        """A hook's implementations in call order (registration order = plugins.toml order)."""
        impls = self._impls.get(hook)
        if impls is None:
            order = {name: i for i, name in enumerate(self.names)}
            # tryfirst / trylast (a built-in default marks itself trylast so that an
            # installed plugin can take over), then the order of [plugins].enabled.
            impls = sorted(
                getattr(self.pm.hook, hook).get_hookimpls(),
                key=lambda i: (-1 if i.tryfirst else 1 if i.trylast else 0, order[i.plugin_name]),
            )
            for impl in impls:
                self._is_async[impl.function] = inspect.iscoroutinefunction(impl.function)
            self._impls[hook] = impls
        return impls

    def implements(self, hook: str) -> bool:
        return bool(self.impls(hook))

    def _failed(self, impl: pluggy.HookImpl, exc: Exception) -> None:
        """A plugin raised something other than a GatewayError: refuse (fail closed) or skip it."""
        name = impl.plugin_name
        self.failures[name] += 1
        if getattr(impl.plugin, "FAIL_CLOSED", False):
            log.error(
                "plugin %s failed in %s (%s); refusing the request", name, impl.function.__name__, type(exc).__name__
            )
            raise PluginFailed(
                f"The '{name}' plugin failed, so the request was refused rather than sent unprotected."
            ) from exc
        # The traceback only at debug level: an exception's message may quote request text.
        log.warning(
            "plugin %s failed in %s (%s); skipped",
            name,
            impl.function.__name__,
            type(exc).__name__,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )

    def _run_sync(self, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        try:
            return impl.function(*[kwargs[a] for a in impl.argnames])
        except GatewayError:
            raise
        except Exception as exc:
            self._failed(impl, exc)
            return None

    async def _run_async(self, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        try:
            return await impl.function(*[kwargs[a] for a in impl.argnames])
        except GatewayError:
            raise
        except Exception as exc:
            self._failed(impl, exc)
            return None

    async def run(self, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        """Call one implementation with the arguments it names, awaiting it if it is async."""
        if self._is_async[impl.function]:
            return await self._run_async(impl, kwargs)
        return self._run_sync(impl, kwargs)

    async def call(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call every implementation in order; returns their non-None results."""
        results = []
        for impl in self.impls(hook):
            # Inlined run(): sync implementations (most) then cost no coroutine.
            if self._is_async[impl.function]:
                result = await self._run_async(impl, kwargs)
            else:
                result = self._run_sync(impl, kwargs)
            if result is not None:
                results.append(result)
        return results

    async def first(self, hook: str, **kwargs: Any) -> Any:
        """Call implementations in order until one returns non-None (``firstresult``)."""
        for impl in self.impls(hook):
            if self._is_async[impl.function]:
                result = await self._run_async(impl, kwargs)
            else:
                result = self._run_sync(impl, kwargs)
            if result is not None:
                return result
        return None

    async def chain(self, hook: str, kwargs: dict[str, Any], on_result: Callable[[Any], None]) -> None:
        """Call implementations in order, handing each non-None result to ``on_result`` before the next runs."""
        for impl in self.impls(hook):
            if self._is_async[impl.function]:
                result = await self._run_async(impl, kwargs)
            else:
                result = self._run_sync(impl, kwargs)
            if result is not None:
                on_result(result)

    async def notify(self, hook: str, **kwargs: Any) -> None:
        """Call every implementation of an after-the-fact hook; a failure is logged (type only), never raised."""
        for impl in self.impls(hook):
            try:
                result = impl.function(*[kwargs[a] for a in impl.argnames])
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self.failures[impl.plugin_name] += 1
                log.warning("plugin %s failed in %s (%s); ignored", impl.plugin_name, hook, type(exc).__name__)

    def call_startup(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a synchronous startup hook; returns ``(plugin name, result)`` pairs. Errors propagate."""
        return [(impl.plugin_name, impl.function(*[kwargs[a] for a in impl.argnames])) for impl in self.impls(hook)]

    def describe(self) -> list[tuple[str, list[str]]]:
        """``[(plugin name, [hooks it implements])]`` for ``llm-router check``."""
        out = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or ())
            out.append((name, hooks))
        return out
