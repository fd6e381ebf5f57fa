"""The page: build_app() puts the header, the key field and the tabs together, and adds the public API's events.

Each tab is one module (studio_tab, history_tab, batch_tab, pnginfo_tab, refine_tab) with a class that lays it out
(`layout`) and connects its events (`wire`); a new tab follows the same two steps here.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from ..imaging.workers import configure as configure_cpu_pool
from ..service.studio import Studio
from ..service.visitors import KeyRing
from . import text
from .api import public_endpoints
from .batch_tab import BatchPage, BatchTab
from .history_library import Library
from .history_tab import HistoryTab
from .kits_tab import KitsTab
from .pnginfo_tab import PngInfo, PngInfoTab
from .refine_tab import RefineTab
from .refine_view import RefineView
from .runner import Runner
from .runner_base import no_owner, visitor_owner
from .session import Session
from .sessions import BATCH_RUNS, SessionReaper
from .studio_tab import StudioTab

__all__ = ["QUEUE_MAX_SIZE", "build_app"]

QUEUE_MAX_SIZE = 64  # the default of NANOBANANA_QUEUE_SIZE: beyond it, requests are refused at once ("queue full")
TITLE = "# 🍌 Nano Banana Studio\nGenerate, edit and compose images with Google's Gemini image models."


def build_app(studio: Studio, owner_of: Callable[[gr.Request | None], str | None] | None = None,
              keys: KeyRing | None = None) -> gr.Blocks:
    """The Blocks app for one Studio: the Studio tab (Generate, Edit and Compose, settings, outputs and this
    session's panel), the History tab (everything made on this data directory), Batch and PNG Info.

    `owner_of(request)` limits the History tab and every request's history entry to one owner (None: everything,
    a private install); by default the visitor (login name, else browser session) in public mode, else nobody.
    `keys` holds the visitors' own keys' Studios (bring your own key); one is made for `studio` by default.
    Gradio's file cache expires (delete_cache); launch() should pass `**launch_options(settings)` (ui/sessions.py:
    threads, sessions kept, upload size) and `run_history=False` (the browser would keep typed keys).
    """
    settings = studio.settings
    configure_cpu_pool(settings.cpu_threads)
    owner_of = owner_of or (visitor_owner if settings.public else no_owner)
    runner = Runner(studio, keys, owner_of)

    with gr.Blocks(title="Nano Banana Studio", delete_cache=settings.delete_cache) as demo:
        gr.Markdown(TITLE)
        if settings.public:
            gr.Markdown(text.PUBLIC_BANNER, elem_id="public-banner")
        elif studio.offline:
            gr.Markdown(text.OFFLINE_BANNER, elem_id="offline-banner")
        # Never given a value by the server, never stored: sent by the browser with each request that needs it.
        api_key = gr.Textbox(label="Your Gemini API key" + ("" if settings.public else " (optional)"),
                             type="password", value="", placeholder="AIza...", info=text.KEY_HELP,
                             max_lines=1, elem_id="api-key")
        session = gr.State(Session())
        with gr.Tabs(elem_id="main-tabs") as main_tabs:
            studio_tab = StudioTab(runner, settings.model)
            form = studio_tab.layout(main_tabs, session, api_key)
            history_tab = HistoryTab(Library(studio, owner_of), runner, studio_tab)
            history_tab.layout()
            batch_tab = BatchTab(BatchPage(studio, owner_of, runner=runner))
            batch_tab.layout()
            pnginfo_tab = PngInfoTab(PngInfo(settings.model), form)
            pnginfo_tab.layout()
            refine_tab = RefineTab(RefineView(studio, owner_of), runner, form)
            refine_tab.layout()
            kits_tab = KitsTab(runner)
            kits_tab.layout()
        public_endpoints(runner, outputs=[studio_tab.out_gallery, studio_tab.status, session], api_key=api_key,
                         session=session, default_model=settings.model)
        studio_tab.wire()
        history_tab.wire()
        batch_tab.wire(studio_tab.settings_inputs, api_key, min(settings.concurrency, BATCH_RUNS))
        pnginfo_tab.wire()
        refine_tab.wire(api_key, opener=studio_tab.output_to_refine, session=session,
                        history=(history_tab.to_refine, history_tab.browse))
        kits_tab.wire(kit_picker=studio_tab.kit, main_tabs=main_tabs,
                      history=(history_tab.to_kit, history_tab.browse, history_tab.library))
        demo.load(runner.meter, None, studio_tab.meter, api_visibility="private")
        reaper = SessionReaper(demo)

        def left(request: gr.Request) -> None:  # their key's client is closed, their session's state released
            runner.forget(request)
            reaper.closed(request)

        demo.unload(left)
    demo.queue(max_size=settings.queue_size)
    return demo
