"""The Edit tab's region controls: paint the region to change, feather, extend the canvas; and the before/after slider.

The image to edit stays in the tab's own `edit image` input (uploads, Send to Edit, Reuse and the refusal of a file
that is not an image all work on it as before). Below it, "Paint a region (optional)" is a `gr.ImageEditor` whose
background follows that input: the visitor paints the region with the brush (and takes strokes back with the
eraser). Nothing painted is a plain edit, exactly as before. What is painted, on any layer, becomes the mask (white =
the region), written as a PNG into a temporary folder of the request's own, and handed to the Studio through the
same `mask` the CLI's `--mask` and the API's /edit use; the Studio judges it (empty, full, wrong size) before any call.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.components import Component
from PIL import Image, ImageChops

from ..domain.errors import StudioError
from ..domain.models import ModelSpec
from ..domain.request import Mode
from ..imaging import images
from ..imaging.images import open_oriented, to_8bit
from ..service.regions import ANCHORS, DEFAULT_FEATHER, MAX_FEATHER
from .session import Session

__all__ = ["EDITOR_SIDE", "NO_EXTEND", "PAINTED_ALPHA", "RegionPanel", "before_after", "editor_background",
           "extend_choices", "painted_mask", "region_arguments", "upright_size"]

NO_EXTEND = "none"  # the extend picker's "do not extend" value
EDITOR_SIDE = 1024  # px: the painting canvas's longest side; a larger image is shown smaller, its mask scaled back
# The brush paints at half opacity, so the picture stays visible under the strokes; its layer pixels then hold alpha
# ~127. A pixel is in the region from alpha 64 up: the strokes' soft rims below that are left out, like the CLI's
# threshold at 50% of the brush.
PAINTED_ALPHA = 64
BRUSH_COLOUR = ("rgb(255, 0, 160)", 0.5)


def extend_choices(spec: ModelSpec) -> list[tuple[str, str]]:
    """(label, value) pairs for the extend picker: do not extend, then the model's aspect ratios."""
    return [("Don't extend", NO_EXTEND), *((ratio, ratio) for ratio in spec.aspect_ratios)]


def upright_size(path: str) -> tuple[int, int] | None:
    """An image file's width and height once its EXIF orientation is applied (None when it cannot be read)."""
    try:
        return images.upright_size(Path(path).read_bytes())
    except (StudioError, OSError):
        return None  # the upload's own handler says what is wrong with it


def editor_background(path: str | None) -> Image.Image | None:
    """The picture to paint on for the image to edit: upright, 8-bit, at most EDITOR_SIDE px (None: nothing)."""
    if not path:
        return None
    try:
        im = open_oriented(Path(path).read_bytes(), Path(path).name)
    except (StudioError, OSError):
        return None  # the upload's own handler says what is wrong with it
    if im.mode.startswith("I") or im.mode == "F":
        im = to_8bit(im)  # 16-bit or float: as the Studio sends it
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGBA")
    if max(im.size) > EDITOR_SIDE:
        im = im.copy()
        im.thumbnail((EDITOR_SIDE, EDITOR_SIDE), Image.Resampling.BILINEAR)
    return im


def painted_mask(value: Mapping[str, Any] | None, size: tuple[int, int] | None) -> Image.Image | None:
    """The editor's painted strokes, on every layer, as an 'L' mask of `size` (255 = the region); None when nothing
    is painted (a plain edit). Strokes too faint to count give an empty mask, which the Studio refuses (it says so).

    The editor's canvas is the picture shown (perhaps smaller than the image): a mask of the same shape is scaled up
    to the image's size; one of another shape is left as painted, for the Studio to refuse as the wrong size.
    """
    layers = [layer for layer in (value or {}).get("layers") or [] if isinstance(layer, Image.Image)]
    region: Image.Image | None = None
    touched = False
    for layer in layers:
        alpha = layer.convert("RGBA").getchannel("A")
        touched = touched or alpha.getbbox() is not None
        alpha = alpha.point(lambda v: 255 if v >= PAINTED_ALPHA else 0)
        if region is not None and alpha.size != region.size:
            alpha = alpha.resize(region.size, Image.Resampling.NEAREST)
        region = alpha if region is None else ImageChops.lighter(region, alpha)  # the union of the layers
    if region is None or not touched:
        return None
    if size and region.size != size and _same_shape(region.size, size):
        region = region.resize(size, Image.Resampling.NEAREST)
    return region


def _same_shape(a: tuple[int, int], b: tuple[int, int]) -> bool:
    # The canvas is the picture scaled to whole pixels: its ratio may be off by a pixel's worth on either side.
    return abs(a[0] * b[1] - a[1] * b[0]) <= max(b[0], b[1])


