"""The Refine tab's handlers at the function level: the path, branches, before/after, Undo and Refine."""

from __future__ import annotations

import asyncio

import gradio as gr
import pytest

from nanobanana_ui.studio import Studio
from nanobanana_ui.ui.refine_tab import ESTIMATE_NOTE, RefineTab, RefineView
from nanobanana_ui.ui.runner import Runner, no_owner

PRO = "gemini-3-pro-image"


class Visitor:
    def __init__(self, session_hash: str) -> None:
        self.session_hash = session_hash
        self.username = None


def test_the_tab_shows_a_path_refines_and_undoes(emulator, settings):
    async def scenario():
        async with Studio(settings) as studio:
            root = await studio.generate("a lighthouse", model=PRO)
            second = await studio.refine(parent_id=root.id, instruction="make it night")
            tab = RefineTab(RefineView(studio, no_owner), Runner(studio))
            shown = tab._show(second.id, None)
            refined = await tab._refine(second.id, "add a moon", "", None)
            undone = tab._undo(refined[-2], None)
            with pytest.raises(gr.Error, match="root"):
                tab._undo(None, None)
            return root, second, shown, refined, undone

    root, second, shown, refined, undone = asyncio.run(scenario())
    selected, image, before_after, path, branches, summary, parent = shown
    stored = [f"{r.images[0].sha256}.png" for r in (root, second)]  # the history's own copies, by content
    assert selected == second.id and parent == root.id and image.endswith(stored[1])
    assert [p.rsplit("/", 1)[1] for p in before_after] == stored
    assert [caption for _, caption in path] == ["turn 1: a lighthouse", "turn 2: make it night"]
    assert summary.startswith("Turn 2 of this path · the path cost $") and ESTIMATE_NOTE in summary
    assert branches == "No branches yet."
    assert [t.role for t in emulator.generate_requests[-1].turns] == ["user", "model", "user", "model", "user"]
    assert refined[-1].startswith(f"Turn 3 (refines {second.id})") and len(refined[3]) == 3
    assert undone[0] == second.id and "add a moon" in undone[4]  # back on turn 2: its new branch is listed


def test_the_tab_refuses_another_visitors_id(emulator, tmp_path):
    from dataclasses import replace

    from nanobanana_ui.ui.runner import visitor_owner

    async def scenario(settings):
        async with Studio(settings) as studio:
            mine = await studio.generate("my fox", model=PRO, owner="session:a")
            view = RefineView(studio, visitor_owner)
            with pytest.raises(gr.Error, match="No result with id"):
                view.turns(mine.id, Visitor("b"))
            return view.turns(mine.id, Visitor("a"))

    from conftest import TEST_KEY

    from nanobanana_ui.config import Settings

    settings = Settings(api_key=TEST_KEY, base_url=emulator.base_url, home=tmp_path / "home", timeout_s=10,
                        max_attempts=1)
    turns = asyncio.run(scenario(replace(settings)))
    assert turns.parent is None and turns.before_after is None and len(turns.path) == 1
