"""Running requests for the page and the API: /generate, /edit, /compose, /refine, New variation, History re-runs.

The Runner picks the visitor's Studio (their own key's, or the host's), checks their limits, reports progress, and
records the results in the visitor's session; the tabs call it and turn its `Outputs` into their components' values.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any, NamedTuple

import gradio as gr

from ..domain.errors import StudioError
from ..domain.models import get_model
from ..domain.request import ImageRequest, ImageResult, Mode
from ..domain.styles import craft_prompt
from ..imaging.workers import on_cpu
from ..service.conversation import Refinement
from ..service.studio import Studio
from ..service.transparency import (
    Transparency,
    check_transparency,
    describe_transparent,
    parse_transparent,
    transparent_variations,
)
from .controls import AUTO, IMAGE_AND_TEXT, MAX_UI_COUNT, FormSettings, gallery_paths
from .extras import PageExtras
from .runner_base import RunnerBase, studio_errors, visitor_message
from .session import Session
from .text import run_status

__all__ = ["Outputs", "Runner"]


class Outputs(NamedTuple):
    """What one run shows: the output gallery's files, the status text, and the visitor's session."""

    files: list[str]
    status: str
    session: Session


def _turn_line(plan: Refinement, ids: str) -> str:
    """A refinement's first status line: its turn, its parent and the new id(s), which a next /refine takes."""
    return f"Turn {plan.turn} (refines {plan.parent}) · id {ids}"


