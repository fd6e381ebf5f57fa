"""Emulator Batch Mode: batchGenerateContent jobs, their state clock and results, and the Files API they use.

Wire shapes follow what google-genai 3.3 sends and parses (batches.py, files.py, _api_client.upload_file):

- `POST /v1beta/models/{model}:batchGenerateContent` with `{"batch": {"displayName", "inputConfig": {"requests":
  {"requests": [{"request": {...}, "metadata": {"key"}}]}} | {"fileName": "files/..."}}}` answers an Operation
  `{"name": "batches/ID", "metadata": {state, displayName, model, batchStats, output, ...}, "done"}`.
- `GET /v1beta/batches[?pageSize&pageToken]` → `{"operations": [...], "nextPageToken"}` (no inline responses);
  `GET|DELETE /v1beta/batches/ID`; `POST /v1beta/batches/ID:cancel`.
- Files: `POST /upload/v1beta/files` (X-Goog-Upload-Command: start) answers an `X-Goog-Upload-URL`; the client then
  POSTs the bytes there ("upload", then "upload, finalize") and gets `{"file": {...}}` with X-Goog-Upload-Status
  final. `GET /v1beta/files/ID`; results download from `/download/v1beta/files/ID:download?alt=media`.

The clock: a job is PENDING for `seconds_per_state`, RUNNING for as long again, then reaches `outcome` (SUCCEEDED by
default; tests set FAILED or EXPIRED). Keys in `fail_keys` get a per-line error instead of a response.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from ..domain.models import get_model
from .answers import answer as model_answer
from .batch_records import EmulatedBatch, EmulatedFile, now_text, read_jsonl
from .faults import Fault, fault_reply
from .types import Reply, error_reply, record_request

__all__ = ["BatchService"]

_CREATE = re.compile(r"^/v1beta/models/([^/:]+):batchGenerateContent$")
_BATCH = re.compile(r"^/v1beta/batches(?:/([^/:]+))?(?::(cancel))?$")
_UPLOAD = re.compile(r"^/upload/v1beta/files$")
_FILE = re.compile(r"^/(?:download/)?v1beta/files/([^/:]+)(?::(download))?$")
_TERMINAL = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"
MAX_FILE_BYTES = 2 * 1024**3
INLINE_LIMIT_BYTES = 20 * 1024**2


class BatchService:
    """The batch and Files API of one emulator; the server hands it every request whose path it claims."""

    def __init__(self, *, base_url: Callable[[], str], gate: Callable[[Any, bool], Reply | None],
                 include_thoughts: Callable[[], bool]) -> None:
        """Keep the hooks to the server: its base URL, its key check and its thought-image setting."""
        self.seconds_per_state = 2.0  # PENDING, then RUNNING, for this long each (tests shorten it)
        self.outcome = "BATCH_STATE_SUCCEEDED"  # what new jobs end as; tests set FAILED or EXPIRED
        self.fail_keys: set[str] = set()  # requests with these metadata keys get a per-line error
        self.unreadable_keys: set[str] = set()  # these get a response whose image bytes are not an image
        self.hold_create_s = 0.0  # keep a create's answer back this long after the job exists (kill tests)
        self.list_lag_s = 0.0  # a new job shows in the listing only this long after it was made (eventual consistency)
        self._base_url = base_url
        self._gate = gate
        self._include_thoughts = include_thoughts
        self._lock = threading.Lock()
        self._jobs: dict[str, EmulatedBatch] = {}
        self._files: dict[str, EmulatedFile] = {}
        self._uploads: dict[str, EmulatedFile] = {}
        self._faults: list[Fault] = []
        self._folder: Path | None = None  # made at the first file, removed with this object (see _dir)

    @property
    def _dir(self) -> Path:
        """The folder of uploaded and generated files: made when the first one arrives (most emulators never see one),
        and removed when this service is collected or the process exits, so hundreds of emulators leave nothing."""
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="gemini-emulator-files-"))
                weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)
            return self._folder

    # ---- what tests look at and change
    @property
    def jobs(self) -> list[EmulatedBatch]:
        """Every job ever created, deleted ones too, in creation order."""
        with self._lock:
            return list(self._jobs.values())

    @property
    def files(self) -> list[EmulatedFile]:
        """Every file uploaded or generated."""
        with self._lock:
            return list(self._files.values())

    def fail_next(self, *faults: Fault) -> None:
        """Queue error faults (429, 5xx, ...) for the next batch or file API calls, one each, in order."""
        with self._lock:
            self._faults.extend(faults)

    def set_state(self, name: str, state: str) -> None:
        """Force a job into a state, e.g. "BATCH_STATE_EXPIRED" (a terminal one also stops its clock)."""
        job = self._jobs[name if name.startswith("batches/") else f"batches/{name}"]
        with job.lock:
            job.forced = state if state.startswith("BATCH_STATE_") else f"BATCH_STATE_{state}"
            if job.forced in _TERMINAL:
                job.ended = time.time()

    def expire_files(self, *names: str) -> None:
        """Expire these files ("files/ID"), or every file: requests naming them are refused from now on."""
        with self._lock:
            for file in self._files.values():
                if not names or file.name in names:
                    file.expired = True

    def file_bytes(self, uri: str, api_key: str | None) -> bytes | None:
        """The bytes of the uploaded file a `fileData` part names, or None: unknown, expired, or another key's."""
        name = "files/" + uri.rstrip("/").rsplit("/files/", 1)[-1] if "/files/" in uri else uri
        with self._lock:
            found = self._files.get(name)
        if found is None or found.expired or not found.complete or found.source != "UPLOADED" or (
                found.api_key is not None and found.api_key != api_key):
            return None
        return found.path.read_bytes()

    def reset(self) -> None:
        """Forget jobs, files and queued faults."""
        with self._lock:
            self._jobs.clear()
            self._files.clear()
            self._uploads.clear()
            self._faults.clear()

    # ---- routing
    def claims(self, path: str) -> bool:
        """Whether a request path belongs to the batch or Files API."""
        return any(p.match(path) for p in (_CREATE, _BATCH, _UPLOAD, _FILE))

    def handle(self, rec: Any, method: str, raw: bytes) -> Reply:
        """Answer one batch or Files API request (rec: the server's RecordedRequest)."""
        upload_id = (parse_qs(rec.query).get("upload_id") or [None])[0]
        create = _CREATE.match(rec.path)
        if create:
            rec.model = create.group(1)
        if upload_id is None:  # the upload's byte transfers carry no key: the start request was checked
            gate = self._gate(rec, not create)  # (rec, listing): only a create names a model to check
            if gate is not None:
                return gate
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            return fault_reply(fault, rec.model)
        path = rec.path
        if create and method == "POST":
            return self._create(create.group(1), rec.body)
        if _UPLOAD.match(path) and method == "POST":
            return self._upload(rec, upload_id, raw)
        if match := _BATCH.match(path):
            return self._batch_call(method, match.group(1), match.group(2), rec.query)
        if (match := _FILE.match(path)) and method in ("GET", "DELETE"):
            return self._file_call(method, match.group(1), match.group(2) is not None)
        return error_reply(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")

    # ---- batches
    def _create(self, model: str, body: dict[str, Any] | None) -> Reply:
        batch = (body or {}).get("batch")
        if not isinstance(batch, dict):
            return error_reply(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Missing 'batch'.")
        source = batch.get("inputConfig") or {}
        requests: list[tuple[str | None, dict[str, Any]]] = []
        if "fileName" in source:
            with self._lock:
                upload = self._files.get(str(source["fileName"]))
            if upload is None or not upload.complete:
                return error_reply(400, "INVALID_ARGUMENT", f"File {source['fileName']} not found or not uploaded.")
            problem = read_jsonl(upload.path, requests)
            if problem:
                return error_reply(400, "INVALID_ARGUMENT", problem)
        else:
            inline = (source.get("requests") or {}).get("requests")
            if not isinstance(inline, list) or not inline:
                return error_reply(400, "INVALID_ARGUMENT", "* BatchGenerateContentRequest.batch.input_config: "
                              "requests or file_name must be set.")
            size = len(json.dumps(inline))
            if size > INLINE_LIMIT_BYTES:
                return error_reply(400, "INVALID_ARGUMENT", f"Request payload size exceeds the limit: "
                              f"{INLINE_LIMIT_BYTES} bytes.")
            for entry in inline:
                requests.append(((entry.get("metadata") or {}).get("key"), entry.get("request") or {}))
        job = EmulatedBatch(name=f"batches/{secrets.token_hex(8)}", model=model,
                            display_name=str(batch.get("displayName") or ""), requests=requests,
                            from_file="fileName" in source, created=time.time(), outcome=self.outcome)
        with self._lock:
            self._jobs[job.name] = job
        if self.hold_create_s > 0:  # the job exists; its creator has not heard yet
            time.sleep(self.hold_create_s)
        return 200, {}, self._operation(job, with_results=False)

    def _batch_call(self, method: str, name: str | None, action: str | None, query: str) -> Reply:
        if name is None:
            if method != "GET":
                return error_reply(404, "NOT_FOUND", "Method not allowed on batches.")
            return self._list(query)
        with self._lock:
            job = self._jobs.get(f"batches/{name}")
        if job is None or job.deleted:
            return error_reply(404, "NOT_FOUND", f"Batch batches/{name} not found.")
        if action == "cancel" and method == "POST":
            with job.lock:
                if self._state(job) not in _TERMINAL:
                    job.forced, job.ended = "BATCH_STATE_CANCELLED", time.time()
            return 200, {}, {}
        if method == "DELETE":
            job.deleted = True
            return 200, {}, {}
        if method == "GET" and action is None:
            return 200, {}, self._operation(job, with_results=True)
        return error_reply(404, "NOT_FOUND", f"Unknown batch action {action}.")

    def _list(self, query: str) -> Reply:
        params = parse_qs(query)
        start = int((params.get("pageToken") or ["0"])[0] or 0)
        size = int((params.get("pageSize") or ["50"])[0] or 50)
        with self._lock:  # newest first, like the API
            listed_by = time.time() - self.list_lag_s
            live = [job for job in reversed(self._jobs.values()) if not job.deleted and job.created <= listed_by]
        operations = [self._operation(job, with_results=False) for job in live[start:start + size]]
        page: dict[str, Any] = {"operations": operations}
        if start + size < len(live):
            page["nextPageToken"] = str(start + size)
        return 200, {}, page

    def _state(self, job: EmulatedBatch) -> str:
        if job.forced is not None:
            return job.forced
        elapsed = time.time() - job.created
        if elapsed < self.seconds_per_state:
            return "BATCH_STATE_PENDING"
        if elapsed < 2 * self.seconds_per_state:
            return "BATCH_STATE_RUNNING"
        if job.ended is None:
            job.ended = job.created + 2 * self.seconds_per_state
        return job.outcome

    def _operation(self, job: EmulatedBatch, *, with_results: bool) -> dict[str, Any]:
        with job.lock:
            state = self._state(job)
            count = len(job.requests)
            done = count if state == "BATCH_STATE_SUCCEEDED" else 0
            if state == "BATCH_STATE_RUNNING":
                done = min(count, math.floor(count * (time.time() - job.created - self.seconds_per_state)
                                             / max(self.seconds_per_state, 1e-9)))
            failed = sum(1 for k in job.keys if k in self.fail_keys) if state == "BATCH_STATE_SUCCEEDED" else 0
            meta: dict[str, Any] = {
                "@type": _TYPE, "model": f"models/{job.model}", "displayName": job.display_name, "name": job.name,
                "createTime": now_text(job.created), "updateTime": now_text(job.ended or time.time()),
                "state": state, "batchStats": {"requestCount": str(count), "successfulRequestCount": str(done - failed),
                                               "failedRequestCount": str(failed),
                                               "pendingRequestCount": str(count - done)}}
            if job.ended is not None:
                meta["endTime"] = now_text(job.ended)
            if state == "BATCH_STATE_SUCCEEDED":
                meta["output"] = self._output(job, with_results)
        return {"name": job.name, "metadata": meta, "done": state in _TERMINAL}

    def _output(self, job: EmulatedBatch, with_results: bool) -> dict[str, Any]:
        """With job.lock held: the results, computed once when first asked for."""
        if job.from_file:
            if job.result_file is None:
                job.result_file = self._write_results(job)
            return {"responsesFile": job.result_file.name}
        if not with_results:
            return {}
        if job.inline_results is None:
            job.inline_results = [self._line(key, request, job.model) for key, request in job.requests]
        return {"inlinedResponses": {"inlinedResponses": [
            {k: v for k, v in line.items() if k != "key"} for line in job.inline_results]}}

    def _line(self, key: str | None, request: dict[str, Any], model: str) -> dict[str, Any]:
        """One result: {"key", "metadata", "response"} or {"key", "metadata", "error"}, as the batch returns it."""
        meta = {"key": key} if key is not None else {}
        if key in self.fail_keys:
            return {"key": key, "metadata": meta,
                    "error": {"code": 13, "message": "Internal error encountered while processing this request."}}
        body = {k: v for k, v in request.items() if k != "model"}
        rec = record_request("POST", f"/v1beta/models/{model}:generateContent", {}, json.dumps(body).encode())
        rec.model = model
        code, _, answer = model_answer(rec, get_model(model), self._include_thoughts())
        if code != 200 or not isinstance(answer, dict):
            error = answer.get("error", {}) if isinstance(answer, dict) else {}
            return {"key": key, "metadata": meta, "error": {"code": 3, "message": error.get("message", "failed")}}
        if key in self.unreadable_keys:
            for part in answer["candidates"][0]["content"]["parts"]:
                if "inlineData" in part:
                    part["inlineData"]["data"] = "bm90IGFuIGltYWdl"  # "not an image"
        return {"key": key, "metadata": meta, "response": answer}

    def _write_results(self, job: EmulatedBatch) -> EmulatedFile:
        """Write a file job's results as JSONL, one line at a time (a 500-image file never sits in memory)."""
        file_id = f"batch-{job.name.split('/')[-1]}"
        path = self._dir / f"{file_id}.jsonl"
        with open(path, "w", encoding="utf-8") as out:
            for key, request in job.requests:
                line = self._line(key, request, job.model)
                out.write(json.dumps({k: v for k, v in line.items() if k != "metadata"}) + "\n")
        result = EmulatedFile(name=f"files/{file_id}", display_name=f"{job.display_name} results",
                              mime_type="application/jsonl", size=path.stat().st_size, path=path,
                              source="GENERATED", created=time.time(), complete=True)
        with self._lock:
            self._files[result.name] = result
        return result

    # ---- files
    def _upload(self, rec: Any, upload_id: str | None, raw: bytes) -> Reply:
        headers = rec.headers
        if upload_id is None:  # start: register the file, answer where to send the bytes
            if headers.get("x-goog-upload-command", "").strip() != "start":
                return error_reply(400, "INVALID_ARGUMENT", "Only resumable uploads are supported here.")
            size = int(headers.get("x-goog-upload-header-content-length") or 0)
            if size > MAX_FILE_BYTES:
                return error_reply(400, "INVALID_ARGUMENT",
                                   f"File size {size} exceeds the {MAX_FILE_BYTES} byte limit.")
            meta = (rec.body or {}).get("file") or {}
            file_id = secrets.token_hex(6)
            upload = EmulatedFile(name=f"files/{file_id}", display_name=str(meta.get("displayName") or ""),
                                  mime_type=str(headers.get("x-goog-upload-header-content-type") or ""), size=size,
                                  path=self._dir / f"upload-{file_id}", source="UPLOADED", created=time.time(),
                                  api_key=rec.api_key)
            upload.path.write_bytes(b"")
            token = secrets.token_urlsafe(12)
            with self._lock:
                self._uploads[token] = upload
            url = f"{self._base_url()}/upload/v1beta/files?upload_id={token}&upload_protocol=resumable"
            return 200, {"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"}, {}
        with self._lock:
            session = self._uploads.get(upload_id)
        if session is None:
            return error_reply(404, "NOT_FOUND", "Unknown upload session.")
        upload = session
        command = headers.get("x-goog-upload-command", "")
        offset = int(headers.get("x-goog-upload-offset") or 0)
        with open(upload.path, "r+b") as handle:
            handle.seek(offset)
            handle.write(raw)
        if "finalize" not in command:
            return 200, {"X-Goog-Upload-Status": "active"}, {}
        upload.size = upload.path.stat().st_size
        upload.complete = True
        with self._lock:
            self._uploads.pop(upload_id, None)
            self._files[upload.name] = upload
        return 200, {"X-Goog-Upload-Status": "final"}, {"file": upload.resource(self._base_url())}

    def _file_call(self, method: str, file_id: str, download: bool) -> Reply:
        with self._lock:
            found = self._files.get(f"files/{file_id}")
        if found is None:
            return error_reply(404, "NOT_FOUND", f"File files/{file_id} not found.")
        if method == "DELETE":
            with self._lock:
                self._files.pop(found.name, None)
            return 200, {}, {}
        if download:
            return 200, {"Content-Type": found.mime_type or "application/octet-stream"}, found.path  # type: ignore[return-value]
        return 200, {}, found.resource(self._base_url())
