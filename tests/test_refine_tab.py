"""The Refine tab's handlers at the function level: the path, selecting, branching, Undo, the slider, the estimate,
Send to Edit / Add to Compose, Download original, and opening a Studio result; against the strict emulator."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest
from conftest import TEST_KEY, page_for_handlers

from nanobanana_ui.domain.config import Settings
from nanobanana_ui.service.studio import Studio
from nanobanana_ui.ui.actions import StudioForm
from nanobanana_ui.ui.history_library import Browse
from nanobanana_ui.ui.refine_tab import RefineTab
from nanobanana_ui.ui.refine_view import ESTIMATE_NOTE, Place, RefineView
from nanobanana_ui.ui.runner import Runner
from nanobanana_ui.ui.runner_base import no_owner, visitor_owner

PRO = "gemini-3-pro-image"
FORM_FIELDS = ("main_tabs", "mode_tabs", "edit_image", "compose_images", "compose_limit", "model")


class Visitor:
    def __init__(self, session_hash: str) -> None:
        self.session_hash = session_hash
        self.username = None


class Picked:
    """What Gradio passes to a gallery's select handler (only the index is read)."""

    def __init__(self, index: int) -> None:
        self.index = index


def make_tab(studio: Studio, owner_of=no_owner) -> RefineTab:
    tab = RefineTab(RefineView(studio, owner_of), Runner(studio, owner_of=owner_of),
                    StudioForm({name: name for name in FORM_FIELDS}))  # updates come back keyed by field name
    with page_for_handlers():
        tab.layout()
    return tab


def by_name(tab: RefineTab, shown: dict) -> dict:
    """A handler's dict keyed by component -> keyed by the component's elem_id (or 'place')."""
    return {("place" if key is tab.place else getattr(key, "elem_id", key)): value for key, value in shown.items()}


def sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_refine_twice_undo_branch_select_and_compare(emulator, settings):
    async def scenario():
        async with Studio(settings) as studio:
            root = await studio.generate("a lighthouse", model=PRO)
            tab = make_tab(studio)
            opened = by_name(tab, await tab.opened(entry_id=root.id, instruction="", request=None))
            two = by_name(tab, await tab.refined(place=opened["place"], instruction="make it night", api_key="",
                                                 request=None))
            three = by_name(tab, await tab.refined(place=two["place"], instruction="add a moon", api_key="",
                                                   request=None))
            sent_three = emulator.generate_requests[-1]
            undone = by_name(tab, await tab.undone(place=three["place"], instruction="", request=None))
            branched = by_name(tab, await tab.refined(place=undone["place"], instruction="add snow", api_key="",
                                                      request=None))
            sent_branch = emulator.generate_requests[-1]
            back = by_name(tab, await tab.undone(place=branched["place"], instruction="", request=None))
            root_again = by_name(tab, await tab.path_selected(place=back["place"], instruction="", evt=Picked(0),
                                                              request=None))
            followed = by_name(tab, await tab.branch_selected(place=back["place"], instruction="", evt=Picked(0),
                                                              request=None))
            compared = by_name(tab, await tab.compared(before=root.id, after=three["refine-id"], request=None))
            return (root, opened, two, three, sent_three, undone, branched, sent_branch, back, root_again, followed,
                    compared, studio.history.get(three["refine-id"]))

    (root, opened, two, three, sent_three, undone, branched, sent_branch, back, root_again, followed, compared,
     third) = asyncio.run(scenario())
    # A root: no parent, nothing to slide, the button continues the line.
    assert opened["refine-id"] == root.id and opened["refine-slider"] is None and opened["refine-button"] == \
        "Refine turn 1" and opened["refine-branches"] is None
    assert ESTIMATE_NOTE in opened["refine-estimate"] and "Next: turn 2" in opened["refine-estimate"]
    # Two refinements: the new turn is selected, the instruction box is emptied, the path grows.
    assert two["refine-instruction"] == "" and two["refine-status"].startswith(f"Turn 2 (refines {root.id})")
    assert [c for _, c in three["refine-path"]["value"]] == ["turn 1: a lighthouse", "turn 2: make it night",
                                                           "turn 3: add a moon"]
    assert three["refine-path"]["selected_index"] == 2 and three["refine-summary"].startswith("**Turn 3**")
    assert [t.role for t in sent_three.turns] == ["user", "model", "user", "model", "user"]
    assert [p.text for p in sent_three.turns[4].parts] == ["add a moon"]
    # The slider defaults to parent -> selected; the stored originals, by content.
    assert three["refine-slider"][0] == two["refine-current"] and three["refine-slider"][1] == three["refine-current"]
    assert three["refine-download"] == str(third.images[0].path) and sha(three["refine-download"]) == \
        third.images[0].sha256
    # Undo: turn 2 selected, the line (down to turn 3) kept; sending from it now makes a branch, said so.
    assert undone["refine-id"] == two["refine-id"] and len(undone["refine-path"]["value"]) == 3
    assert undone["refine-button"] == "Branch from turn 2" and "new branch" in undone["refine-branch-note"]
    assert "Turn 2** of 3 on this line · 1 branch from here" in undone["refine-summary"]
    assert branched["refine-status"].startswith(f"Turn 3 (refines {two['refine-id']})")
    assert sent_branch.turns[:4] == sent_three.turns[:4] and [p.text for p in sent_branch.turns[4].parts] == \
        ["add snow"]
    # Back on turn 2, both branches are listed; following the first shows its line.
    assert [c for _, c in back["refine-branches"]] == ["turn 3: add a moon", "turn 3: add snow"]
    assert "2 branches from here" in back["refine-summary"]
    assert root_again["refine-id"] == root.id and root_again["refine-button"] == "Branch from turn 1"
    assert len(root_again["refine-path"]["value"]) == 3  # the line stays: the later turns are one click away
    assert followed["refine-id"] == three["refine-id"]
    # Any two turns compared.
    assert compared["refine-slider"] == (opened["refine-current"], three["refine-current"])