@contextmanager
def region_arguments(image: str | None, painted: Mapping[str, Any] | None, feather: float | None,
                     extend_to: str | None, anchor: str | None) -> Iterator[dict[str, Any]]:
    """The Runner's region keywords (mask, feather, extend_to, anchor) for the Edit tab's controls.

    A painted mask is written as a PNG into a temporary folder of this request's own (never shared between
    visitors), removed as soon as the edit has run: the Studio keeps what it needs (the mask's bytes) in the history.
    Nothing painted and no extend: no region keywords at all, a plain edit.
    """
    extend = None if not extend_to or extend_to == NO_EXTEND else extend_to
    mask = painted_mask(painted, upright_size(image) if image else None)
    if mask is None and extend is None:
        yield {}
        return
    px = DEFAULT_FEATHER if feather is None else round(feather)
    with tempfile.TemporaryDirectory(prefix="nanobanana-mask-") as folder:
        path = None
        if mask is not None:
            path = str(Path(folder) / "painted-region.png")  # the name the Studio's messages give it
            mask.save(path, "PNG")
        yield {"mask": path, "feather": px, "extend_to": extend, "anchor": (anchor or "center") if extend else None}


def before_after(session: Session) -> Any:
    """The slider's update for a run: the edit's input and first output, or hidden for anything but an edit."""
    request, inputs, shown = session.last_request, session.last_inputs, session.shown
    if request is None or request.mode is not Mode.EDIT or not inputs or not shown:
        return gr.update(value=None, visible=False)
    return gr.update(value=(inputs[0], shown[0]), visible=True)


class RegionPanel:
    """The Edit tab's region controls (`layout`), their events (`wire`), and the before/after slider."""

    def layout(self, spec: ModelSpec) -> None:
        """The painting canvas, the feather, the extend picker and its anchor (call inside the Edit tab)."""
        with gr.Accordion("Region: paint what may change, or extend the canvas (optional)", open=True,
                          elem_id="region-panel"):
            self.editor = gr.ImageEditor(
                label="Paint a region (optional): only the painted area changes, the rest stays byte-identical",
                type="pil", image_mode="RGBA", format="png", sources=[], transforms=[], layers=False,
                brush=gr.Brush(colors=[BRUSH_COLOUR], color_mode="fixed", default_size="auto"),
                eraser=gr.Eraser(default_size="auto"), buttons=["fullscreen"], height=420,
                placeholder="Upload the image to edit above, then paint here the region to change.",
                elem_id="region-editor")
            with gr.Row():
                self.feather = gr.Slider(0, MAX_FEATHER, value=DEFAULT_FEATHER, step=1, precision=0,
                                         label="Feather (px)",
                                         info="Soft edge blended outside the painted region or the original",
                                         elem_id="region-feather")
                self.extend = gr.Dropdown(extend_choices(spec), value=NO_EXTEND, label="Extend canvas to",
                                          info="The original stays as it is; the model fills the new area. "
                                               "Not with a painted region.", elem_id="region-extend")
            self.anchor = gr.Radio(list(ANCHORS), value="center", label="Where the original sits on the new canvas",
                                   elem_id="region-anchor")

    @property
    def inputs(self) -> list[Component]:
        """The region controls, in the order the Studio tab's edit handler takes them."""
        return [self.editor, self.feather, self.extend, self.anchor]

    def wire(self, edit_image: gr.Image, model: gr.Dropdown, spec_of: Callable[[str], ModelSpec]) -> None:
        """The canvas follows the image to edit; the extend picker follows the model's ratios (`spec_of`: a model
        id, or "" for the default, to its ModelSpec)."""
        self.spec_of = spec_of
        edit_image.change(self.image_changed, [edit_image], [self.editor], api_visibility="private")
        model.change(self.model_picked, [model, self.extend], [self.extend], api_visibility="private")

    def model_picked(self, model: str, extend_to: str | None) -> Any:
        """Another model picked: the extend picker follows its ratios."""
        return self.model_changed(self.spec_of(model), extend_to)

    @staticmethod
    def image_changed(path: str | None) -> Any:
        """A new image to edit: a clean canvas showing it (strokes painted on the last one are gone)."""
        background = editor_background(path)
        if background is None:
            return None
        return {"background": background, "layers": [], "composite": None}

    @staticmethod
    def model_changed(spec: ModelSpec, extend_to: str | None) -> Any:
        """The extend picker offers the model's ratios; a ratio it lacks goes back to "don't extend"."""
        keep = extend_to if extend_to in spec.aspect_ratios else NO_EXTEND
        return gr.update(choices=extend_choices(spec), value=keep)


def slider_component() -> gr.ImageSlider:
    """The before/after slider under the result (hidden until an edit has run)."""
    return gr.ImageSlider(label="Before / after (drag to compare)", type="filepath", format="png", visible=False,
                          interactive=False, buttons=["fullscreen"], max_height=720, elem_id="before-after")