class Runner(RunnerBase):
    """Runs the page's requests through the visitor's Studio (their own key's, or the host's) and records them in
    the visitor's session and, under the visitor's owner id, in the history."""

    # The three public endpoints. Their parameter names and order are the HTTP API (gradio_client, MCP):
    # keep them stable. Every parameter after the first one(s) has a default in its component.

    async def generate(self, prompt: str, model: str = "", aspect_ratio: str = AUTO, size: str = "",
                       temperature: float = 1.0, top_p: float = 0.95, top_k: int = 0, seed: int = -1,
                       count: int = 1, output: str = IMAGE_AND_TEXT, thinking: str = "", show_thoughts: bool = False,
                       search: bool = False, image_search: bool = False, style: str = "", transparent: str = "",
                       kit: str = "", api_key: str = "",
                       session: Session | None = None, request: gr.Request | None = None,
                       progress: gr.Progress = gr.Progress(),  # noqa: B008 (how Gradio asks for it)
                       *, extras: PageExtras | None = None, variables: dict[str, str] | None = None) -> Outputs:
        """Make new images from a text description with Gemini; returns the PNG files and a status line per image.

        The status gives the cost (or "cached · $0" when the same request was answered before), the finish reason
        and the model's words. A blocked prompt, a quota or a bad option comes back as an error message.

        Args:
            prompt: what to draw: subject, setting, style, composition, any text to render.
            model: Gemini image model id, e.g. "gemini-3-pro-image" (Nano Banana Pro); "" for the default.
            aspect_ratio: width:height such as "1:1", "16:9", "9:16" or "21:9"; "auto" for the model's default.
            size: "512", "1K", "2K" or "4K" as the model offers ("" for its default); others are refused, unsent.
            temperature: randomness, 0 to 2 (1.0 by default); lower stays closer to the prompt.
            top_p: nucleus sampling, 0 to 1 (0.95 by default).
            top_k: top-k sampling; 0 for the model's default.
            seed: a number to make results more repeatable (best effort); -1 for none.
            count: how many images to make, 1 to 4, as parallel calls (each one is a paid request).
            output: "Image + text" (the model may add a few words) or "Image only".
            thinking: the thinking level, "minimal" or "high", on models that have it (3.1 Flash); "" for the default.
            show_thoughts: also return the model's interim thought images (free; shown, never saved as outputs).
            search: ground the image in Google Search (Pro and 3.1 Flash); the sources come back with it.
            image_search: Google image search as well as web search (3.1 Flash only; implies search).
            style: a style id (see the `styles` command) whose template wraps the prompt; "" for none.
            transparent: "" opaque; "difference": an RGBA PNG by difference matting (2 calls); "key": 1 call, keyed.
            kit: your kit of named reference images, "NAME" (newest version) or "NAME@3"; "" for none.
            api_key: your own Gemini API key, used for this request only and never stored; needed on a public demo.
        """
        form = FormSettings(model, aspect_ratio, size, temperature, top_p, top_k, seed, count, output,
                            thinking, show_thoughts, search, image_search)
        return await self._make(Mode.GENERATE, prompt, (), form, session, progress, api_key, request, extras,
                                craft=(style, variables),
                                transparent=transparent, kit=kit)

    async def edit(self, image: str | None, prompt: str, model: str = "", aspect_ratio: str = AUTO, size: str = "",
                   temperature: float = 1.0, top_p: float = 0.95, top_k: int = 0, seed: int = -1, count: int = 1,
                   output: str = IMAGE_AND_TEXT, thinking: str = "", show_thoughts: bool = False,
                   search: bool = False, image_search: bool = False, mask: str | None = None, style: str = "",
                   transparent: str = "", kit: str = "",
                   api_key: str = "", session: Session | None = None, request: gr.Request | None = None,
                   progress: gr.Progress = gr.Progress(),  # noqa: B008
                   *, extras: PageExtras | None = None, feather: int | None = None, extend_to: str | None = None,
                   anchor: str | None = None, variables: dict[str, str] | None = None) -> Outputs:
        """Edit one image as the prompt says (change, add or remove things, restyle); returns the new PNG files.

        Each result comes with a status line: cost (or "cached · $0"), finish reason and the model's words.
        With a mask, only the mask's white area changes (thresholded at 50% grey, an 8-pixel soft edge outside it):
        every other pixel comes back byte-identical and the output keeps the image's size and mode. A mask of another
        size, an empty or full mask, or a file that is not an image is refused before any call.

        Args:
            image: the image to edit (PNG, JPEG or WebP).
            prompt: the change to make, e.g. "make the sky stormy" or "remove the person on the left".
            model: Gemini image model id, e.g. "gemini-3-pro-image" (Nano Banana Pro); "" for the default.
            aspect_ratio: width:height such as "1:1" or "16:9"; "auto" keeps the input image's shape.
            size: "512", "1K", "2K" or "4K" as the model offers ("" for its default); others are refused, unsent.
            temperature: randomness, 0 to 2 (1.0 by default); lower stays closer to the prompt.
            top_p: nucleus sampling, 0 to 1 (0.95 by default).
            top_k: top-k sampling; 0 for the model's default.
            seed: a number to make results more repeatable (best effort); -1 for none.
            count: how many images to make, 1 to 4, as parallel calls (each one is a paid request).
            output: "Image + text" (the model may add a few words) or "Image only".
            thinking: the thinking level, "minimal" or "high", on models that have it (3.1 Flash); "" for the default.
            show_thoughts: also return the model's interim thought images (free; shown, never saved as outputs).
            search: ground the image in Google Search (Pro and 3.1 Flash); the sources come back with it.
            image_search: Google image search as well as web search (3.1 Flash only; implies search).
            mask: optional image file of the image's size, white where it may change; None for a plain edit.
            style: a style id (see the `styles` command) whose template wraps the prompt; "" for none.
            transparent: "" opaque; "difference": an RGBA PNG by difference matting (2 calls); "key": 1 call, keyed.
            kit: your kit of named reference images, "NAME" (newest version) or "NAME@3"; "" for none.
            api_key: your own Gemini API key, used for this request only and never stored; needed on a public demo.
        """
        form = FormSettings(model, aspect_ratio, size, temperature, top_p, top_k, seed, count, output,
                            thinking, show_thoughts, search, image_search)
        # feather, extend_to and anchor (keyword-only: not API parameters) come from the page's region controls.
        region = {"mask": mask or None, "feather": feather, "extend_to": extend_to, "anchor": anchor}
        return await self._make(Mode.EDIT, prompt, (image,) if image else (), form, session, progress, api_key, request,
                                extras, region=region, craft=(style, variables),
                                transparent=transparent, kit=kit)

    async def compose(self, images: list | None, prompt: str, model: str = "", aspect_ratio: str = AUTO,
                      size: str = "", temperature: float = 1.0, top_p: float = 0.95, top_k: int = 0, seed: int = -1,
                      count: int = 1, output: str = IMAGE_AND_TEXT, thinking: str = "",
                      show_thoughts: bool = False, search: bool = False, image_search: bool = False,
                      style: str = "", transparent: str = "", kit: str = "", api_key: str = "",
                      session: Session | None = None,
                      request: gr.Request | None = None, progress: gr.Progress = gr.Progress(),  # noqa: B008
                      *, extras: PageExtras | None = None, variables: dict[str, str] | None = None) -> Outputs:
        """Make one image from several input images as the prompt says; returns the new PNG files.

        For example a product placed into a scene, or a person wearing a given outfit. Each result comes with a
        status line: cost (or "cached · $0"), finish reason and the model's words.

        Args:
            images: 2 or more input images, in the order the prompt names them; at most 3 (Nano Banana) or 14.
            prompt: how to combine them, e.g. "the cat from the first image wearing the hat from the second".
            model: Gemini image model id, e.g. "gemini-3-pro-image" (Nano Banana Pro); "" for the default.
            aspect_ratio: width:height such as "1:1" or "16:9"; "auto" for the model's default.
            size: "512", "1K", "2K" or "4K" as the model offers ("" for its default); others are refused, unsent.
            temperature: randomness, 0 to 2 (1.0 by default); lower stays closer to the prompt.
            top_p: nucleus sampling, 0 to 1 (0.95 by default).
            top_k: top-k sampling; 0 for the model's default.
            seed: a number to make results more repeatable (best effort); -1 for none.
            count: how many images to make, 1 to 4, as parallel calls (each one is a paid request).
            output: "Image + text" (the model may add a few words) or "Image only".
            thinking: the thinking level, "minimal" or "high", on models that have it (3.1 Flash); "" for the default.
            show_thoughts: also return the model's interim thought images (free; shown, never saved as outputs).
            search: ground the image in Google Search (Pro and 3.1 Flash); the sources come back with it.
            image_search: Google image search as well as web search (3.1 Flash only; implies search).
            style: a style id (see the `styles` command) whose template wraps the prompt; "" for none.
            transparent: "" opaque; "difference": an RGBA PNG by difference matting (2 calls); "key": 1 call, keyed.
            kit: your kit of named reference images, "NAME" (newest version) or "NAME@3"; "" for none.
            api_key: your own Gemini API key, used for this request only and never stored; needed on a public demo.
        """
        form = FormSettings(model, aspect_ratio, size, temperature, top_p, top_k, seed, count, output,
                            thinking, show_thoughts, search, image_search)
        return await self._make(Mode.COMPOSE, prompt, gallery_paths(images), form, session, progress, api_key, request,
                                extras, craft=(style, variables),
                                transparent=transparent, kit=kit)

    async def refine(self, parent_id: str, instruction: str, model: str = "", aspect_ratio: str = AUTO,
                     size: str = "", temperature: float = 1.0, top_p: float = 0.95, top_k: int = 0, seed: int = -1,
                     count: int = 1, output: str = IMAGE_AND_TEXT, thinking: str = "", show_thoughts: bool = False,
                     search: bool = False, image_search: bool = False, style: str = "", kit: str = "",
                     api_key: str = "",
                     session: Session | None = None, request: gr.Request | None = None,
                     progress: gr.Progress = gr.Progress()) -> Outputs:  # noqa: B008
        """Refine an earlier result by its id: the whole conversation path is sent, then the instruction.

        Returns the new PNG file(s) and a status line per image (turn number, cost, finish reason). The new image
        is a child of `parent_id`; `count` > 1 makes that many branches from the same turn. Input tokens grow with
        the path. An unknown id (or, on a public demo, another visitor's) is refused before any call.

        Args:
            parent_id: the history id of the result to refine (the `id` a result's record gives).
            instruction: the change to make, e.g. "make it night" or "add a full moon".
            model: Gemini image model id; "" keeps the parent's model.
            aspect_ratio: width:height such as "1:1" or "16:9"; "auto" keeps the parent's.
            size: "512", "1K", "2K" or "4K" as the model offers; "" keeps the parent's.
            temperature: randomness, 0 to 2 (1.0 by default); lower stays closer to the prompt.
            top_p: nucleus sampling, 0 to 1 (0.95 by default).
            top_k: top-k sampling; 0 for the model's default.
            seed: a number to make results more repeatable (best effort); -1 for none.
            count: how many branches to make, 1 to 4, as parallel calls (each one is a paid request).
            output: "Image + text" (the model may add a few words) or "Image only".
            thinking: the thinking level, "minimal" or "high", on models that have it (3.1 Flash); "" for the default.
            show_thoughts: also return the model's interim thought images (free; shown, never saved as outputs).
            search: ground the image in Google Search (Pro and 3.1 Flash); the sources come back with it.
            image_search: Google image search as well as web search (3.1 Flash only; implies search).
            style: a style id (see the `styles` command) whose template wraps the instruction; "" for none.
            kit: your kit of reference images for this turn, "NAME" or "NAME@3"; "" for none.
            api_key: your own Gemini API key, used for this request only and never stored; needed on a public demo.
        """
        studio = self.studio_for(api_key, request)
        form = FormSettings(model, aspect_ratio, size, temperature, top_p, top_k, seed, count, output,
                            thinking, show_thoughts, search, image_search)
        count = form.image_count()
        if not 1 <= count <= MAX_UI_COUNT:
            raise gr.Error(f"The page makes 1 to {MAX_UI_COUNT} images at a time (got {count}); "
                           "the command line's --count goes higher.")
        owner = self.owner_of(request)
        if self.public and owner is None:
            raise gr.Error("Refining needs a visitor session; reload the page and try again.", print_exception=False)
        chosen = (model or "").strip() or None
        with studio_errors(self.public):
            # All checks (the id and its owner, the instruction, the path's length) before any call.
            spec = get_model(chosen or self._parent_model(studio, parent_id, owner))
            crafted = craft_prompt(studio.styles, instruction or "", style=style or None)
            plan = await studio.prepare_refine(parent_id=(parent_id or "").strip(), instruction=crafted.prompt,
                                               model=chosen, options=form.options(spec), owner=owner,
                                               craft=crafted.craft, kit=(kit or "").strip() or None)
        self.count_requests(request, count, studio)
        outcomes: list[ImageResult | StudioError] = []
        async with self.turn(studio, request, progress):
            progress(0.0, desc=f"Turn {plan.turn}: refining...")
            for number in range(count):  # one branch after another (variations 0, 1, ...): children of one parent
                branch = replace(plan, request=plan.request.with_variation(plan.request.options.variation + number))
                try:
                    outcomes.append(await studio.run_refinement(branch, owner=owner, out_dir=self.out_dir(request),
                                                                on_event=lambda line: progress(0.5, desc=line)))
                except StudioError as error:
                    outcomes.append(error)
        results = [outcome for outcome in outcomes if isinstance(outcome, ImageResult)]
        if not results:
            failure = next(o for o in outcomes if isinstance(o, StudioError))
            raise gr.Error(visitor_message(failure, self.public), print_exception=False)
        session = session if session is not None else Session()
        session.record(plan.request, (), count, results)
        progress(1.0, desc="Done")
        status = run_status(outcomes, lambda error: visitor_message(error, self.public))
        ids = ", ".join(result.id for result in results if result.id)  # what a next /refine takes
        return Outputs(list(session.shown), f"{_turn_line(plan, ids)}\n{status}", session)

    async def run_refinement(self, plan: Refinement, session: Session, progress: gr.Progress,
                             owner: str | None = None, studio: Studio | None = None,
                             visitor: gr.Request | None = None) -> Outputs:
        """Send one prepared refinement for a visitor (History's re-run of a refinement: a new branch of its
        parent); the result goes on top of their session. Refused (gr.Error) over the limit, or when it failed."""
        studio = studio or self.studio
        self.count_requests(visitor, 1, studio)
        async with self.turn(studio, visitor, progress):
            progress(0.0, desc=f"Turn {plan.turn}: refining...")
            with studio_errors(self.public):
                result = await studio.run_refinement(plan, owner=owner, out_dir=self.out_dir(visitor),
                                                     on_event=lambda line: progress(0.5, desc=line))
        session.record(plan.request, (), 1, [result])
        progress(1.0, desc="Done")
        status = run_status([result], lambda error: visitor_message(error, self.public))
        return Outputs(list(session.shown), f"{_turn_line(plan, result.id or '')}\n{status}", session)

    @staticmethod
    def _parent_model(studio: Studio, parent_id: str, owner: str | None) -> str:
        """The model of the entry being refined (its options are judged against it), or the default."""
        try:
            return studio.conversation_path((parent_id or "").strip(), owner=owner)[-1].model
        except StudioError:
            return studio.settings.model  # prepare_refine then says what is wrong with the id

    async def new_variation(self, session: Session | None, api_key: str = "", request: gr.Request | None = None,
                            progress: gr.Progress = gr.Progress()) -> Outputs:  # noqa: B008
        """Run the last request again under the next variation numbers: new images, never the cached ones."""
        studio = self.studio_for(api_key, request)
        if session is None or session.last_request is None:
            raise gr.Error("Nothing to vary yet: make an image first, then ask for a new variation.")
        image_request = session.last_request.with_variation(session.next_variation)
        return await self.run(image_request, session.last_inputs, session.last_count, session, progress,
                              owner=self.owner_of(request), studio=studio, visitor=request,
                              transparency=session.last_transparent)

    async def _make(self, mode: Mode, prompt: str | None, inputs: tuple[str, ...], form: FormSettings,
                    session: Session | None, progress: gr.Progress, api_key: str = "",
                    request: gr.Request | None = None, extras: PageExtras | None = None,
                    region: dict[str, Any] | None = None,
                    craft: tuple[str | None, dict[str, str] | None] = (None, None),
                    transparent: str = "", kit: str = "") -> Outputs:
        studio = self.studio_for(api_key, request)  # first: without a key, nothing else happens
        count = form.image_count()
        if not 1 <= count <= MAX_UI_COUNT:
            raise gr.Error(f"The page makes 1 to {MAX_UI_COUNT} images at a time (got {count}); "
                           "the command line's --count goes higher.")
        model = form.model_id(self.studio.settings.model)
        with studio_errors(self.public):
            # Everything that can be checked is checked here, before any call (prompt, images, options, limits).
            # The page's extras (keep metadata, Vertex output controls); an API call's request uses the setting.
            options = form.options(get_model(model))
            style, variables = craft  # the prompt's {variables} filled, then the style's template around it
            crafted = craft_prompt(studio.styles, prompt or "", style=style or None, variables=variables)
            # Decoding and re-encoding the uploads: on the CPU pool, not the event loop (docs/crowds.md).
            image_request = await on_cpu(functools.partial(
                studio.build_request, mode, crafted.prompt, inputs, model=model, craft=crafted.craft,
                options=extras.apply(options) if extras else options,
                keep_metadata=extras.keep_metadata if extras else None,
                store=extras.store if extras else None,
                kit=(kit or "").strip() or None, owner=self.owner_of(request), **(region or {})))
            transparency = parse_transparent(transparent)
            if transparency is not None:  # refused here, before any call (a region, JPEG, matting on Lite)
                check_transparency(image_request, transparency)
        return await self.run(image_request, inputs, count, session if session is not None else Session(), progress,
                              owner=self.owner_of(request), studio=studio, visitor=request, transparency=transparency)

    async def run(self, request: ImageRequest, inputs: tuple[str, ...], count: int, session: Session,
                  progress: gr.Progress, owner: str | None = None, studio: Studio | None = None,
                  visitor: gr.Request | None = None, transparency: Transparency | None = None) -> Outputs:
        """Run a built request `count` times (parallel variations) for a visitor, with progress; the results go
        on top of their session. Refused (gr.Error) over the visitor's limit, or when every call failed.
        With `transparency`, each image is a transparent PNG (one or two calls each: service.transparency)."""
        studio = studio or self.studio
        self.count_requests(visitor, count * (transparency.calls if transparency else 1), studio)
        label = get_model(request.model).label.split(" (")[0]
        finished: list[ImageResult | StudioError] = []

        def one_more(outcome: ImageResult | StudioError) -> None:
            finished.append(outcome)
            if count > 1:
                progress(len(finished) / count, desc=f"{len(finished)} of {count} images done")

        def waiting_or_retrying(line: str) -> None:  # "waiting for rate limit: 12 s", "retrying in 4.2 s ..."
            progress(len(finished) / count, desc=line)

        async with self.turn(studio, visitor, progress):
            progress(0.0, desc=f"{label}: making {'an image' if count == 1 else f'{count} images in parallel'}...")
            with studio_errors(self.public):
                if transparency is not None:
                    outcomes = await transparent_variations(studio, request, transparency, count, on_result=one_more,
                                                            on_event=waiting_or_retrying, owner=owner,
                                                            out_dir=self.out_dir(visitor))
                else:
                    outcomes = await studio.run_variations(request, count, on_result=one_more,
                                                           on_event=waiting_or_retrying, owner=owner,
                                                           out_dir=self.out_dir(visitor))
        results = [outcome for outcome in outcomes if isinstance(outcome, ImageResult)]
        failures = [outcome for outcome in outcomes if isinstance(outcome, StudioError)]
        if not results:
            raise gr.Error(visitor_message(failures[0], self.public), print_exception=False)
        if failures:
            gr.Warning(f"{len(failures)} of {count} images failed: {visitor_message(failures[0], self.public)}")
        session.record(request, inputs, count, results)
        session.last_transparent = transparency
        progress(1.0, desc="Done")
        status = run_status(list(outcomes), lambda error: visitor_message(error, self.public))
        # The notes: a replaced model id, and a model that answered 404 and was sent as its successor.
        notes = dict.fromkeys([request.note, *(result.request.note for result in results)])
        made = [describe_transparent(result.transparent) for result in results if result.transparent]
        status = "\n".join(filter(None, [*notes, status, *made]))
        return Outputs(list(session.shown), status, session)