def test_the_estimate_grows_with_the_path(emulator, settings):
    async def scenario():
        async with Studio(settings) as studio:
            root = await studio.generate("a lighthouse", model=PRO)
            second = await studio.refine(parent_id=root.id, instruction="make it night")
            view = RefineView(studio, no_owner)
            plans = [await studio.prepare_refine(parent_id=e.id, instruction="add a moon") for e in (root, second)]
            texts = [await view.estimate(e.id, "add a moon") for e in (root, second)]
            return plans, texts, len(emulator.generate_requests)

    plans, texts, calls = asyncio.run(scenario())
    assert calls == 2  # estimating sends nothing
    assert plans[1].input_tokens > plans[0].input_tokens
    for plan, text in zip(plans, texts, strict=True):
        assert f"turn {plan.turn}" in text and f"about {plan.input_tokens:,} input tokens" in text
        assert f"${plan.estimated_cost_usd:.4f}" in text and ESTIMATE_NOTE in text


def test_send_to_edit_add_to_compose_and_open_from_the_studio(emulator, settings):
    async def scenario():
        async with Studio(settings) as studio:
            tab = make_tab(studio)
            outputs = await tab.runner.generate("a fox", PRO, api_key="", request=None)
            opened = by_name(tab, await tab.from_studio(session=outputs.session, instruction="", request=None))
            place = opened["place"]
            edit = tab.sent_to_edit(place=place, request=None)
            compose = tab.added_to_compose(place=place, compose_images=None, model=PRO, request=None)
            from_history = by_name(tab, await tab.from_history(browse=Browse(selected=outputs.session.last_ids[0]),
                                                               instruction="", request=None))
            with pytest.warns(UserWarning, match="Open an entry first"):
                nothing = await tab.from_history(browse=Browse(), instruction="", request=None)
            return outputs, opened, edit, compose, from_history, nothing

    outputs, opened, edit, compose, from_history, nothing = asyncio.run(scenario())
    assert from_history["refine-id"] == opened["refine-id"] and from_history["main_tabs"].selected == "refine"
    assert nothing == gr.skip()
    assert outputs.session.shown_id == outputs.session.last_ids[0] == opened["refine-id"]
    assert opened["main_tabs"].selected == "refine"
    assert edit["edit_image"] == opened["refine-current"] and edit["mode_tabs"].selected == "edit"
    assert compose["compose_images"] == [opened["refine-current"]] and compose["mode_tabs"].selected == "compose"


