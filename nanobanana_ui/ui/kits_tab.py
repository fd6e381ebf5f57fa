"""The Kits tab: make a kit from uploads or History entries, see its versions, change it, export, import, use it.

Every change writes the kit's next version (service/kits.py); in public mode a visitor sees and changes only their own
kits (the Runner's owner, as for the history).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from ..domain.kits import ROLES
from ..service.kits import KitLibrary, NewReference
from ..storage.history.kits import KitRow, StoredKit
from .actions import refuse
from .exports import export_path
from .history_library import Browse, Library
from .history_tab import PRIVATE
from .runner import Runner
from .runner_base import studio_errors

__all__ = ["KitsTab"]

_NOTHING = "Pick a kit, or type a new name and add images to make one."


def _paths(files: Sequence[Any] | None) -> list[str]:
    """The uploaded files' paths (Gradio gives str paths, or dicts/objects with a `path`)."""
    found = []
    for item in files or ():
        path = item if isinstance(item, str) else getattr(item, "path", None) or (
            item.get("path") if isinstance(item, dict) else None)
        if path:
            found.append(str(path))
    return found


def describe(kit: StoredKit | None) -> str:
    """The kit's version and its references, as the tab shows them."""
    if kit is None:
        return _NOTHING
    lines = [f"**{kit.name}@{kit.version}** · {len(kit.references)} reference(s) · made {kit.created[:19]}"]
    if kit.text:
        lines.append(f"Text sent with every request: {kit.text}")
    lines += [f"{n}. **{r.name}** ({r.role}){' · ' + r.guidance if r.guidance else ''}"
              for n, r in enumerate(kit.references, start=1)]
    return "\n\n".join(lines)


