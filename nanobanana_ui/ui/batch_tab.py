"""The Batch tab: estimate a prompt file (or pasted prompts), run it through the batch engine with progress and a
per-visitor Cancel, and hand the run folder back as a ZIP (images + manifest.jsonl).

Layout and wiring are in BatchTab, the handlers' work in BatchPage (its run yields the views that changed, by name).

Each Run makes a new folder, NANOBANANA_HOME/batches/<timestamp>-<slug>, except that running the very same input with
the very same settings again in the same page session, after a run that was cancelled or had failures, resumes in
that run's folder: the engine skips what finished and re-sends only what is missing.

Cancel sets the run's asyncio.Event, held in a registry keyed by the visitor's session hash (never shared between
visitors): no new request starts, the ones in flight finish and are written to the manifest.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr

from ..domain.models import get_model
from ..imaging.outputs import slugify
from ..service.batch import (
    BatchFileError,
    BatchItem,
    BatchPlan,
    BatchSummary,
    ItemOutcome,
    parse_batch_text,
    plan_batch,
    read_batch_file,
    run_batch,
)
from ..service.batch.folder import refuse_open_gemini_job
from ..service.batch.gemini_summary import batch_estimate
from ..service.studio import Studio
from .actions import no_change, refusals_as_warnings
from .batch_mode import BATCH_MODE, HEADERS, INTERACTIVE, RUN_MODES, GeminiJobs
from .batch_runs import BatchState, zip_folder
from .controls import AUTO, IMAGE_AND_TEXT, FormSettings
from .runner import Runner
from .runner_base import no_owner, studio_errors
from .text import plain

__all__ = ["BatchPage", "BatchTab"]

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
NOTE = ("One prompt per line (blank lines and `#` comments skipped), or a .csv / .jsonl file with a `prompt` column "
        "and optional per-row `mode`, `images`, `model`, `aspect_ratio`, `size`, `temperature`, `top_p`, `top_k`, "
        "`seed`, `count`, `name`. The Studio tab's settings (model, aspect ratio, size, temperature, top-p, "
        "top-k, seed, output) are the defaults a row can override. Runs go at the pace of the rate limit; a run "
        "cancelled or with failures resumes when you run the same input again.")
BATCH_NOTE = (" Gemini Batch Mode sends the batch as one job at half price instead: results within 24 h, in the jobs "
              "list below.")


FORMATS = (".txt", ".csv", ".jsonl")


@dataclass(frozen=True)
class BatchInput:
    """The items read from the upload or the pasted text, with what names and identifies them."""

    items: list[BatchItem]
    slug: str
    fingerprint: str


def counts_line(outcomes: list[ItemOutcome], total: int, cancelling: bool = False) -> str:
    """Progress as one line, e.g. "**3 of 10** · 2 made · 1 cached · 0 failed"."""
    by = {status: sum(o.status == status for o in outcomes) for status in ("done", "cached", "failed", "earlier")}
    line = f"**{len(outcomes)} of {total}** · {by['done']} made · {by['cached']} cached · {by['failed']} failed"
    if by["earlier"]:
        line += f" · {by['earlier']} from an earlier run"
    return line + (" · cancelling: the requests in flight finish, no new one starts" if cancelling else "")


def summary_line(summary: BatchSummary, total: int, folder: Path) -> str:
    """The end of a run: what was made, cached, failed (with reasons), the cost, and where it all is."""
    finished = summary.done + summary.cached + summary.failed + summary.earlier
    head = "Cancelled" if summary.cancelled else "Finished"
    lines = [f"**{head}**: {summary.done} made, {summary.cached} cached, {summary.failed} failed"
             + (f", {summary.earlier} from an earlier run" if summary.earlier else "")
             + (f", {total - finished} not started" if total > finished else "")
             + f" · ${summary.cost_usd:.4f} · folder `{folder.name}`"]
    for failure in summary.failures[:10]:
        lines.append(f"- line {failure.row}: {plain(failure.error or failure.status)}")
    if len(summary.failures) > 10:
        lines.append(f"- ... and {len(summary.failures) - 10} more (see manifest.jsonl)")
    return "\n".join(lines)


def plan_text(plan: BatchPlan, folder: Path, resuming: bool, batch_mode: bool = False) -> str:
    """The estimate as Markdown: items, requests, what is already done, the estimated cost (with `batch_mode`,
    the interactive and the Gemini Batch Mode price side by side)."""
    cost = "unknown" if plan.estimated_cost_usd is None else f"${plan.estimated_cost_usd:.4f}"
    items, requests = len(plan.items), len(plan.requests)
    lines = [f"**{items} item{'s' if items != 1 else ''}, {requests} request{'s' if requests != 1 else ''}** · "
             f"estimated cost {cost} (cache hits cost nothing)"]
    if batch_mode:
        half = batch_estimate(plan)
        lines[0] = (f"**{items} item{'s' if items != 1 else ''}, {requests} request{'s' if requests != 1 else ''}** · "
                    f"estimated cost {cost} now, at the rate limit · "
                    f"{'unknown' if half is None else f'${half:.4f}'} in Gemini Batch Mode (50% off, within 24 h) "
                    "(cache hits cost nothing)")
    if plan.already_done:
        lines.append(f"{plan.already_done} already done in `{folder.name}`: Run resumes there.")
    elif resuming:
        lines.append(f"Run resumes in `{folder.name}`.")
    return "\n\n".join(lines)


def bad_rows_text(error: BatchFileError) -> str:
    """The bad rows as Markdown, one per line with its line number; nothing is sent."""
    problems = error.problems or (str(error),)
    return "**Nothing was sent: fix these rows first.**\n\n" + "\n".join(f"- {plain(p)}" for p in problems)


class BatchPage:
    """The Batch tab's events over one Studio; one cancel Event per visitor's session while a run is going."""

    def __init__(self, studio: Studio, owner_of: Callable[[gr.Request | None], str | None] = no_owner,
                 concurrency: int | None = None, runner: Runner | None = None) -> None:
        self.studio, self.owner_of = studio, owner_of  # owner_of: whose history entries the items become
        self.concurrency = concurrency  # None: the engine's default (follows the rate limit)
        self.runner = runner or Runner(studio, owner_of=owner_of)  # picks the Studio of the visitor's key
        self._cancels: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task] = set()

    @property
    def root(self) -> Path:
        """Where the runs' folders go: NANOBANANA_HOME/batches."""
        return self.studio.settings.home / "batches"

    def read(self, file: str | None, text: str | None, form: FormSettings) -> BatchInput:
        """The items of the upload (if any) or the pasted prompts, with the form's settings as defaults."""
        model = form.model_id(self.studio.settings.model)
        defaults = form.options(get_model(model))
        settings = repr((model, defaults)).encode()
        if file:
            path = Path(file)
            if path.suffix.lower() not in FORMATS:
                raise gr.Error(f"A batch file is .txt, .csv or .jsonl (got {path.name}).", print_exception=False)
            items = read_batch_file(path, defaults=defaults)
            if self.studio.settings.public and any(item.images for item in items):
                rows = ", ".join(str(item.row) for item in items if item.images)
                raise gr.Error(f"This public demo runs text prompts only in Batch: rows may not name image files on "
                               f"the server (the `images` column, rows {rows}). Remove that column, or edit and "
                               "compose your own images in the Studio tab.", print_exception=False)
            digest = hashlib.sha256(path.read_bytes() + path.suffix.encode() + settings).hexdigest()
            return BatchInput(items, slugify(path.stem), digest)
        text = text or ""
        if not text.strip():
            raise gr.Error("Upload a prompt file or paste prompts (one per line) first.", print_exception=False)
        items = parse_batch_text(text, fmt="txt", base_dir=self.studio.settings.home, defaults=defaults)
        slug = slugify(items[0].name or items[0].prompt) if items else "batch"
        return BatchInput(items, slug, hashlib.sha256(text.encode() + settings).hexdigest())

    def folder_for(self, batch: BatchInput, state: BatchState) -> tuple[Path, bool]:
        """The folder a Run uses: the last one if it is the same input, unfinished (resume), else a new one."""
        if state.fingerprint == batch.fingerprint and state.folder and not state.complete \
                and Path(state.folder).is_dir():
            return Path(state.folder), True
        # Public mode: a random part, so nobody can guess another visitor's folder (Gradio serves batches/).
        private = f"-{secrets.token_hex(8)}" if self.studio.settings.public else ""
        folder = self.root / f"{datetime.now():%Y%m%d-%H%M%S}-{batch.slug}{private}"
        n = 1
        while folder.exists():
            n += 1
            folder = self.root / f"{datetime.now():%Y%m%d-%H%M%S}-{batch.slug}{private}-{n}"
        return folder, False

    async def _plan(self, file: str | None, text: str | None, form: FormSettings,
                    state: BatchState, studio: Studio | None = None,
                    owner: str | None = None) -> tuple[BatchInput, BatchPlan, Path, bool]:
        batch = await asyncio.to_thread(self.read, file, text, form)
        folder, resuming = self.folder_for(batch, state)
        model = form.model_id(self.studio.settings.model)
        plan = await asyncio.to_thread(plan_batch, studio or self.studio, batch.items, out_dir=folder, model=model,
                                       owner=owner)  # a row's kit column: the visitor's own kits
        if not plan.requests:
            raise gr.Error("No prompts found: blank lines and # comments are skipped.", print_exception=False)
        return batch, plan, folder, resuming

    async def estimate(self, file: str | None, text: str, model: str = "", aspect_ratio: str = AUTO, size: str = "",
                       temperature: float = 1.0, top_p: float = 0.95, top_k: int = 0, seed: int = -1,
                       output: str = IMAGE_AND_TEXT, api_key: str = "", state: BatchState | None = None,
                       request: gr.Request | None = None) -> str:
        """Validate the batch and say what a Run would do and cost, or list the bad rows; sends nothing."""
        form = FormSettings(model, aspect_ratio, size, temperature, top_p, top_k, seed, 1, output)
        studio = self.runner.studio_for(api_key, request)
        with studio_errors():  # any other mistake (an unreadable file, a bad setting) as the page's error
            try:
                _, plan, folder, resuming = await self._plan(file, text, form, state or BatchState(), studio,
                                                             self.owner_of(request))
            except BatchFileError as error:
                return bad_rows_text(error)
        both = not studio.settings.public and studio.capabilities.batch_mode  # where Batch Mode is offered
        return plan_text(plan, folder, resuming, batch_mode=both)

    async def cancel(self, request: gr.Request) -> str:
        """Stop this visitor's run: no new request starts; the ones in flight finish and are recorded."""
        event = self._cancels.get(_session(request))
        if event is None:  # a toast too: the progress line may be empty or scrolled away
            gr.Warning("No batch is running on this page: there is nothing to cancel.")
            return "No batch is running."
        event.set()
        return "Cancelling: the requests in flight finish, no new one starts."

    async def run(self, file: str | None, text: str, model: str = "", aspect_ratio: str = AUTO, size: str = "",
                  temperature: float = 1.0, top_p: float = 0.95, top_k: int = 0, seed: int = -1,
                  output: str = IMAGE_AND_TEXT, api_key: str = "", state: BatchState | None = None,
                  request: gr.Request | None = None,
                  progress: gr.Progress = gr.Progress()) -> AsyncIterator[dict[str, Any]]:  # noqa: B008
        """Run the batch, yielding the views that changed by name (gallery, progress, summary, archive, plan,
        state) as each request finishes."""
        state = state or BatchState()
        form = FormSettings(model, aspect_ratio, size, temperature, top_p, top_k, seed, 1, output)
        studio = self.runner.studio_for(api_key, request)  # without a key (public mode): the message, nothing sent
        key = _session(request)
        if key in self._cancels:
            raise gr.Error("A batch is already running on this page: cancel it or wait for it.", print_exception=False)
        cancel = self._cancels[key] = asyncio.Event()  # taken before any await: a second click finds it
        release = studio.hold()  # not closed (LRU eviction, page closed) in a gap between rows: see KeyRing
        task: asyncio.Task[BatchSummary] | None = None
        try:
            with studio_errors():  # bad rows too: the message lists each with its line number
                batch, plan, folder, resuming = await self._plan(file, text, form, state, studio,
                                                                 self.owner_of(request))
                await asyncio.to_thread(refuse_open_gemini_job, folder)  # before the count: nothing is sent
                self.runner.count_requests(request, len(plan.requests), studio)  # public mode: their own limit
            state = BatchState(batch.fingerprint, str(folder), False)
            total, outcomes = len(plan.requests), []
            shown: list[tuple[str, str]] = []
            queue: asyncio.Queue[ItemOutcome | None] = asyncio.Queue()
            task = asyncio.create_task(run_batch(studio, plan, out_dir=folder, concurrency=self.concurrency,
                                                 on_outcome=queue.put_nowait, cancel=cancel,
                                                 owner=self.owner_of(request)))
            self._tasks.add(task)  # held: a run outlives a visitor who leaves (in-flight requests finish)
            task.add_done_callback(lambda _: release())  # their Studio stays open until the last row is done
            task.add_done_callback(lambda _: queue.put_nowait(None))
            task.add_done_callback(self._tasks.discard)
            progress(0.0, desc=f"0 of {total}")
            yield {"gallery": [], "progress": counts_line([], total), "summary": "",
                   "archive": gr.update(value=None, visible=False), "plan": plan_text(plan, folder, resuming),
                   "state": state}
            while (outcome := await queue.get()) is not None:
                outcomes.append(outcome)
                shown.extend((str(path), f"line {outcome.row}: {outcome.prompt[:60]}") for path in outcome.paths)
                line = counts_line(outcomes, total, cancel.is_set())
                progress(len(outcomes) / total, desc=line.replace("**", ""))
                yield {"gallery": list(shown), "progress": line, "state": state}
            with studio_errors():
                summary: BatchSummary = task.result()  # the engine's own errors surface here
        finally:
            if task is None:
                release()
            self._cancels.pop(key, None)
            cancel.set()  # the page went away mid-run: start nothing more (in-flight requests still finish)
        archive = await asyncio.to_thread(zip_folder, folder, self.root / f"{folder.name}.zip")
        state = BatchState(batch.fingerprint, str(folder), not summary.cancelled and not summary.failed)
        yield {"gallery": list(shown), "progress": counts_line(outcomes, total),
               "summary": summary_line(summary, total, folder), "archive": gr.update(value=str(archive), visible=True),
               "state": state}