def test_refusals_are_toasts_and_leave_the_page(emulator, settings):
    async def scenario():
        async with Studio(settings) as studio:
            root = await studio.generate("a lighthouse", model=PRO)
            tab = make_tab(studio)
            place = by_name(tab, await tab.opened(entry_id=root.id, instruction="", request=None))["place"]
            with pytest.warns(UserWarning, match="root of its conversation"):
                undo = await tab.undone(place=place, instruction="", request=None)
            with pytest.warns(UserWarning, match="No result with id 'nope'"):
                unknown = await tab.opened(entry_id="nope", instruction="", request=None)
            with pytest.warns(UserWarning, match="Open a result first"):
                empty = await tab.refined(place=Place(), instruction="x", api_key="", request=None)
            with pytest.warns(UserWarning, match="no image to use yet"):
                no_result = await tab.from_studio(session=None, instruction="", request=None)
            return [undo, unknown, empty, no_result], len(emulator.generate_requests)

    results, calls = asyncio.run(scenario())
    assert all(result == gr.skip() for result in results) and calls == 1


def test_the_tab_refuses_another_visitors_id(emulator, tmp_path):
    async def scenario(settings):
        async with Studio(settings) as studio:
            mine = await studio.generate("my fox", model=PRO, owner="session:a")
            tab = make_tab(studio, visitor_owner)
            with pytest.warns(UserWarning, match="No result with id"):
                theirs = await tab.opened(entry_id=mine.id, instruction="", request=Visitor("b"))
            with pytest.warns(UserWarning, match="No result with id"):
                refined = await tab.refined(place=Place((mine.id,), mine.id), instruction="make it night",
                                            api_key="", request=Visitor("b"))
            return theirs, refined, by_name(tab, await tab.opened(entry_id=mine.id, instruction="",
                                                                  request=Visitor("a"))), len(
                emulator.generate_requests)

    settings = Settings(api_key=TEST_KEY, base_url=emulator.base_url, home=tmp_path / "home", timeout_s=10,
                        max_attempts=1)
    theirs, refined, mine, calls = asyncio.run(scenario(replace(settings)))
    assert theirs == gr.skip() and refined == gr.skip() and calls == 1  # nothing sent for the other visitor
    assert mine["refine-slider"] is None and len(mine["refine-path"]["value"]) == 1


def test_a_failed_refinement_is_no_thumbnail_and_cannot_be_refined(emulator, settings):
    from nanobanana_ui.emulator import Fault

    async def scenario():
        async with Studio(settings) as studio:
            root = await studio.generate("a lighthouse", model=PRO)
            tab = make_tab(studio)
            place = by_name(tab, await tab.opened(entry_id=root.id, instruction="", request=None))["place"]
            emulator.fail_next(Fault.blocked("SAFETY"))
            with pytest.warns(UserWarning, match="(?i)block"):
                await tab.refined(place=place, instruction="something unsafe", api_key="", request=None)
            good = by_name(tab, await tab.refined(place=place, instruction="make it night", api_key="",
                                                  request=None))
            failed = next(c for c in studio.branches(root.id) if not c.ok)
            back = by_name(tab, await tab.opened(entry_id=root.id, instruction="", request=None))
            followed = by_name(tab, await tab.branch_selected(place=back["place"], instruction="", evt=Picked(0),
                                                              request=None))
            opened_failed = by_name(tab, await tab.opened(entry_id=failed.id, instruction="", request=None))
            return good, back, followed, opened_failed, len(studio.branches(root.id))

    good, back, followed, opened_failed, children = asyncio.run(scenario())
    assert children == 2  # the history keeps the failed try as a branch
    assert [c for _, c in back["refine-branches"]] == ["turn 2: make it night"]  # only the one with an image
    assert back["refine-button"] == "Branch from turn 1" and "1 branch from here" in back["refine-summary"]
    assert followed["refine-id"] == good["refine-id"]
    assert opened_failed["refine-current"] is None and opened_failed["refine-path"]["selected_index"] is None
    assert opened_failed["refine-estimate"].startswith("The next turn cannot be sent: ")
    assert opened_failed["refine-download"] is None
