"""The Batch tab's Gemini Batch Mode side: submit the tab's input as one job (50% off, results within 24 h) and
list, refresh, fetch and cancel this data directory's jobs, through the service (`GeminiBatches`).

Submitting returns at once with the job's name and state; nothing waits 24 h. The same input submitted again while
its job is open goes to the same run folder, whose journal finds the open job: it is watched, never sent twice. The
jobs list is read from the data directory's index and each run folder's journal, so it survives a restart.

The service keeps one list per data directory, without owners: public mode (many visitors, one data directory)
offers no Batch Mode, and these handlers refuse it there as well.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ..domain.models import get_model
from ..service.batch import plan_batch
from ..service.batch.gemini_jobs import GeminiBatchRun
from ..service.batch.gemini_journal import Journal
from ..service.batch.gemini_service import GeminiBatches, GeminiJobView
from ..service.batch.gemini_summary import GeminiBatchSummary, batch_estimate, check_one_model
from ..service.batch.manifest import MANIFEST_NAME
from ..service.studio import Studio
from .actions import refuse
from .batch_runs import BatchState, zip_folder
from .controls import AUTO, IMAGE_AND_TEXT, FormSettings
from .runner_base import studio_errors
from .text import plain

__all__ = ["BATCH_MODE", "HEADERS", "INTERACTIVE", "RUN_MODES", "GeminiJobs", "age_text", "job_rows"]

INTERACTIVE = "Now, at the rate limit"
BATCH_MODE = "Gemini Batch Mode (50% off, results within 24 h)"
RUN_MODES = [INTERACTIVE, BATCH_MODE]
HEADERS = ["Job", "State", "Age", "Rows", "Done", "Failed", "Cost", "File", "Folder"]
PASTED = "pasted-prompts.txt"  # the File column's name for prompts pasted into the tab
PUBLIC_REFUSAL = ("Gemini Batch Mode is not offered on this public demo (its jobs list is shared by the whole "
                  "server): run the batch now, at the rate limit.")


def age_text(seconds: float) -> str:
    """A job's age in one short unit: "40 s", "12 min", "5 h", "2 d"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def _cost(view: GeminiJobView) -> str:
    """What its written results cost; before any is written, the estimate (batch price)."""
    if view.done or view.failed or not view.open:
        return f"${view.cost_usd:.4f}"
    return "unknown" if view.estimated_cost_usd is None else f"≈${view.estimated_cost_usd:.4f}"


def job_rows(views: list[GeminiJobView]) -> list[list[Any]]:
    """The jobs list's rows (HEADERS' columns), newest first."""
    return [[view.job or view.display_name, view.state, age_text(view.age_s), view.rows, view.done, view.failed,
             _cost(view), Path(view.file).name if view.file else "", view.folder.name] for view in views]


def _choices(views: list[GeminiJobView]) -> list[tuple[str, str]]:
    return [(f"{view.job or view.display_name} · {view.state} · {Path(view.file).name or view.folder.name}",
             view.display_name) for view in views]


