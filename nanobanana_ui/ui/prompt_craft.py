"""The Studio tab's prompt craft panel: a searchable style picker, one field per {variable}, a preview of the prompt
that will be sent, Enhance (with Accept and Undo), Describe an image, and Save as style.

The runs of the Studio tab read the picker (the style id) and one gr.State of the variables' values by name (`inputs`),
and send the values of the variables the run's own prompt holds.
"""

from __future__ import annotations

import re
from typing import Any

import gradio as gr

from ..domain.errors import StudioError
from ..domain.styles import StyleBook, craft_prompt, save_user_style
from ..domain.templates import TemplateError, parse_template
from ..service.prompt_craft import PromptCrafter
from .actions import no_change, refusals_as_warnings, refuse
from .runner import Runner
from .runner_base import studio_errors

__all__ = ["MAX_VARIABLES", "PromptCraftPanel", "craft_arguments", "style_choices"]

MAX_VARIABLES = 8  # fields shown for a prompt's {variables}; a prompt with more is refused when run
NO_STYLE = ""
PRIVATE: dict[str, Any] = {"api_visibility": "private"}


def style_choices(book: StyleBook) -> list[tuple[str, str]]:
    """The picker's choices, "(none)" first, then "Name · category" for each style (the id is the value)."""
    return [("(no style)", NO_STYLE), *((f"{s.name} · {s.category}" + (" · yours" if s.source == "user" else ""),
                                         s.id) for s in book.styles)]


def _variables(prompt: str | None) -> tuple[str, ...]:
    try:
        return parse_template(prompt or "").variables
    except TemplateError:
        return ()


def craft_arguments(prompt: str | None, style: str | None, values: dict[str, str] | None) -> dict[str, Any]:
    """The Runner's `style` and `variables` for a run of this prompt: only the values its own {variables} need."""
    values = values or {}
    return {"style": style or "", "variables": {name: values.get(name, "") for name in _variables(prompt)}}