def _session(request: gr.Request | None) -> str:
    """The visitor's session hash: the cancel registry's key (one page, one key)."""
    return (getattr(request, "session_hash", None) or "no-session") if request is not None else "no-session"


class BatchTab:
    """The Batch tab's components and events; the Studio tab's settings are the batch's defaults."""

    def __init__(self, page: BatchPage) -> None:
        self.page = page
        self.jobs_page = GeminiJobs(page)  # Gemini Batch Mode: submit, and this data directory's jobs

    def layout(self) -> gr.Tab:
        """Upload or paste prompts, estimate, run with progress, cancel, watch the results arrive, download a ZIP."""
        with gr.Tab("Batch", id="batch", elem_id="batch-tab") as self.tab:
            self.state = gr.State(BatchState())
            with gr.Row():
                with gr.Column(scale=2):
                    self.file = gr.File(label="Prompt file (.txt, .csv, .jsonl)",
                                        file_types=[".txt", ".csv", ".jsonl"], type="filepath", elem_id="batch-file")
                    self.text = gr.Textbox(label="Or paste prompts, one per line", lines=8, elem_id="batch-text",
                                           placeholder="A red fox in the snow\nAn owl at night, watercolour")
                    gr.Markdown(NOTE + (BATCH_NOTE if self.jobs_page.offered else ""))
                    # Public mode: no Batch Mode (its jobs list is the whole data directory's, not a visitor's).
                    self.mode = gr.Radio(RUN_MODES, value=INTERACTIVE, label="Run", elem_id="batch-run-mode",
                                         visible=self.jobs_page.offered)
                    with gr.Row():
                        self.estimate = gr.Button("Estimate", elem_id="batch-estimate-button")
                        self.run = gr.Button("Run", variant="primary", elem_id="batch-run-button")
                        self.cancel = gr.Button("Cancel", variant="stop", elem_id="batch-cancel-button")
                    self.plan = gr.Markdown(elem_id="batch-plan")
                with gr.Column(scale=3):
                    self.progress = gr.Markdown(elem_id="batch-progress")
                    self.gallery = gr.Gallery(label="Results, as they arrive", format="png", columns=4, height=480,
                                              object_fit="contain", interactive=False,
                                              buttons=["download", "fullscreen"], elem_id="batch-gallery")
                    self.summary = gr.Markdown(elem_id="batch-summary")
                    self.archive = gr.File(label="This run (images + manifest.jsonl)", interactive=False,
                                           visible=False, elem_id="batch-zip")
            with gr.Accordion("Gemini Batch Mode jobs (this data directory)", open=True,
                              visible=self.jobs_page.offered, elem_id="batch-jobs-panel"):
                listed = self.jobs_page.listing()  # as the journal on disk has it now; again each time the tab opens
                self.jobs = gr.Dataframe(headers=HEADERS, value=listed["jobs"]["value"], interactive=False,
                                         wrap=True, elem_id="batch-jobs")
                with gr.Row():
                    self.job = gr.Dropdown(label="Job", choices=listed["job"]["choices"], value=listed["job"]["value"],
                                           scale=3, elem_id="batch-job")
                    self.refresh = gr.Button("Refresh", elem_id="batch-jobs-refresh")
                    self.fetch = gr.Button("Fetch", variant="primary", elem_id="batch-jobs-fetch")
                    self.cancel_job = gr.Button("Cancel job", variant="stop", elem_id="batch-jobs-cancel")
        self.views = {"gallery": self.gallery, "progress": self.progress, "summary": self.summary,
                      "archive": self.archive, "plan": self.plan, "state": self.state, "jobs": self.jobs,
                      "job": self.job}
        return self.tab

    def wire(self, settings_inputs: list[Any], api_key: Any, concurrency_limit: int) -> None:
        """Connect the tab's events; `settings_inputs` are the Studio's settings, in the API's order."""
        settings = [s for s in settings_inputs if s.elem_id != "count"]  # a row's `count` says how many; default 1
        inputs = [self.file, self.text, *settings, api_key, self.state]
        run_inputs = [*inputs, self.mode]
        self.estimate.click(self.estimate_clicked, inputs, [self.plan], **PRIVATE)
        # Its own pool: a batch holds its slot for the whole run, and must not starve the Studio's single requests
        # (every request still goes through the Studio's shared rate limiter and budget).
        self.run.click(self.run_clicked, run_inputs, list(self.views.values()), concurrency_limit=concurrency_limit,
                       concurrency_id="batch", **PRIVATE)
        self.cancel.click(self.page.cancel, None, [self.progress], **PRIVATE)
        if self.jobs_page.offered:
            jobs_views = [self.jobs, self.job, self.gallery, self.progress, self.summary, self.archive]
            self.refresh.click(self.jobs_clicked("refresh"), [self.job, api_key], jobs_views, **PRIVATE)
            self.fetch.click(self.jobs_clicked("fetch"), [self.job, api_key], jobs_views, **PRIVATE)
            self.cancel_job.click(self.jobs_clicked("cancel"), [self.job, api_key], jobs_views, **PRIVATE)
            # The list is read from disk when the page opens: it survives a restart.
            self.tab.select(self.listed, None, [self.jobs, self.job], **PRIVATE)
            self.jobs.select(self.row_picked, None, [self.job], **PRIVATE)  # a click on a row picks its job

    async def estimate_clicked(self, file: str | None, text: str, model: str, aspect_ratio: str, size: str,
                               temperature: float, top_p: float, top_k: int, seed: int, output: str, api_key: str,
                               state: BatchState | None, request: gr.Request) -> Any:
        """Estimate: what a Run would do and cost, or why not (a toast; the plan stays as it was)."""
        with refusals_as_warnings():
            return await self.page.estimate(file, text, model, aspect_ratio, size, temperature, top_p, top_k, seed,
                                            output, api_key, state, request)
        return no_change()

    async def run_clicked(self, file: str | None, text: str, model: str, aspect_ratio: str, size: str,
                          temperature: float, top_p: float, top_k: int, seed: int, output: str, api_key: str,
                          state: BatchState | None, mode: str, request: gr.Request,
                          progress: gr.Progress = gr.Progress()) -> AsyncIterator[Any]:  # noqa: B008
        """Run: the views as results arrive, or why not (a toast; the page stays as it was); in Gemini Batch
        Mode, the job's name and state at once."""
        finished = False
        with refusals_as_warnings():
            if mode == BATCH_MODE:
                views = await self.jobs_page.submit(file, text, model, aspect_ratio, size, temperature, top_p,
                                                    top_k, seed, output, api_key, request)
                yield {self.views[name]: value for name, value in views.items()}
                return
            async for views in self.page.run(file, text, model, aspect_ratio, size, temperature, top_p, top_k, seed,
                                             output, api_key, state, request, progress):
                yield {self.views[name]: value for name, value in views.items()}
            finished = True
        if not finished:
            yield no_change()  # refused: the page keeps what it showed

    def listed(self) -> Any:
        """The jobs list as the journal on disk has it (no API call)."""
        views = self.jobs_page.listing()
        return {self.views[name]: value for name, value in views.items()}

    def jobs_clicked(self, action: str) -> Callable[..., Any]:
        """The handler of Refresh, Fetch or Cancel job: the jobs list and what the action shows, or a toast."""
        async def clicked(selected: str | None, api_key: str, request: gr.Request) -> Any:
            with refusals_as_warnings():
                handler = getattr(self.jobs_page, action)
                views = await handler(selected, api_key, request)
                return {self.views[name]: value for name, value in views.items()}
            return no_change()

        clicked.__name__ = f"batch_jobs_{action}"
        return clicked

    def row_picked(self, event: gr.SelectData) -> Any:
        """A click on a row of the jobs list picks that job (rows are listed newest first, as on disk)."""
        return self.jobs_page.picked(event.index[0] if isinstance(event.index, (list, tuple)) else event.index)
