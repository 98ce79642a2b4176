"""Shell completion of the names the CLI takes: shipped profiles, topologies and suites.

Click generates the shell side (bash, zsh, fish); these give it the values. Enable it with, e.g. for bash:

    eval "$(_EDGE_CONFORMANCE_COMPLETE=bash_source edge-conformance)"

Files and directories still complete as paths (a profile or target may be a YAML file of the user's).
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem

GENERATED_TOPOLOGIES = ("fleet:",)  # fleet:N, any size (model/topology.py)


def _matching(names: list[str], incomplete: str, help_text: str | None = None) -> list[CompletionItem]:
    return [CompletionItem(n, help=help_text) for n in names if n.startswith(incomplete)]


def _paths(incomplete: str) -> list[CompletionItem]:
    """Let the shell complete files too: a profile, target or inventory may be the user's own YAML."""
    return [CompletionItem(incomplete, type="file")]


def profile_names() -> list[str]:
    from .model.profile import list_profiles

    return [p.stem for p in list_profiles()]


def topology_names() -> list[str]:
    from .model.topology import list_topologies

    return list(list_topologies()) + list(GENERATED_TOPOLOGIES)


def complete_profile(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return _matching(profile_names(), incomplete, "shipped profile") + _paths(incomplete)


def complete_target(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    emulated = ["emulated"] + [f"emulated:{t}" for t in topology_names()]
    return _matching(emulated, incomplete, "emulated deployment") + _paths(incomplete)


def complete_topology(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return _matching(topology_names(), incomplete, "topology") + _paths(incomplete)


def complete_suite(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from .model.paths import suite_names

    return _matching(suite_names(), incomplete, "suite")
