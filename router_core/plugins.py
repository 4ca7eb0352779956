"""The plugin host: loads the enabled plugins, checks what they declare, and calls their hooks in config order."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .config import PLUGIN_TABLES, Config, ConfigError, converter, validation_errors
from .context import GatewayField
from .errors import GatewayError, PluginFailed

log = logging.getLogger("llm_router.plugins")

ENTRY_POINT_GROUP = "llm_router"
hookimpl = pluggy.HookimplMarker("llm_router")


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(f"expected a list of names, got the string {value!r}")
    return tuple(value)


@attrs.frozen
class Manifest:
    """What a plugin declares about itself: set ``MANIFEST = Manifest(...)`` in its module.

    The host checks it when the app is built (``serve`` and ``llm-router check`` alike):
    a requirement nothing enabled provides, or a wrong order, is a startup error that
    names the plugin to enable or the order to use.

    - ``provides_scores``: score names its ``score_request`` can give.
    - ``requires_scores``: score names it asks for with ``await ctx.scores(...)``.
    - ``requires_plugins``: plugins that must be enabled with it.
    - ``requires_gateway_fields``: ``gateway`` fields of other plugins it reads.
    - ``requires_provider_kinds``: provider kinds it sends to.
    - ``after`` / ``before``: plugins that, when enabled, must be listed before / after
      it in ``[plugins].enabled`` (the call order).
    - ``settings``: an attrs class for its ``[plugins.<name>]`` table, structured strictly
      by the core (unknown keys and wrong types are errors with key paths); the plugin
      receives the instance as ``router_startup``'s ``settings`` argument. ``None``: the
      plugin takes no table.

    Provider kinds (``register_providers``) and ``gateway`` fields (``gateway_fields``)
    a plugin registers count as provided without being listed here.
    """

    provides_scores: tuple[str, ...] = attrs.field(default=(), converter=_names)
    requires_scores: tuple[str, ...] = attrs.field(default=(), converter=_names)
    requires_plugins: tuple[str, ...] = attrs.field(default=(), converter=_names)
    requires_gateway_fields: tuple[str, ...] = attrs.field(default=(), converter=_names)
    requires_provider_kinds: tuple[str, ...] = attrs.field(default=(), converter=_names)
    after: tuple[str, ...] = attrs.field(default=(), converter=_names)
    before: tuple[str, ...] = attrs.field(default=(), converter=_names)
    settings: type | None = attrs.field(default=None)

    @settings.validator
    def _attrs_class(self, attribute: attrs.Attribute, value: type | None) -> None:
        if value is not None and not (isinstance(value, type) and attrs.has(value)):
            raise TypeError(f"Manifest.settings must be an attrs class, got {value!r}")


NO_MANIFEST = Manifest()


def manifest_of(name: str, plugin: object) -> Manifest:
    manifest = getattr(plugin, "MANIFEST", NO_MANIFEST)
    if not isinstance(manifest, Manifest):
        raise ConfigError([f"plugin {name!r}: MANIFEST must be a router_core.Manifest, got {type(manifest).__name__}"])
    return manifest


def resolve_now(result: Any) -> Any:
    """A declaration hook's result; an ``async def`` one is run to completion on a loop of its own.

    Declarations run while the app is built, which may be inside a running event loop
    (tests) or before any exists (``serve``, ``check``): a thread with its own loop
    serves both.
    """
    if not inspect.isawaitable(result):
        return result

    async def wait() -> Any:
        return await result

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, wait()).result()


class PluginHost:
    """The enabled plugins, in call order, what they declare, and the one way the core calls their hooks."""

    def __init__(self, config: Config, extra: Iterable[tuple[str, object]] = ()) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.failures: Counter[str] = Counter()
        self._impls: dict[str, list[pluggy.HookImpl]] = {}
        self._is_async: dict[Any, bool] = {}
        self.installed: dict[str, EntryPoint] = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        for name in config.plugins.enabled:
            if name not in self.installed:
                known = ", ".join(sorted(self.installed)) or "none"
                raise ConfigError([f"plugins.enabled: no plugin named {name!r} is installed (installed: {known})"])
            self.register(self.installed[name].load(), name)
        for name, plugin in extra:
            self.register(plugin, name)
        self._check_hooks()
        self._firstresult = {
            name: caller.spec.opts.get("firstresult", False)
            for name, caller in self.pm.hook.__dict__.items()
            if caller.spec is not None
        }
        self.manifests = {name: manifest_of(name, plugin) for name, plugin in self.pm.list_name_plugin()}
        self.settings = self._structure_settings(config)
        self._check_security_first()
        self._check_order()
        self._check_tables(config)
        self.provider_kinds = self._collect_provider_kinds()
        self.gateway_fields = self._collect_gateway_fields()
        self._check_requirements(config)
        # score name → the plugins that give it, in call order
        self.score_sources: dict[str, list[str]] = {}
        for impl in self.impls("score_request"):
            for score in self.manifests[impl.plugin_name].provides_scores:
                self.score_sources.setdefault(score, []).append(impl.plugin_name)

    # ---------------------------------------------------------------- registration and checks

    def register(self, plugin: object, name: str) -> None:
        if self.pm.has_plugin(name):
            raise ConfigError([f"plugins.enabled: {name!r} is listed twice"])
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:  # an argument the hook does not have, a historic hook …
            raise ConfigError([f"plugin {name!r}: {exc}"]) from None
        self._impls.clear()

    def _check_hooks(self) -> None:
        """Refuse what the host's own hook loop cannot run: unknown hooks and wrapper implementations."""
        errors = []
        known = ", ".join(sorted(self.pm.hook.__dict__))
        for name, caller in sorted(self.pm.hook.__dict__.items()):
            for impl in caller.get_hookimpls():
                if caller.spec is None and not impl.optionalhook:
                    errors.append(f"plugin {impl.plugin_name!r}: {name!r} is not a hook (hooks: {known})")
                elif impl.hookwrapper or impl.wrapper:
                    errors.append(
                        f"plugin {impl.plugin_name!r}: {name} is a wrapper implementation, which the gateway "
                        "does not run; implement the hook plainly (use tryfirst/trylast for order)"
                    )
        if errors:
            raise ConfigError(sorted(set(errors)))
        try:
            self.pm.check_pending()  # pluggy's own check, in case it knows a case ours does not
        except pluggy.PluginValidationError as exc:
            raise ConfigError([f"plugin {exc.plugin_name!r}: {exc}"]) from None

    def _structure_settings(self, config: Config) -> dict[str, Any]:
        """Each plugin's ``[plugins.<name>]`` table → its declared settings class, strictly."""
        settings: dict[str, Any] = {}
        errors: list[str] = []
        for name, manifest in self.manifests.items():
            table = config.plugins.settings.get(name)
            if manifest.settings is None:
                if table and manifest is NO_MANIFEST:
                    # A plugin written before manifests reads config.plugin_settings(name) itself.
                    log.warning(
                        "plugins.%s: the plugin declares no settings class; the core cannot check its table", name
                    )
                elif table:
                    errors.append(f"plugins.{name}: the {name!r} plugin takes no settings")
                continue
            known = {field.name for field in attrs.fields(manifest.settings)}
            unknown = sorted(set(table or {}) - known)
            if unknown:
                errors += [
                    f"plugins.{name}.{key}: unknown setting (known: {', '.join(sorted(known))})" for key in unknown
                ]
                continue
            try:
                settings[name] = converter.structure(table or {}, manifest.settings)
            except Exception as exc:
                for path, message in validation_errors(exc):
                    where = path[1:] if path.startswith("$") else f".{path}"
                    errors.append(f"plugins.{name}{where}: {message}")
        for name in sorted(set(config.plugins.settings) - set(self.names)):
            # Not an error: switching a plugin off should not mean deleting its settings.
            log.warning("plugins.%s: settings for a plugin that is not enabled (a typo?)", name)
        if errors:
            raise ConfigError(errors)
        return settings

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

    def _check_order(self) -> None:
        position = {name: i for i, name in enumerate(self.names)}
        errors = []
        for name, manifest in self.manifests.items():
            for first, then in [(other, name) for other in manifest.after] + [
                (name, other) for other in manifest.before
            ]:
                if first in position and then in position and position[first] > position[then]:
                    errors.append(
                        f"plugins.enabled: {first!r} must come before {then!r} "
                        f"({name!r} declares it); list {first!r} first"
                    )
        if errors:
            raise ConfigError(errors)

    def _check_tables(self, config: Config) -> None:
        """A top-level table no enabled plugin reads would be silently ignored: refuse it."""
        claimed = {t for _, p in self.pm.list_name_plugin() for t in getattr(p, "CONFIG_TABLES", ())}
        for table in PLUGIN_TABLES:
            if getattr(config, table) and table not in claimed:
                readers = [
                    n for n, ep in sorted(self.installed.items()) if table in getattr(ep.load(), "CONFIG_TABLES", ())
                ]
                raise ConfigError(
                    [f"{table}: no enabled plugin reads this table (enable one of: {', '.join(readers) or 'none'})"]
                )

    @property
    def authenticates(self) -> bool:
        """Whether an enabled plugin (``AUTHENTICATES = True``) checks client keys in place of ``server.api_keys``."""
        return any(getattr(p, "AUTHENTICATES", False) for _, p in self.pm.list_name_plugin())

    def _collect_provider_kinds(self) -> dict[str, tuple[type, str]]:
        """Provider kinds the plugins register: ``{kind: (class, plugin)}``."""
        kinds: dict[str, tuple[type, str]] = {}
        for impl in self.impls("register_providers"):

            def register(kind: str, cls: type, _plugin: str = impl.plugin_name) -> None:
                if kind in kinds:
                    raise ConfigError([f"provider kind {kind!r} registered by both {kinds[kind][1]!r} and {_plugin!r}"])
                kinds[kind] = (cls, _plugin)

            self.call_declaration(impl, {"register": register})
        return kinds

    def _collect_gateway_fields(self) -> list[tuple[str, dict[str, Any]]]:
        """``[(plugin, {field: type or GatewayField})]`` in call order."""
        out = []
        for impl in self.impls("gateway_fields"):
            declared = self.call_declaration(impl, {})
            if declared:
                if not isinstance(declared, dict):
                    raise ConfigError([f"plugin {impl.plugin_name!r}: gateway_fields must return a dict"])
                out.append((impl.plugin_name, declared))
        return out

    def _check_requirements(self, config: Config) -> None:
        """Every declared requirement is met by an enabled plugin; else name one to enable."""
        from .providers import BUILTIN_PROVIDERS  # providers import the core's context; keep this module light

        scores = {s for m in self.manifests.values() for s in m.provides_scores}
        fields = {key for _, declared in self.gateway_fields for key in _field_names(declared)}
        kinds = set(BUILTIN_PROVIDERS) | set(self.provider_kinds)
        errors = []
        unmet = "which no enabled plugin provides"
        scorers = {impl.plugin_name for impl in self.impls("score_request")}
        for name, manifest in self.manifests.items():
            if manifest.provides_scores and name not in scorers:
                errors.append(f"plugin {name!r}: declares provides_scores but implements no score_request")
        for name, manifest in self.manifests.items():
            where = f"plugins.enabled: {name!r} requires"
            for other in manifest.requires_plugins:
                if other not in self.manifests:
                    hint = "enable it" if other in self.installed else "it is not installed"
                    errors.append(f"{where} the {other!r} plugin; {hint}")
            lacking = [score for score in manifest.requires_scores if score not in scores]
            if lacking:
                hint = self._enable(lambda p, want=set(lacking): want <= set(_provided_scores(p)))
                what = "the score" if len(lacking) == 1 else "the scores"
                errors.append(f"{where} {what} {', '.join(map(repr, lacking))}, {unmet}; {hint}")
            for field in manifest.requires_gateway_fields:
                if field not in fields:
                    hint = self._enable(lambda p, f=field: f in _fields_of(p))
                    errors.append(f"{where} the gateway field {field!r}, {unmet}; {hint}")
            for kind in manifest.requires_provider_kinds:
                if kind not in kinds:
                    hint = self._enable(lambda p, k=kind: k in _kinds_of(p))
                    errors.append(f"{where} the provider kind {kind!r}, {unmet}; {hint}")
        for provider, p in config.providers.items():
            if p.kind not in kinds:
                hint = self._enable(lambda x, k=p.kind: k in _kinds_of(x))
                known = ", ".join(sorted(kinds))
                errors.append(f"providers.{provider}.kind: unknown kind {p.kind!r} (known: {known}); {hint}")
        if errors:
            raise ConfigError(errors)

    def _enable(self, gives: Callable[[object], bool]) -> str:
        """Which installed but disabled plugins would meet a requirement: the hint in its error."""
        candidates = []
        for name, ep in sorted(self.installed.items()):
            if name in self.manifests:
                continue
            try:
                plugin = ep.load()
                if gives(plugin):
                    candidates.append(name)
            except Exception as exc:  # a broken third-party plugin must not hide the real error
                log.debug("could not inspect plugin %s (%s)", name, type(exc).__name__)
        if not candidates:
            return "no installed plugin provides it"
        return f"enable {' or '.join(repr(c) for c in candidates)} in [plugins].enabled"

    # ---------------------------------------------------------------- calling hooks

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
        """A plugin raised: a GatewayError goes to the client; anything else refuses the request
        (a fail-closed plugin) or skips the plugin (``None``: no result)."""
        if isinstance(exc, GatewayError):
            raise exc
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
        except Exception as exc:
            return self._failed(impl, exc)

    async def _run_async(self, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        try:
            return await impl.function(*[kwargs[a] for a in impl.argnames])
        except Exception as exc:
            return self._failed(impl, exc)

    async def run(self, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        """Call one implementation with the arguments it names, awaiting it if it is async."""
        if self._is_async[impl.function]:
            return await self._run_async(impl, kwargs)
        return self._run_sync(impl, kwargs)

    async def call(self, hook: str, **kwargs: Any) -> Any:
        """Call a request hook as its spec says: every implementation in order, returning their
        non-None results, or, for a ``firstresult`` hook, until one returns non-None (that result)."""
        if self._firstresult[hook]:
            return await self._each(hook, kwargs, lambda result: True)
        results: list[Any] = []
        await self._each(hook, kwargs, results.append)
        return results

    async def chain(self, hook: str, kwargs: dict[str, Any], on_result: Callable[[Any], None]) -> None:
        """Call a chained hook (``select_model``, ``select_provider``): each non-None result goes to
        ``on_result`` before the next implementation runs, so each sees the previous choice."""
        await self._each(hook, kwargs, on_result)

    async def _each(self, hook: str, kwargs: dict[str, Any], on_result: Callable[[Any], Any]) -> Any:
        """The one hook loop: each non-None result goes to ``on_result``; a true answer from it stops the loop."""
        for impl in self.impls(hook):
            # run() inlined: no wrapper frame or coroutine per implementation.
            try:
                result = impl.function(*[kwargs[a] for a in impl.argnames])
                if self._is_async[impl.function]:
                    result = await result
            except Exception as exc:
                result = self._failed(impl, exc)
            if result is not None and on_result(result):
                return result
        return None

    async def score(self, ctx: Any, wanted: set[str]) -> dict[str, Any]:
        """Ask the plugins that provide any of ``wanted`` scores, in call order, until each is given.

        Each returns what it can; the first value given for a name wins (the merge per
        field); a name the plugin did not declare in ``provides_scores`` is ignored.
        """
        unknown = wanted - self.score_sources.keys()
        if unknown:
            raise LookupError(
                f"no enabled plugin provides the score(s) {', '.join(sorted(unknown))} "
                "(a plugin that asks for a score declares it in MANIFEST.requires_scores)"
            )
        got: dict[str, Any] = {}
        for impl in self.impls("score_request"):
            offers = self.manifests[impl.plugin_name].provides_scores
            missing = wanted - got.keys()
            if not missing:
                break
            if missing.isdisjoint(offers):
                continue
            result = await self.run(impl, {"ctx": ctx, "wanted": frozenset(missing)})
            if result is None:
                continue
            if not isinstance(result, dict):
                log.warning(
                    "plugin %s: score_request returned a %s, not a dict; ignored",
                    impl.plugin_name,
                    type(result).__name__,
                )
                continue
            for name in offers:
                if name in result and name not in got:
                    got[name] = result[name]
        return got

    async def notify(self, hook: str, **kwargs: Any) -> None:
        """Call every implementation of an after-the-fact hook; a failure is logged (type only), never raised."""
        for impl in self.impls(hook):
            try:
                result = impl.function(*[kwargs[a] for a in impl.argnames])
                if result is not None and inspect.isawaitable(result):  # most return None: no check
                    await result
            except Exception as exc:
                self.failures[impl.plugin_name] += 1
                log.warning("plugin %s failed in %s (%s); ignored", impl.plugin_name, hook, type(exc).__name__)

    def call_declaration(self, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        """Run a declaration hook while the app is built; an error names the plugin and stops startup."""
        try:
            return resolve_now(impl.function(*[kwargs[a] for a in impl.argnames]))
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError([f"plugin {impl.plugin_name!r} failed in {impl.function.__name__}: {exc}"]) from exc

    def call_startup(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a hook that runs while the app is built (``register_routes`` …), sync or async;
        returns ``(plugin name, result)`` pairs. An error names the plugin and stops startup."""
        return [(impl.plugin_name, self.call_declaration(impl, kwargs)) for impl in self.impls(hook)]

    async def start(self, app: Any, config: Config) -> None:
        """``router_startup``, each plugin with its own settings; any exception stops startup."""
        for impl in self.impls("router_startup"):
            kwargs = {"app": app, "config": config, "settings": self.settings.get(impl.plugin_name)}
            result = impl.function(*[kwargs[a] for a in impl.argnames])
            if inspect.isawaitable(result):
                await result

    async def stop(self, app: Any) -> None:
        """``router_shutdown``; a failure is logged and the others still run."""
        await self.notify("router_shutdown", app=app)

    def describe(self) -> list[tuple[str, list[str]]]:
        """``[(plugin name, [hooks it implements])]`` for ``llm-router check``."""
        out = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or ())
            out.append((name, hooks))
        return out


def _field_names(declared: dict[str, Any]) -> list[str]:
    names = []
    for name, spec in declared.items():
        names.append(name)
        if isinstance(spec, GatewayField):
            names.extend(spec.aliases)
    return names


def _provided_scores(plugin: object) -> tuple[str, ...]:
    manifest = getattr(plugin, "MANIFEST", NO_MANIFEST)
    return manifest.provides_scores if isinstance(manifest, Manifest) else ()


def _fields_of(plugin: object) -> list[str]:
    declare = getattr(plugin, "gateway_fields", None)
    return _field_names(resolve_now(declare()) or {}) if callable(declare) else []


def _kinds_of(plugin: object) -> list[str]:
    register = getattr(plugin, "register_providers", None)
    kinds: list[str] = []
    if callable(register):
        resolve_now(register(lambda kind, cls: kinds.append(kind)))
    return kinds
