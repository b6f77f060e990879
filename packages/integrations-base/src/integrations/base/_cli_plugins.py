"""Commands other distributions add to `integrations`, through the `integrations.cli` group.

An entry point's name is the command's name and its value names a click command or group::

    [project.entry-points."integrations.cli"]
    jobs = "integrations.jobs._cli:jobs"

Plug-in commands are listed in ``integrations --help`` from the entry points alone (the
distribution that provides them is named instead of their help text), and imported only when
invoked, so an installed plug-in costs nothing to commands that do not use it. A plug-in that
cannot be loaded, or does not name a click command, fails only when it is invoked, with one
line saying which distribution to fix; the rest of the CLI keeps working. A plug-in cannot
replace a built-in command: the built-in wins and the plug-in is not listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata

import click

from ._discovery import CLI_GROUP, entry_points_in

__all__ = ["PluginGroup"]


def _origin(entry_point: metadata.EntryPoint) -> str:
    """``integrations-jobs 0.1.0``: the distribution that provides a plug-in command."""
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return entry_point.value
    return f"{dist.metadata['Name']} {dist.version}"


def _broken(name: str, entry_point: metadata.EntryPoint, problem: str) -> click.Command:
    """A stand-in for a plug-in that cannot be used: invoking it says why and exits 1."""

    def fail() -> None:
        raise click.ClickException(
            f"the command {name!r} from {_origin(entry_point)} cannot be loaded "
            f"({entry_point.value}): {problem}"
        )

    return click.Command(
        name,
        callback=fail,
        help=f"(broken plug-in from {_origin(entry_point)})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )


class PluginGroup(click.Group):
    """A click group that also offers the commands of the `integrations.cli` entry points."""

    def _plugins(self) -> dict[str, metadata.EntryPoint]:
        found: dict[str, metadata.EntryPoint] = {}
        for entry_point in entry_points_in(CLI_GROUP):
            if entry_point.name not in self.commands:
                found.setdefault(entry_point.name, entry_point)  # first on sys.path wins
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in and plug-in command names, sorted, without importing any plug-in."""
        return sorted({*self.commands, *self._plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A built-in command, else the plug-in's, imported now."""
        command = self.commands.get(cmd_name)
        if command is not None:
            return command
        entry_point = self._plugins().get(cmd_name)
        return None if entry_point is None else self._load(cmd_name, entry_point)

    def _load(self, name: str, entry_point: metadata.EntryPoint) -> click.Command:
        try:
            loaded = entry_point.load()
        except Exception as error:  # a plug-in may be broken in any way: say so, keep the CLI
            return _broken(name, entry_point, f"{type(error).__name__}: {error}")
        if not isinstance(loaded, click.Command):
            return _broken(name, entry_point, f"it is a {type(loaded).__name__}, not a command")
        return loaded

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The help's command list: built-ins with their help, plug-ins by their origin."""
        plugins = self._plugins()
        rows: list[tuple[str, str]] = []
        limit = (
            formatter.width - 6 - max((len(name) for name in self.list_commands(ctx)), default=0)
        )
        for name in self.list_commands(ctx):
            if name in plugins:
                rows.append((name, f"(plug-in from {_origin(plugins[name])})"))
                continue
            command = self.commands[name]
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def plugin_names(self) -> Sequence[str]:
        """The names of the plug-in commands installed (for listings and tests)."""
        return sorted(self._plugins())