class PromptCraftPanel:
    """The panel's components (layout) and events (wire), acting on the Generate prompt; style and variables apply
    to every run of the Studio tab."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def layout(self) -> None:
        """Lay out the panel (inside the Studio tab's left column)."""
        book = self.runner.studio.styles
        self.values = gr.State({})  # the variables' values by name (kept when the prompt changes)
        self.original = gr.State(("", NO_STYLE))  # the prompt and style before Accept, for Undo
        with gr.Accordion("Prompt craft: style, variables, enhance", open=True, elem_id="prompt-craft"):
            self.style = gr.Dropdown(style_choices(book), value=NO_STYLE, label="Style (type to search)",
                                     filterable=True, elem_id="style-picker")
            self.style_info = gr.Markdown("", elem_id="style-info")
            with gr.Row(elem_id="variable-fields"):
                self.fields = [gr.Textbox(label=f"variable {n + 1}", visible=False, elem_id=f"variable-{n}",
                                          max_lines=1) for n in range(MAX_VARIABLES)]
            self.preview = gr.Textbox(label="Prompt that will be sent (Generate)", interactive=False, lines=3,
                                      elem_id="prompt-preview")
            with gr.Row():
                self.enhance_button = gr.Button("Enhance", size="sm", elem_id="enhance-button")
                self.describe_button = gr.Button("Describe the Edit image", size="sm", elem_id="describe-button")
            with gr.Group(visible=False, elem_id="enhanced-box") as self.enhanced_box:
                with gr.Row():
                    self.before = gr.Textbox(label="Original", interactive=False, lines=4, elem_id="enhance-before")
                    self.after = gr.Textbox(label="Rewrite", lines=4, elem_id="enhance-after")
                self.enhance_status = gr.Markdown("", elem_id="enhance-status")
                with gr.Row():
                    self.accept = gr.Button("Accept", size="sm", variant="primary", elem_id="enhance-accept")
                    self.dismiss = gr.Button("Dismiss", size="sm", elem_id="enhance-dismiss")
            self.undo = gr.Button("Undo", size="sm", visible=False, elem_id="enhance-undo")
            with gr.Row():
                self.style_name = gr.Textbox(label="Save the Generate prompt as a style", placeholder="Style name",
                                             max_lines=1, elem_id="style-name", scale=3)
                self.save_style = gr.Button("Save as style", size="sm", elem_id="save-style", scale=1)

    @property
    def inputs(self) -> list[Any]:
        """What a run reads: the style picker and the variables' values."""
        return [self.style, self.values]

    def wire(self, prompt: gr.Textbox, edit_image: gr.Image, api_key: gr.Textbox) -> None:
        """Connect the panel to the Generate prompt, the Edit image and the key."""
        views = [*self.fields, self.preview]
        prompt.change(self.prompt_changed, [prompt, self.style, self.values], views, **PRIVATE)
        self.style.change(self.style_changed, [prompt, self.style, self.values], [self.style_info, self.preview],
                          **PRIVATE)
        for index, field in enumerate(self.fields):
            field.change(self.field_changer(index), [prompt, field, self.style, self.values],
                        [self.values, self.preview], **PRIVATE)
        self.enhance_button.click(self.enhance, [prompt, self.style, self.values, api_key],
                                  [self.enhanced_box, self.before, self.after, self.enhance_status], **PRIVATE)
        self.describe_button.click(self.describe, [edit_image, api_key],
                                   [self.enhanced_box, self.before, self.after, self.enhance_status], **PRIVATE)
        self.accept.click(self.accepted, [prompt, self.style, self.after],
                          [prompt, self.original, self.enhanced_box, self.undo, self.style], **PRIVATE)
        self.dismiss.click(lambda: gr.update(visible=False), None, [self.enhanced_box], **PRIVATE)
        self.undo.click(self.undone, [self.original], [prompt, self.undo, self.style], **PRIVATE)
        self.save_style.click(self.saved, [prompt, self.style_name], [self.style, self.style_name], **PRIVATE)

    # -- handlers --------------------------------------------------------------------------------------------

    def _preview(self, prompt: str | None, style: str | None, values: dict[str, str] | None) -> str:
        """The final prompt, or why it cannot be sent yet."""
        if not (prompt or "").strip():
            return ""
        arguments = craft_arguments(prompt, style, values)
        missing = [name for name, value in arguments["variables"].items() if not value.strip()]
        if missing:
            return "⚠ Fill in " + ", ".join("{" + name + "}" for name in missing) + " above."
        try:
            return craft_prompt(self.runner.studio.styles, prompt or "", style=arguments["style"] or None,
                                variables=arguments["variables"]).prompt
        except TemplateError as error:
            return f"⚠ {error.message}"

    def prompt_changed(self, prompt: str | None, style: str | None, values: dict[str, str] | None) -> list[Any]:
        """One field per {variable} of the prompt (values kept by name), and the preview."""
        names = _variables(prompt)[:MAX_VARIABLES]
        values = values or {}
        fields = [gr.update(visible=True, label=f"{{{names[n]}}}", value=values.get(names[n], ""))
                  if n < len(names) else gr.update(visible=False) for n in range(MAX_VARIABLES)]
        return [*fields, self._preview(prompt, style, values)]

    def style_changed(self, prompt: str | None, style: str | None,
                      values: dict[str, str] | None) -> tuple[str, str]:
        """The chosen style: its description and suggestions, and the new preview."""
        chosen = self.runner.studio.styles.find(style) if style else None
        info = ""
        if chosen is not None:
            hints = ", ".join(filter(None, [chosen.model and f"model {chosen.model}",
                                            chosen.aspect_ratio and f"aspect ratio {chosen.aspect_ratio}"]))
            info = f"{chosen.description}" + (f" Suggested: {hints}." if hints else "")
        return info, self._preview(prompt, style, values)

    def field_changer(self, index: int) -> Any:
        """The handler of variable field `index`: its value kept under its variable's name."""
        def changed(prompt: str | None, value: str, style: str | None,
                    values: dict[str, str] | None) -> tuple[dict[str, str], str]:
            names = _variables(prompt)
            values = dict(values or {})
            if index < len(names):
                values[names[index]] = value
            return values, self._preview(prompt, style, values)
        return changed

    async def enhance(self, prompt: str | None, style: str | None, values: dict[str, str] | None, api_key: str = "",
                      request: gr.Request | None = None) -> Any:
        """Enhance clicked: the rewrite (of the prompt with its variables filled, in the style) beside the original,
        with its cost; or why not (the prompt is kept)."""
        with refusals_as_warnings():
            studio = self.runner.studio_for(api_key, request)
            with studio_errors(self.runner.public):
                idea = craft_prompt(studio.styles, prompt or "",
                                    variables=craft_arguments(prompt, style, values)["variables"]).prompt
                crafter = PromptCrafter(studio)
                text_request = crafter.enhance_request(idea, style=style or None)
                self.runner.count_requests(request, 1)
                result = await crafter.run(text_request, owner=self.runner.owner_of(request))
            return self._shown(prompt or "", result.prompt, result.request.model, result.cost_usd, result.cached)
        return no_change()

    async def describe(self, image: str | None, api_key: str = "", request: gr.Request | None = None) -> Any:
        """Describe clicked: a prompt that would remake the Edit image, offered like a rewrite; or why not."""
        with refusals_as_warnings():
            if not image:
                raise refuse("Upload an image in the Edit tab first, then Describe it.")
            studio = self.runner.studio_for(api_key, request)
            self.runner.count_requests(request, 1)
            with studio_errors(self.runner.public):
                result = await PromptCrafter(studio).describe((image,), owner=self.runner.owner_of(request))
            return self._shown("(the Edit image)", result.prompt, result.request.model, result.cost_usd,
                               result.cached)
        return no_change()

    @staticmethod
    def _shown(before: str, after: str, model: str, cost: float | None, cached: bool) -> list[Any]:
        money = "cached · $0" if cached else ("$?" if cost is None else f"${cost:.6f}")
        return [gr.update(visible=True), before, after, f"{model} · {money}"]

    @staticmethod
    def accepted(prompt: str | None, style: str | None, rewrite: str | None) -> list[Any]:
        """Accept: the rewrite becomes the Generate prompt, and the style is cleared (the rewrite is written in it
        already, and would be wrapped twice); Undo brings both back."""
        if not (rewrite or "").strip():
            return [no_change(), no_change(), gr.update(visible=False), no_change(), no_change()]
        # The rewrite is text, not a template: its braces are sent as they are.
        literal = (rewrite or "").replace("{", "{{").replace("}", "}}")
        return [literal, (prompt or "", style or NO_STYLE), gr.update(visible=False), gr.update(visible=True),
                NO_STYLE]

    @staticmethod
    def undone(original: tuple[str, str] | None) -> list[Any]:
        """Undo: the prompt and style as they were before Accept."""
        prompt, style = original or ("", NO_STYLE)
        return [prompt, gr.update(visible=False), style]

    def saved(self, prompt: str | None, name: str | None) -> Any:
        """Save as style: the Generate prompt becomes a user style (`{prompt}, ...` unless it holds {prompt})."""
        with refusals_as_warnings():
            studio = self.runner.studio
            if self.runner.public:
                raise refuse("On a public demo the style library is shared: styles cannot be saved here.")
            text, label = (prompt or "").strip(), (name or "").strip()
            if not text or not label:
                raise refuse("Type a prompt and a name for the style first.")
            style_id = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "style"
            template = text if "{prompt}" in text else "{prompt}, " + text.replace("{", "{{").replace("}", "}}")
            try:
                style = save_user_style(studio.settings.home, style_id=style_id, name=label, category="yours",
                                        template=template, description=f"Saved from the page: {text[:80]}")
            except (StudioError, OSError) as error:
                raise refuse(f"Could not save the style: {getattr(error, 'message', error)}") from None
            gr.Info(f"Saved style {style.id!r} in {studio.settings.home / 'styles.json'}.")
            return [gr.update(choices=style_choices(studio.styles), value=style.id), ""]
        return no_change()