class KitsTab:
    """The Kits tab's components and events, over the Runner's Studio (the visitor's own kits in public mode)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def kits(self) -> KitLibrary:
        """The data directory's kits."""
        return self.runner.studio.kits

    # -- layout ----------------------------------------------------------------------------------------------

    def layout(self) -> gr.Tab:
        """A kit picker and its versions, its references as thumbnails, and the controls that change it."""
        with gr.Tab("Kits", id="kits", elem_id="kits-tab") as self.tab:
            with gr.Row():
                with gr.Column(scale=3):
                    with gr.Row():
                        self.pick = gr.Dropdown([""], value="", label="Kit (pick one, or type a new name)",
                                                allow_custom_value=True, elem_id="kits-pick", scale=3)
                        self.version = gr.Dropdown([], value=None, label="Version", elem_id="kits-version", scale=1)
                    self.gallery = gr.Gallery(label="References, in the order they are sent", columns=5, height=260,
                                              interactive=False, allow_preview=False, elem_id="kits-gallery")
                    self.details = gr.Markdown(_NOTHING, elem_id="kits-details")
                    self.use = gr.Button("Use in Studio", elem_id="kits-use")
                with gr.Column(scale=2):
                    self.upload = gr.File(label="Images to add (uploads, or History's Add to kit)",
                                          file_count="multiple", file_types=["image"], type="filepath",
                                          elem_id="kits-upload")
                    self.role = gr.Radio(list(ROLES), value="object", label="Role", elem_id="kits-role")
                    self.label = gr.Textbox(label="Reference name", placeholder="Mia", elem_id="kits-label",
                                            info="With several images: NAME 1, NAME 2, ...")
                    self.guidance = gr.Textbox(label="Guidance (optional)", elem_id="kits-guidance",
                                               placeholder="always wears the yellow raincoat")
                    self.add = gr.Button("Add to kit", variant="primary", elem_id="kits-add")
                    self.remove_name = gr.Dropdown([], value=None, label="Reference", elem_id="kits-remove-name")
                    with gr.Row():  # each change: the kit's next version
                        self.earlier = gr.Button("◀ Earlier", size="sm", elem_id="kits-earlier")
                        self.later = gr.Button("Later ▶", size="sm", elem_id="kits-later")
                        self.set_role = gr.Button("Set role", size="sm", elem_id="kits-set-role")
                        self.rename = gr.Button("Rename", size="sm", elem_id="kits-rename")
                        self.remove = gr.Button("Remove", size="sm", elem_id="kits-remove")
                    with gr.Row():
                        self.export = gr.Button("Export ZIP", elem_id="kits-export")
                        self.zip = gr.File(label="Kit ZIP (drop one here to import it)", type="filepath",
                                           file_types=[".zip"], elem_id="kits-zip")
        return self.tab

    @property
    def views(self) -> list[Any]:
        """What showing a kit changes."""
        return [self.pick, self.version, self.gallery, self.details, self.remove_name]

    # -- wiring ----------------------------------------------------------------------------------------------

    def wire(self, *, kit_picker: gr.Dropdown, main_tabs: gr.Tabs,
             history: tuple[gr.Button, gr.State, Library] | None = None) -> None:
        """Connect the tab's events; `kit_picker` and `main_tabs` are the Studio's, `history` its Add to kit."""
        self.tab.select(self.show, [self.pick, self.version], self.views, **PRIVATE)
        self.pick.input(self.show, [self.pick], self.views, **PRIVATE)  # the visitor's choices only: no loops
        self.version.input(self.show, [self.pick, self.version], self.views, **PRIVATE)
        self.add.click(self.add_clicked, [self.pick, self.upload, self.role, self.label, self.guidance],
                       [*self.views, self.upload], **PRIVATE)
        self.remove.click(self.remove_clicked, [self.pick, self.remove_name], self.views, **PRIVATE)
        for button, how in ((self.earlier, "earlier"), (self.later, "later"), (self.set_role, "role"),
                            (self.rename, "rename")):
            button.click(self.rearranger(how), [self.pick, self.remove_name, self.role, self.label], self.views,
                         **PRIVATE)
        self.export.click(self.export_clicked, [self.pick, self.version], [self.zip], **PRIVATE)
        self.zip.upload(self.import_uploaded, [self.zip], self.views, **PRIVATE)
        self.use.click(self.use_clicked, [self.pick, self.version], [kit_picker, main_tabs], **PRIVATE)
        if history is not None:
            button, browse, library = history

            def from_history(chosen: Browse, files: list[Any] | None, request: gr.Request) -> Any:
                return self.add_from_history(library, chosen, files, request)

            button.click(from_history, [browse, self.upload], [self.upload, main_tabs], **PRIVATE)

    # -- handlers --------------------------------------------------------------------------------------------

    def show(self, name: str | None, version: int | str | None = None,
             request: gr.Request | None = None) -> dict[Any, Any]:
        """The picked kit at the picked version (default: its newest), and the visitor's kits as choices."""
        owner = self.runner.owner_of(request)
        names = [n for n, _ in self.kits().names(owner=owner)]
        name = (name or "").strip()
        kit = self.kits().store.get(name, int(version) if version else None, owner=owner) if name else None
        versions = self.kits().store.versions(name, owner=owner) if name else []
        pictures = [(str(r.path), f"{r.name} ({r.role})") for r in kit.references] if kit else []
        return {self.pick: gr.update(choices=["", *names], value=name),
                self.version: gr.update(choices=versions, value=kit.version if kit else None),
                self.gallery: pictures or None,
                self.details: describe(kit) if kit or not name else f"**{name}** is a new kit: add images to make it.",
                self.remove_name: gr.update(choices=[r.name for r in kit.references] if kit else [], value=None)}

    def add_clicked(self, name: str | None, files: Sequence[Any] | None, role: str, label: str, guidance: str,
                    request: gr.Request | None = None) -> dict[Any, Any]:
        """Add the images to the kit (a new kit: version 1; else its next version)."""
        paths, name, label = _paths(files), (name or "").strip(), (label or "").strip()
        if not name:
            raise refuse("Type the kit's name first (e.g. storyboard).")
        if not paths:
            raise refuse("Upload an image (or use Add to kit in History) first.")
        owner = self.runner.owner_of(request)
        refs = [NewReference(image=path, role=role, guidance=guidance or "",
                             name=(f"{label} {n}" if len(paths) > 1 else label) if label else Path(path).stem)
                for n, path in enumerate(paths, start=1)]
        with studio_errors(self.runner.public):  # one new version for all the images
            if self.kits().store.versions(name, owner=owner):
                kit = self.kits().add(name, refs, owner=owner)
            else:
                kit = self.kits().create(name, refs, owner=owner)
        return {**self.show(kit.name, kit.version, request), self.upload: None}

    def remove_clicked(self, name: str | None, label: str | None, request: gr.Request | None = None) -> Any:
        """The kit's next version without that reference."""
        if not name or not label:
            raise refuse("Pick a kit and the reference to remove.")
        with studio_errors(self.runner.public):
            kit = self.kits().remove(name, label, owner=self.runner.owner_of(request))
        return self.show(kit.name, kit.version, request)

    def rearranger(self, how: str) -> Any:
        """A handler that moves the picked reference earlier or later, sets its role, or renames it."""
        def rearrange(name: str | None, label: str | None, role: str, new_name: str,
                      request: gr.Request) -> Any:
            return self.rearrange(how, name, label, role, new_name, request)

        return rearrange

    def rearrange(self, how: str, name: str | None, label: str | None, role: str = "", new_name: str = "",
                  request: gr.Request | None = None) -> Any:
        """The kit's next version with the picked reference moved (`earlier`, `later`), re-roled or renamed."""
        if not name or not label:
            raise refuse("Pick a kit and one of its references first.")
        owner = self.runner.owner_of(request)
        with studio_errors(self.runner.public):
            kit = self.kits().show(name, owner=owner)
            rows = [KitRow(r.name, r.role, r.guidance, r.sha256, r.mime_type) for r in kit.references]
            index = next((i for i, row in enumerate(rows) if row.name == label), None)
            if index is None:
                raise refuse(f"Kit {kit.name!r} has no reference named {label!r}.")
            row = rows[index]
            if how in ("earlier", "later"):
                other = index - 1 if how == "earlier" else index + 1
                if not 0 <= other < len(rows):
                    return gr.skip()
                rows[index], rows[other] = rows[other], rows[index]
            elif how == "role":
                rows[index] = KitRow(row.name, role, row.guidance, row.sha256, row.mime_type)
            elif not (new_name or "").strip():
                raise refuse("Type the new name in Reference name first.")
            else:
                rows[index] = KitRow(new_name.strip(), row.role, row.guidance, row.sha256, row.mime_type)
            kit = self.kits().change(kit.name, rows, owner=owner)
        shown = self.show(kit.name, kit.version, request)
        kept = new_name.strip() if how == "rename" else label
        return {**shown, self.remove_name: gr.update(choices=[r.name for r in kit.references], value=kept)}

    def export_clicked(self, name: str | None, version: int | str | None, request: gr.Request | None = None) -> str:
        """A ZIP of the shown version (images and kit.json), for download."""
        if not name:
            raise refuse("Pick a kit to export.")
        spec = f"{name}@{version}" if version else name
        with studio_errors(self.runner.public):
            return str(self.kits().export_zip(spec, export_path(name),
                                              owner=self.runner.owner_of(request)))

    def import_uploaded(self, path: str | None, request: gr.Request | None = None) -> Any:
        """Import a kit ZIP: a new kit, or the next version of one of that name."""
        if not path:
            return gr.skip()
        with studio_errors(self.runner.public):
            kit = self.kits().import_zip(Path(path), owner=self.runner.owner_of(request))
        gr.Info(f"Imported {kit.name}@{kit.version}.")
        return self.show(kit.name, kit.version, request)

    def use_clicked(self, name: str | None, version: int | str | None) -> Any:
        """Put the kit (at the shown version) in the Studio's picker and open the Studio."""
        if not name:
            raise refuse("Pick a kit to use.")
        spec = f"{name}@{version}" if version else name
        return gr.update(choices=["", spec], value=spec), gr.Tabs(selected="studio")

    def add_from_history(self, library: Library, browse: Browse, files: Sequence[Any] | None,
                         request: gr.Request | None) -> Any:
        """History's Add to kit: the opened entry's image joins the images to add, and the Kits tab opens."""
        entry = library.selected(browse, request)
        if not entry.images:
            raise refuse("This entry has no image to add.")
        return [*_paths(files), str(entry.images[0].path)], gr.Tabs(selected="kits")
