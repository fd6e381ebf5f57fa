"""Gemini Batch Mode's results: a finished job's result lines written as rows, as the interactive batch writes them."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ...backends.gemini_wire import parse_response
from ...domain.errors import (
    BadRequestError,
    InvalidKeyError,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceError,
    StorageError,
    StudioError,
)
from ...domain.request import ImageRequest
from ..studio import Studio
from .gemini_journal import JobRecord
from .gemini_summary import BATCH_PRICE_FACTOR, request_key
from .items import BatchItem
from .jsonl import decode_lines
from .manifest import Manifest, finished_lines
from .plan import BatchPlan
from .run import ItemOutcome, base_line, failed_outcome, image_stem, place_images

__all__ = ["ResultWriter", "file_results"]

_STAGING = ".staging"
# google.rpc codes of a per-line error → our error class (and so its CLI exit code); others are ServiceError (6)
_RPC_ERRORS: dict[int, type[StudioError]] = {3: BadRequestError, 5: ModelNotFoundError, 7: PermissionDeniedError,
                                             16: InvalidKeyError, 8: RateLimitError}


class ResultWriter:
    """Writes a job's result lines (and the requests it left unanswered) into the run folder, row by row."""

    def __init__(self, studio: Studio, plan: BatchPlan, out_dir: Path, *, report: Callable[[ItemOutcome], None],
                 say: Callable[[str], None], unmapped: list[str]) -> None:
        """Write for this plan into `out_dir`; each outcome goes to `report`, each unmapped key into `unmapped`."""
        self.studio, self.plan, self.out_dir = studio, plan, out_dir
        self._report, self._say, self._unmapped = report, say, unmapped

    def write_results(self, record: JobRecord, lines: Iterator[tuple[Any, Any, Any]], written: set[str]) -> None:
        """Write each result line as its row (runs in a worker thread; one line in memory at a time)."""
        index = {request_key(i.row, r.options.variation): (i, r) for i, r in self.plan.requests}
        finished = finished_lines(self.out_dir)
        staging = self.out_dir / _STAGING
        manifest = Manifest(self.out_dir)
        try:
            for key, response, error in lines:
                entry = index.get(key) if isinstance(key, str) else None
                if entry is None or record.keys.get(key) != entry[1].cache_key():
                    self._unmapped.append(str(key))
                    self._say(f"warning: a result with key {key!r} matches no row of this file as it was submitted "
                              "(was the file changed?); it was not written")
                    continue
                item, request = entry
                written.add(key)
                if (item.row, request.cache_key()) in finished:
                    continue  # written by an earlier fetch that was interrupted
                outcome = self._one(record, item, request, response, error, staging)
                manifest.append(outcome.record)
                self._report(outcome)
                if self.studio.settings.batch_pause_at == "writing":
                    _pause_now(self.out_dir, "writing")
        finally:
            manifest.close()
            shutil.rmtree(staging, ignore_errors=True)

    def _one(self, record: JobRecord, item: BatchItem, request: ImageRequest, response: Any, error: Any,
             staging: Path) -> ItemOutcome:
        base = {**base_line(item, request), "job": record.job}
        try:
            if error is not None or response is None:
                code = int(_get(error, "code") or 13)
                message = str(_get(error, "message") or "no response")
                raise _RPC_ERRORS.get(code, ServiceError)(
                    f"Gemini Batch Mode could not answer: {message} (code {code})")
            reply = parse_response(response)
            result = self.studio.keep_batch_reply(request, reply, out_dir=staging, price_factor=BATCH_PRICE_FACTOR)
            paths = place_images(result, self.out_dir, image_stem(item, request.options.variation))
        except StudioError as failure:  # an error line, no image, or an unreadable one: a failed row, not a crash
            self._record_failure(request, failure)
            return failed_outcome(item, request, base, failure.message, type(failure).__name__, failure.exit_code)
        except (OSError, sqlite3.OperationalError) as failure:  # disk full, read-only: stop, never finish the job
            # Not a failed row: the job would be journaled finished and the next run would pay for these rows again.
            # Raised, the fetch stops before "finished"; the next run fetches the same job again (rows written so far
            # are skipped), and nothing is submitted again.
            raise StorageError(f"could not write the results of {record.job} ({type(failure).__name__}: {failure}); "
                               "the job stays open. Free some space and run the same command again: its results are "
                               "fetched again and nothing is submitted again.") from failure
        except Exception as failure:  # noqa: BLE001 - one bad line must not stop the others
            return failed_outcome(item, request, base, f"unexpected {type(failure).__name__}: {failure}",
                           type(failure).__name__, 1)
        fields = result.to_record()  # the manifest line as the interactive batch writes it (run.py), plus the job
        images = [{**image, "path": path.name} for path, image in zip(paths, fields.pop("images"), strict=True)]
        line = {**base, **fields, "status": "done", "paths": [p.name for p in paths], "cost_usd": result.cost_usd,
                "cached": False, "error": None, "error_type": None, "images": images, "job": base["job"],
                "price": "batch"}
        return ItemOutcome(row=item.row, prompt=item.prompt, status="done", paths=tuple(paths),
                           cost_usd=result.cost_usd, error=None, error_type=None,
                           variation=request.options.variation, record=line)

    def _record_failure(self, request: ImageRequest, failure: StudioError) -> None:
        """A failed line goes into the history too, as an interactive failure does (best effort)."""
        try:
            self.studio.history.record_failure(request, failure, elapsed_s=0.0)
        except Exception:  # noqa: BLE001, S110 - the manifest has the failure; only its history line is lost
            pass

    def write_missing(self, record: JobRecord, missing: list[str]) -> None:
        """Write each request the finished job left unanswered as a failed row."""
        index = {request_key(i.row, r.options.variation): (i, r) for i, r in self.plan.requests}
        manifest = Manifest(self.out_dir)
        try:
            for key in missing:
                if key not in index:
                    continue
                item, request = index[key]
                outcome = failed_outcome(item, request, {**base_line(item, request), "job": record.job},
                                  "the batch job returned no result for this request", "BadResponseError", 6)
                manifest.append(outcome.record)
                self._report(outcome)
        finally:
            manifest.close()


def _pause_now(out_dir: Path, point: str) -> None:
    (out_dir / f".paused-{point}").write_text(point)
    time.sleep(3600)


def _get(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def file_results(path: Path) -> Iterator[tuple[Any, Any, Any]]:
    """(key, response, error) for each line of a downloaded result file, read one line at a time."""
    from google.genai import types

    with open(path, "rb") as raw:  # decoded line by line: one bad byte spoils its line, not the rest of the file
        for number, text in decode_lines(raw):
            if text is not None and not text.strip():
                continue
            try:
                if text is None:
                    raise UnicodeError("not UTF-8")
                line = json.loads(text)
                response = line.get("response")
                parsed = types.GenerateContentResponse.model_validate(response) if response is not None else None
            except Exception as exc:  # noqa: BLE001 - an unreadable line is reported as unmapped, never dropped
                yield f"(result line {number}: unreadable, {type(exc).__name__})", None, None
                continue
            key = line.get("key") or (line.get("metadata") or {}).get("key")
            yield key, parsed, line.get("error") if response is None else None
