"""One way for a command to load its project: every problem with `--root` or `cswf.yaml` becomes
one `CliError` naming the file, the key and what to do, before any work starts."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from difflib import get_close_matches
from pathlib import Path
from typing import get_args

import typer
import yaml
from pydantic import BaseModel, ValidationError

from cswf.clitools.errors import TRACEBACK_ENV, CliError, did_you_mean
from cswf.delivery.config import DeliveryConfig
from cswf.settings import CONFIG_FILE, ENV_OVERRIDES, Settings, find_root, load_settings
from cswf.specs.common import yaml_problem

# CSWF_* variables read elsewhere than the settings (whose own are settings.ENV_OVERRIDES).
OTHER_ENV = ("CSWF_ROOT", "CSWF_WAIT", TRACEBACK_ENV)
TEST_ENV = "CSWF_TEST_"  # the test suite's own knobs (e.g. where a crash test kills itself)
CREATE = "create a project with `cswf init DIR`"
HINTS = {
    "tick_start": 'write a UTC time such as "2026-07-01 00:00"',
    "tick_cron": 'write five cron fields (UTC), e.g. "0 */3 * * *"',
    "memory_limit": "write a number and a unit, such as 4GB or 512MB",
}
# By pydantic error type, for keys without a hint of their own.
TYPE_HINTS = {
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "time_parsing": 'write a local time as HH:MM, e.g. "20:00"',
    "time_type": 'write a local time as HH:MM, e.g. "20:00"',
    "int_parsing": "write a whole number",
    "float_parsing": "write a number",
}


def project_settings(root: Path | None) -> Settings:
    """The settings of the project at `root` (default: CSWF_ROOT, else the nearest folder
    upwards holding cswf.yaml), checked in full: paths, YAML, keys, values, cron, delivery."""
    if root is not None and not root.is_dir():
        raise CliError("--root", f"no folder {root}",
                       f"give the project folder (the one with {CONFIG_FILE}), or {CREATE}")
    from_env = Path(os.environ["CSWF_ROOT"]) if os.environ.get("CSWF_ROOT") else None
    if root is None and from_env is not None and not from_env.is_dir():
        raise CliError("CSWF_ROOT", f"no folder {from_env}",
                       f"set it to the project folder (the one with {CONFIG_FILE}), or unset it")
    folder = root or from_env or find_root()
    config = folder / CONFIG_FILE
    if not config.is_file():
        hint = "run in the project folder or give --root" if root is None else \
            "point --root at the project folder"
        raise CliError(shown(config), "not found", f"{hint} (the one with {CONFIG_FILE}), or "
                       f"{CREATE}")
    _check_yaml(config)
    _no_empty_overrides()
    try:
        settings = load_settings(folder)
        settings.delivery_config()
    except ValidationError as exc:
        raise _bad_setting(config, exc) from exc
    _warn_unknown_env(settings)
    return settings


def _no_empty_overrides() -> None:
    """A CSWF_* setting set to nothing (`CSWF_DATABASE=`) is a mistake, not "use the file":
    an empty path would be the project folder itself."""
    for env in ("CSWF_ROOT", *ENV_OVERRIDES):
        if env in os.environ and not os.environ[env].strip():
            key = ENV_OVERRIDES.get(env)
            instead = f"{key} from {CONFIG_FILE}" if key else "the current folder's project"
            raise CliError(env, "is set but empty", f"give it a value, or unset it (`unset "
                           f"{env}`) to use {instead}")


def _warn_unknown_env(settings: Settings) -> None:
    """One warning line for each CSWF_* variable cswf does not read (a typo is otherwise
    silently ignored), naming the closest one it does read."""
    known = {*ENV_OVERRIDES, *OTHER_ENV, *_env_names(settings.delivery)}
    for env in sorted(os.environ):
        if env.startswith("CSWF_") and env not in known and not env.startswith(TEST_ENV):
            hint = did_you_mean(env, known) or \
                f"the closest known is '{get_close_matches(env, sorted(known), 1, 0)[0]}'"
            typer.echo(f"warning: {env}: not a cswf setting, ignored — {hint}", err=True)


def _env_names(config: object, key: str = "") -> list[str]:
    """The environment variables the delivery section names (`user_env`, `headers_env` ...)."""
    if isinstance(config, dict):
        return [n for k, v in config.items() for n in _env_names(v, str(k) or key)]
    if isinstance(config, list):
        return [n for v in config for n in _env_names(v, key)]
    return [config] if key.endswith("_env") and isinstance(config, str) else []


def require_landing(settings: Settings) -> Path:
    """The landing folder, which must exist: without it a run would load nothing and report
    nothing wrong (every tick then fails its checks on empty snapshots)."""
    landing = settings.landing_path
    if landing.is_dir():
        return landing
    if landing.exists():
        raise CliError(shown(landing), "the landing folder is a file, not a folder",
                       "move the file away, or set landing_dir in cswf.yaml to the folder of "
                       "snapshot files")
    raise CliError(shown(landing), "the landing folder does not exist",
                   f"create it (`mkdir -p {shown(landing)}/accounts`) and drop snapshot files "
                   "such as accounts/accounts_YYYY-MM-DD.csv in it (`cswf init DIR` writes its "
                   "README.md listing every file), or set landing_dir in cswf.yaml")


def shown(path: Path) -> str:
    """`path` as a person reads it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _check_yaml(config: Path) -> None:
    """`config` must be YAML, a mapping (or empty), without the key `root` (the folder holding
    the file is the project's root; the settings model takes it from there)."""
    try:
        raw = yaml.safe_load(config.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise CliError(f"{shown(config)}: line {line}", f"not UTF-8 text (byte "
                       f"0x{exc.object[exc.start]:02x})", "save the file as UTF-8") from exc
    except RecursionError as exc:
        raise CliError(shown(config), "nests too deep to read",
                       f"see the {CONFIG_FILE} that `cswf init` writes") from exc
    except yaml.YAMLError as exc:
        line, what = yaml_problem(exc)
        where = f"{shown(config)}: line {line}" if line else shown(config)
        raise CliError(where, what, "fix the file") from exc
    except OSError as exc:
        raise CliError(shown(config), f"cannot be read: {exc.strerror}") from exc
    if raw is not None and not isinstance(raw, dict):
        raise CliError(shown(config), "expected settings as `key: value` lines",
                       f"see the {CONFIG_FILE} that `cswf init` writes")
    if raw and "root" in raw:
        raise CliError(f"{shown(config)}: root", "unknown setting",
                       f"remove it: the project folder is the one holding {CONFIG_FILE}")


def _bad_setting(config: Path, exc: ValidationError) -> CliError:
    """The first problem pydantic found, as `cswf.yaml: key: what — what to do`."""
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    model: type[BaseModel] = Settings
    if exc.title == DeliveryConfig.__name__:
        loc, model = ["delivery", *loc], DeliveryConfig
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    where = _source(config, loc[0]) + "".join(f".{part}" for part in loc[1:]) if loc \
        else shown(config)
    if first["type"] == "extra_forbidden":
        inner = _model_at(model, loc[1:-1] if model is DeliveryConfig else loc[:-1])
        known = sorted(name for name in inner.model_fields if name != "root") if inner else []
        hint = did_you_mean(loc[-1], known) or (f"known: {', '.join(known)}" if known
                                                  else "remove it")
        what = "unknown setting" if model is Settings and len(loc) == 1 else "unknown key"
        return CliError(where, f"{what}{more}", hint)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] in TYPE_HINTS:  # pydantic's message does not repeat the value
        message += f" (got {first['input']!r})"
    hint = HINTS.get(loc[0] if loc else "") or TYPE_HINTS.get(first["type"], "fix the value")
    if message.startswith("an empty path") and loc:
        default = Settings.model_fields[loc[0]].default
        hint = (f"give a path relative to the project folder, e.g. {default or 'sql'}, or "
                "remove the line for the default")
    return CliError(where, f"{message}{more}", hint)