def folder_images(folder: Path, job: str | None = None) -> list[tuple[str, str]]:
    """The images a run folder's manifest lists (of one job, if given), with captions, in manifest order."""
    try:
        lines = (folder / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    shown: list[tuple[str, str]] = []
    for text in lines:
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        if not isinstance(line, dict) or (job is not None and line.get("job") != job):
            continue
        for path in line.get("paths") or []:
            if (folder / path).is_file():
                shown.append((str(folder / path), f"line {line.get('row')}: {str(line.get('prompt') or '')[:60]}"))
    return shown


def summary_text(summary: GeminiBatchSummary) -> str:
    """A fetch's or cancel's end as Markdown: the service's message, counts, cost and each failed row."""
    lines = [f"**{plain(summary.message)}** · {summary.done} made, {summary.cached} cached, {summary.failed} failed"
             + (f", {summary.earlier} from an earlier run" if summary.earlier else "")
             + (f", {summary.missing} without a result" if summary.missing else "")
             + f" · ${summary.cost_usd:.4f} at the batch price"]
    for failure in summary.failures[:10]:
        lines.append(f"- line {failure.row}: {plain(failure.error or failure.status)}")
    lines.extend(f"- unmapped result: {key}" for key in summary.unmapped[:10])
    return "\n".join(lines)


@dataclass(frozen=True)
class _Source:
    """The batch file a job is read from again at fetch time (a copy is kept in its run folder)."""

    path: str
    spec: dict[str, Any]


class GeminiJobs:
    """The Batch tab's Gemini Batch Mode handlers over the BatchPage's Studio(s); each returns views by name."""

    def __init__(self, page: Any) -> None:
        self.page = page  # the BatchPage: reading the input, run folders, the visitor's Studio
        self._lock = asyncio.Lock()  # one submission at a time, so a double click finds the first one's job
        self._folders: dict[str, Path] = {}  # input fingerprint → its run folder (while its job is open)

    @property
    def offered(self) -> bool:
        """Batch Mode is offered on a private install only (the service keeps one jobs list per data directory)."""
        return not self.page.studio.settings.public

    def _studio(self, api_key: str, request: gr.Request | None) -> Studio:
        if not self.offered:
            raise refuse(PUBLIC_REFUSAL)
        studio: Studio = self.page.runner.studio_for(api_key, request)
        return studio

    def listing(self, studio: Studio | None = None, selected: str | None = None) -> dict[str, Any]:
        """The jobs list and the job picker, read from disk (the journal), keeping `selected` if it is listed."""
        if not self.offered:
            return {"jobs": gr.update(value=[]), "job": gr.update(choices=[], value=None)}
        views = GeminiBatches(studio or self.page.studio).list_jobs()
        names = [view.display_name for view in views]
        value = selected if selected in names else (names[0] if names else None)
        return {"jobs": gr.update(value=job_rows(views)), "job": gr.update(choices=_choices(views), value=value)}

    def picked(self, row: int) -> Any:
        """The job picker's value for a row of the jobs list (unchanged if the list moved meanwhile)."""
        views = GeminiBatches(self.page.studio).list_jobs() if self.offered else []
        return gr.update(value=views[row].display_name) if 0 <= row < len(views) else gr.skip()

    async def submit(self, file: str | None, text: str, model: str = "", aspect_ratio: str = AUTO, size: str = "",
                     temperature: float = 1.0, top_p: float = 0.95, top_k: int = 0, seed: int = -1,
                     output: str = IMAGE_AND_TEXT, api_key: str = "",
                     request: gr.Request | None = None) -> dict[str, Any]:
        """Submit the input as one Gemini Batch Mode job and return at once with its name and state (or, when
        this input's job is still open, its state: nothing is sent twice)."""
        studio = self._studio(api_key, request)
        form = FormSettings(model, aspect_ratio, size, temperature, top_p, top_k, seed, 1, output)
        with studio_errors():
            studio.capabilities.require_batch_mode()  # Vertex AI: the service's message, nothing read or sent
            batch = await asyncio.to_thread(self.page.read, file, text, form)
            model_id = form.model_id(self.page.studio.settings.model)
            async with self._lock:
                folder = self._folders.get(batch.fingerprint)
                earlier = None if folder is None else Journal(folder).open_record()
                if folder is None or earlier is None:
                    folder = self.page.folder_for(batch, self.page_state())[0]
                plan = await asyncio.to_thread(plan_batch, studio, batch.items, out_dir=folder, model=model_id)
                if not plan.requests:
                    raise refuse("No prompts found: blank lines and # comments are skipped.")
                check_one_model(plan)
                with tempfile.TemporaryDirectory() as scratch:
                    source = self._source(file, text, form, model_id, Path(scratch))
                    run = GeminiBatchRun(studio, plan, out_dir=folder, source_name=source.path,
                                         source_spec={**source.spec, "kits": plan.kits})
                    try:
                        summary = await run.run(wait=False)
                    finally:
                        await run.api.aclose()
                self._folders[batch.fingerprint] = folder
        views = self.listing(studio, summary.display_name)
        if summary.finished:  # nothing to submit (all done or cached): shown like an interactive run
            return {**views, **self._results(folder, None), "summary": summary_text(summary)}
        state = (summary.state or "").removeprefix("JOB_STATE_") or "PENDING"
        new = earlier is None
        head = (f"**Submitted to Gemini Batch Mode** as `{summary.job}` ({state}): {summary.submitted} request(s), "
                f"estimated {_money(batch_estimate(plan))} at the batch price."
                if new else f"**This input's job `{summary.job}` is already submitted** ({state}): nothing was sent "
                            "again.")
        return {**views, "summary": head + " Results within 24 h: Refresh the jobs list below, then Fetch.",
                "progress": "", "gallery": [], "archive": gr.update(value=None, visible=False)}

    @staticmethod
    def page_state() -> Any:
        """A fresh BatchState: a new submission gets a new run folder."""
        return BatchState()

    def _source(self, file: str | None, text: str, form: FormSettings, model: str, scratch: Path) -> _Source:
        """The file as submitted and how to read it again (format, image folder, the form's defaults, model)."""
        defaults = form.options(get_model(model)).to_dict()
        if file:
            path = Path(file)
            fmt, base = path.suffix.lower().lstrip("."), path.resolve().parent
        else:  # pasted prompts: kept as a .txt file, read as the tab reads them
            path = scratch / PASTED
            path.write_text(text or "", encoding="utf-8")
            fmt, base = "txt", self.page.studio.settings.home
        return _Source(str(path), {"fmt": fmt, "base_dir": str(base), "defaults": defaults, "model": model})

    async def refresh(self, selected: str | None = None, api_key: str = "",
                      request: gr.Request | None = None) -> dict[str, Any]:
        """Ask the API for the state of every open job, then list them all."""
        studio = self._studio(api_key, request)
        jobs = GeminiBatches(studio)
        with studio_errors():
            for view in jobs.list_jobs():
                if view.open and view.job is not None:
                    await jobs.refresh(display_name=view.display_name)
        return self.listing(studio, selected)

    async def fetch(self, selected: str | None, api_key: str = "", request: gr.Request | None = None) -> dict[str, Any]:
        """Write a finished job's results into its run folder and show them (gallery, ZIP); a job still running
        says its state."""
        studio = self._studio(api_key, request)
        if not selected:
            raise refuse("Pick a job in the list first.")
        jobs = GeminiBatches(studio)
        with studio_errors():
            view = jobs.get(display_name=selected)
            summary = await jobs.fetch(display_name=selected) if view.open else None
            view = jobs.get(display_name=selected)
        views = self.listing(studio, selected)
        if view.open:  # not over yet: nothing to show
            state = view.state
            return {**views, "summary": f"Job `{view.job or selected}` is {state}: results within 24 h of its "
                                        "submission. Refresh, then Fetch again."}
        text = summary_text(summary) if summary is not None else (
            f"**Job `{view.job}` is {view.state}**: {view.done} made, {view.failed} failed · "
            f"${view.cost_usd:.4f} at the batch price · folder `{view.folder.name}`")
        return {**views, **await asyncio.to_thread(self._results, view.folder, view.job), "summary": text}

    async def cancel(self, selected: str | None, api_key: str = "",
                     request: gr.Request | None = None) -> dict[str, Any]:
        """Cancel the picked job; whatever it already answered is written."""
        studio = self._studio(api_key, request)
        if not selected:
            raise refuse("Pick a job in the list first.")
        with studio_errors():
            summary = await GeminiBatches(studio).cancel(display_name=selected)
        return {**self.listing(studio, selected), "summary": summary_text(summary)}

    def _zip_path(self, folder: Path) -> Path:
        self.page.root.mkdir(parents=True, exist_ok=True)
        return self.page.root / f"{folder.name}.zip"

    def _results(self, folder: Path, job: str | None) -> dict[str, Any]:
        """The run folder as an interactive run ends: its images in the gallery and a ZIP of the folder."""
        shown = folder_images(folder, job)
        archive = str(zip_folder(folder, self._zip_path(folder))) if folder.is_dir() else None
        progress = f"**{len(shown)} image{'s' if len(shown) != 1 else ''}** from `{folder.name}`"
        if not folder.resolve().is_relative_to(self.page.root.resolve()):
            # A CLI run's --out folder elsewhere: the page serves only NANOBANANA_HOME/batches (and the ZIP there).
            shown, progress = [], f"{len(shown)} image(s) in `{folder}`: outside the data directory's batches/, " \
                                  "so only in the ZIP here"
        return {"gallery": shown, "progress": progress,
                "archive": gr.update(value=archive, visible=archive is not None)}


def _money(value: float | None) -> str:
    return "unknown (a model without a price)" if value is None else f"${value:.4f}"
