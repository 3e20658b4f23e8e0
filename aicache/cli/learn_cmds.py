"""``aicache proposals list | show | apply | reject | revert``: review what ``learn`` proposed.

Adapters over ``aicache.learn.proposals``; the proposal's repository is recorded with it, so no command here
needs ``--repo``. Every command has ``--json``: one object with the proposal(s) and, for changes, what was done.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

from aicache import output

if TYPE_CHECKING:
    from aicache.learn.proposals import Outcome

proposals_app = typer.Typer(
    help="Review learned settings proposed as git branches: list, show, apply, reject, revert.",
    no_args_is_help=True,
)

JSON_HELP = "Print JSON."
ID_HELP = "The proposal's id (see `aicache proposals list`)."


def _done(outcome: Outcome, json_out: bool) -> None:
    if json_out:
        output.emit_json({"proposal": asdict(outcome.proposal), "actions": list(outcome.actions)})
        return
    for line in outcome.actions:
        output.note(line)
    output.note(f"proposal {outcome.proposal.id}: {outcome.proposal.status}")


@proposals_app.command("list")
def list_(
    status: str = typer.Option(None, "--status", help="Only proposed, applied, rejected or reverted ones."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List proposals, newest first."""
    from aicache import db, render
    from aicache.learn import proposals

    with db.reading() as conn:
        found = proposals.list_proposals(conn, status)
    if json_out:
        output.emit_json({"proposals": [asdict(p) for p in found]})
        return
    render.proposals_table(found)


@proposals_app.command("show")
def show(
    proposal_id: int = typer.Argument(..., metavar="ID", help=ID_HELP),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show a proposal: its record, its commit's message (the evidence) and its diff."""
    from aicache import db, render
    from aicache.learn import proposals

    with db.reading() as conn:
        detail = proposals.show(conn, proposal_id)
    if json_out:
        output.emit_json(asdict(detail))
        return
    render.proposal_detail(detail)


@proposals_app.command("apply")
def apply(
    proposal_id: int = typer.Argument(..., metavar="ID", help=ID_HELP),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Merge a proposal into the live learned settings (a project's .aicache/ is written, for you to commit)."""
    from aicache import db
    from aicache.learn import proposals

    _done(proposals.apply(db.connect(), proposal_id), json_out)


@proposals_app.command("reject")
def reject(
    proposal_id: int = typer.Argument(..., metavar="ID", help=ID_HELP),
    why: str = typer.Option(None, "--why", help="Why, for the record (kept in the store, not in git)."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Delete a proposal's branch and record that it was rejected, and why."""
    from aicache import db
    from aicache.learn import proposals

    _done(proposals.reject(db.connect(), proposal_id, why), json_out)


@proposals_app.command("revert")
def revert(
    proposal_id: int = typer.Argument(..., metavar="ID", help=ID_HELP),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Undo an applied proposal (a revert commit; in a project, .aicache/ put back for you to commit)."""
    from aicache import db
    from aicache.learn import proposals

    _done(proposals.revert(db.connect(), proposal_id), json_out)


def register(app: typer.Typer) -> None:
    app.add_typer(proposals_app, name="proposals")