def _model_at(model: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    """The pydantic model found by following `path` through `model`'s fields, if any."""
    for part in path:
        field = model.model_fields.get(part)
        if field is None:
            return None
        candidates = (field.annotation, *get_args(field.annotation))
        models = [t for t in candidates if isinstance(t, type) and issubclass(t, BaseModel)]
        if not models:
            return None
        model = models[0]
    return model


def _source(config: Path, key: str) -> str:
    """Where a setting came from: its CSWF_* environment variable when set, else the file."""
    for env, name in ENV_OVERRIDES.items():
        if name == key and os.environ.get(env):
            return env
    return f"{shown(config)}: {key}"


def no_ticks(settings: Settings, option: str, start: datetime, end: datetime) -> CliError:
    """Why a time option names no tick: before `tick_start` (the usual cause in a new project,
    whose tick_start is the day of `cswf init`: name it, where it is set and how to move it
    back), else off the cron schedule."""
    span = f"{start:%Y-%m-%d %H:%M}" if start == end else \
        f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
    first = settings.tick_start
    if end < first:
        source = _source(settings.root / CONFIG_FILE, "tick_start")
        day = f"{start:%Y-%m-%d} 00:00"
        todo = f"set CSWF_TICK_START={day!r} (or earlier)" if source == "CSWF_TICK_START" \
            else f'move tick_start back in {shown(settings.root / CONFIG_FILE)}, e.g. ' \
                 f'tick_start: "{day}"'
        return CliError(option, f"{span} is before tick_start {first:%Y-%m-%d %H:%M} "
                        f"({source}), the first tick", todo + ", to replay those days")
    if start == end:
        after = settings.calendar.between(start, start + timedelta(days=366))[:1]
        hint = f"give a tick, e.g. {after[0]:%Y-%m-%d %H:%M}" if after else "give a tick"
        return CliError(option, f"{start} is not a tick of the schedule "
                        f"'{settings.tick_cron}'", hint)
    return CliError(option, f"no ticks of '{settings.tick_cron}' between {start} and {end}",
                    "widen the range")
