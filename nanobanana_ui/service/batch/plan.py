"""Planning a batch: build and validate every request before anything is sent, and estimate its cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...domain.costs import estimate_cost, search_cost
from ...domain.errors import InputError
from ...domain.kits import KitUse
from ...domain.models import get_model
from ...domain.request import ImageRequest
from ...domain.templates import PromptCraft
from ..studio import MAX_COUNT, Studio
from ..transparency import Transparency, check_transparency
from .items import BatchFileError, BatchItem
from .manifest import finished_lines

__all__ = ["BatchPlan", "plan_batch"]


@dataclass(frozen=True)
class BatchPlan:
    """Every request of a batch, built and validated, with the cost estimate of those still to send."""

    items: tuple[BatchItem, ...]
    requests: tuple[tuple[BatchItem, ImageRequest], ...]  # one per image: count N → variations 0..N-1
    estimated_cost_usd: float | None  # of the requests still to send (at most: cache hits are free); None: unknown
    already_done: int  # requests finished in an earlier run (from the run folder's manifest)
    kits: dict[str, str] = field(default_factory=dict)  # each kit asked for (NAME or NAME@V) → the NAME@V used


def plan_batch(studio: Studio, items: Sequence[BatchItem], *, out_dir: Path, model: str | None = None,
               style: str | None = None, kit: str | None = None, owner: str | None = None,
               pins: Mapping[str, str] | None = None) -> BatchPlan:
    """Build every request (studio.build_request) and report all bad rows together; nothing is sent.

    A row's own model wins over `model`, which wins over the studio's default; a row's `style` wins over `style`
    (--style). The style's template wraps the row's prompt; the request records the style, template and variables.
    A row's `kit` column wins over `kit`.
    Each kit is read once, here, from `owner`'s kits: the batch keeps that version even if the kit changes or goes.
    `pins` (an earlier plan's `kits`) makes a re-plan use the versions the first one used (Gemini Batch Mode fetches).
    """
    requests: list[tuple[BatchItem, ImageRequest]] = []
    problems: list[str] = []
    kits: dict[str, KitUse] = {}
    book = studio.styles
    for item in items:
        if not 1 <= item.count <= MAX_COUNT:
            problems.append(f"line {item.row}: count must be between 1 and {MAX_COUNT} (got {item.count})")
            continue
        try:
            wanted = (item.kit or kit or "").strip()
            if wanted and wanted not in kits:
                kits[wanted] = studio.kits.use((pins or {}).get(wanted, wanted), owner=owner)
            chosen = book.get(item.style or style or "") if (item.style or style) else None
            craft = None
            if chosen is not None or item.template is not None:
                craft = PromptCraft(style=chosen.id if chosen else None, template=item.template,
                                    variables=item.variables)
            request = studio.build_request(item.mode, chosen.apply(item.prompt) if chosen else item.prompt,
                                           item.images, model=item.model or model, options=item.options, craft=craft,
                                           kit=kits.get(wanted))
            if item.transparent:  # refused before anything is sent: a region, JPEG, difference on Lite
                check_transparency(request, Transparency(method="key" if item.transparent == "key" else "difference"))
        except InputError as error:
            problems.append(f"line {item.row}: {error.message}")
            continue
        requests.extend((item, request.with_variation(v)) for v in range(item.count))
    if problems:
        raise BatchFileError(problems)
    finished = finished_lines(Path(out_dir))
    to_send = [request for item, request in requests if (item.row, request.cache_key()) not in finished]
    # Difference matting is two calls per image: its second call is counted as one more request.
    to_send += [request for item, request in requests if item.transparent == "difference"
                and (item.row, request.cache_key()) not in finished]
    return BatchPlan(items=tuple(items), requests=tuple(requests), estimated_cost_usd=_estimate(studio, to_send),
                     already_done=len(requests) - len(to_send),
                     kits={asked: used.spec for asked, used in kits.items()})


def _estimate(studio: Studio, requests: Sequence[ImageRequest]) -> float | None:
    if studio.offline:  # the emulator's placeholders are free
        return 0.0
    total = 0.0
    for request in requests:
        spec = get_model(request.model)
        cost = estimate_cost(spec, request.options.size)
        if cost is None:
            return None
        # A searched request is expected to run one web query (and one image query with image search).
        total += cost + search_cost(spec, int(request.options.search) + int(request.options.image_search))
    return round(total, 6)
