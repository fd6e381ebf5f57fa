"""Many visitors at once (docs/crowds.md): who a visitor is (never the client-chosen session id), the fair gate
(global and per-visitor caps, round-robin, refusals that say why), the bounded CPU pool, a visitor's Studio held for
a whole operation, a shared in-flight answer copied into each visitor's own folder, and every structure that could
grow per request or per session bounded. Fairness is judged by the order of arrivals at the emulator, never by time.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from conftest import FLASH_25, TEST_KEY
from servers import app_env, start_app, stop_app

from nanobanana_ui.domain.config import Settings
from nanobanana_ui.domain.errors import RateLimitError
from nanobanana_ui.domain.request import Mode
from nanobanana_ui.emulator import Fault, GeminiEmulator
from nanobanana_ui.imaging import workers
from nanobanana_ui.service.fairness import BUSY_MESSAGE, STILL_RUNNING, FairGate
from nanobanana_ui.service.studio import Studio
from nanobanana_ui.service.visitors import KeyRing, client_address
from nanobanana_ui.ui.batch_tab import BatchPage
from nanobanana_ui.ui.runner import Runner
from nanobanana_ui.ui.runner_base import visitor_owner
from nanobanana_ui.ui.session import Session
from nanobanana_ui.ui.sessions import SessionReaper, launch_options

KEY_A = "fakeVisitorA-0123456789abcdefghijklmnopq"
KEY_B = "fakeVisitorB-zyxwvutsrqponmlkjihgfedcba9"
HOST_KEY = "fakeHostKey-do-not-use-for-visitors-42"


def quiet(*args, **kwargs):
    """A gr.Progress stand-in."""


class Visitor:
    """A request as Gradio hands it to a handler: a session id (the client's choice), a peer, headers, a login."""

    def __init__(self, session: str, host: str = "203.0.113.7", forwarded: str | None = None,
                 username: str | None = None) -> None:
        self.session_hash, self.username = session, username
        self.client = SimpleNamespace(host=host)
        self.headers = {"x-forwarded-for": forwarded} if forwarded is not None else {}


def collect_closed_transports() -> None:
    """Collect the SDK's already-closed clients' transports now, quietly. A visitor's Studio closed after its key was
    evicted leaves one for the garbage collector (also on main: a Runner request with a visitor's key, then aclose)."""
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def public(emulator, tmp_path, **changes) -> Settings:
    base = {"home": tmp_path / "home", "base_url": emulator.base_url, "public": True, "timeout_s": 10,
            "max_attempts": 1, "model": FLASH_25, "visitor_rpm": 1000}
    return Settings(**{**base, **changes})


# -- who a visitor is (issue 24 item 12) -----------------------------------------------------------------------------


def test_client_address_trusts_only_the_proxys_entry():
    assert client_address(Visitor("s", host="10.1.1.1")) == "10.1.1.1"
    forged = Visitor("s", host="10.1.1.1", forwarded="1.2.3.4, 198.51.100.9")
    assert client_address(forged, 0) == "10.1.1.1"  # no trusted proxy: the header is the client's own words
    assert client_address(forged, 1) == "198.51.100.9"  # the entry Spaces' proxy appended, not the client's
    assert client_address(forged, 2) == "1.2.3.4"
    assert client_address(Visitor("s", host="10.1.1.1", forwarded=""), 1) == "10.1.1.1"
    assert client_address(None) == "local"


def test_forged_session_ids_are_one_visitor_for_the_limit(emulator, tmp_path):
    """Keyless visitors on the host's key: fresh session ids from one address share one limit; own keys count apart
    from each other, whatever the session; a login is its own visitor."""
    settings = public(emulator, tmp_path, api_key=HOST_KEY, allow_server_key=True, visitor_rpm=2)

    async def scenario():
        async with Studio(settings) as host:
            runner = Runner(host, owner_of=visitor_owner)
            for n in range(2):
                runner.count_requests(Visitor(f"forged-{n}"), 1, host)
            with pytest.raises(gr.Error, match="per visitor"):
                runner.count_requests(Visitor("forged-3"), 1, host)  # a third session id: still the same visitor
            with pytest.raises(gr.Error, match="per visitor"):  # a forged header without a trusted proxy
                runner.count_requests(Visitor("forged-4", forwarded="192.0.2.99"), 1, host)
            runner.count_requests(Visitor("other", host="203.0.113.8"), 2, host)  # another address: its own limit
            runner.count_requests(Visitor("forged-5", username="ana"), 2, host)  # a login: its own limit
            a = runner.studio_for(KEY_A, Visitor("a1"))
            runner.count_requests(Visitor("a1"), 2, a)  # the same address, but their own key: their own limit
            with pytest.raises(gr.Error, match="per visitor"):
                runner.count_requests(Visitor("a2", host="198.51.100.1"), 1, a)  # the key in another tab/address
            assert runner.identity(Visitor("x"), a).startswith("key:") and KEY_A not in runner.identity(None, a)
            assert runner.identity(Visitor("x"), host) == runner.identity(Visitor("y"), host)  # session ignored
            await runner.keys.aclose()

    asyncio.run(scenario())


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_visitor(emulator, tmp_path):
    settings = public(emulator, tmp_path, api_key=HOST_KEY, allow_server_key=True, visitor_rpm=1, proxy_hops=1)

    async def scenario():
        async with Studio(settings) as host:
            runner = Runner(host)
            runner.count_requests(Visitor("s1", host="10.0.0.2", forwarded="192.0.2.1"), 1, host)
            runner.count_requests(Visitor("s2", host="10.0.0.2", forwarded="192.0.2.2"), 1, host)  # another visitor
            with pytest.raises(gr.Error):  # the client prepends a forged entry: the proxy's entry still decides
                runner.count_requests(Visitor("s3", host="10.0.0.2", forwarded="8.8.8.8, 192.0.2.1"), 1, host)

    asyncio.run(scenario())


@pytest.mark.slow
def test_fresh_gradio_client_sessions_do_not_reset_the_visitor_limit(emulator, tmp_path):
    """Through gradio_client against `python app.py`: every Client is a new session id; the third is refused."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    env = app_env(NANOBANANA_PUBLIC="1", NANOBANANA_ALLOW_SERVER_KEY="1", NANOBANANA_BASE_URL=emulator.base_url,
                  NANOBANANA_HOME=str(tmp_path / "home"), GRADIO_TEMP_DIR=str(tmp_path / "gradio"),
                  GEMINI_API_KEY=HOST_KEY, NANOBANANA_VISITOR_RPM="2")
    process, url = start_app(env)
    try:
        for n in range(2):
            Client(url, verbose=False).predict(f"fox {n}", api_name="/generate")
        with pytest.raises(AppError, match="per visitor"):
            Client(url, verbose=False).predict("fox 3", api_name="/generate")
    finally:
        log = stop_app(process)
    assert len(emulator.generate_requests) == 2 and HOST_KEY not in log


# -- the fair gate (issue 25) ----------------------------------------------------------------------------------------


def test_gate_serves_waiting_visitors_round_robin_and_forgets_them():
    async def scenario():
        gate = FairGate(total=2, per_visitor=2, visitor_queue=8, queue_size=64)
        release: dict[int, asyncio.Event] = {}
        order: list[str] = []

        async def one(visitor: str, n: int) -> None:
            async with gate.slot(visitor):
                order.append(visitor)
                release[n] = asyncio.Event()
                await release[n].wait()

        tasks = [asyncio.create_task(one("A", n)) for n in range(6)]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(one("B", 6)), asyncio.create_task(one("C", 7))]
        for _ in range(12):  # finish whatever runs, one at a time
            await asyncio.sleep(0.01)
            running = [n for n, event in release.items() if not event.is_set()]
            if running:
                release[running[0]].set()
        await asyncio.gather(*tasks)
        return order, gate

    order, gate = asyncio.run(scenario())
    assert order[:5] == ["A", "A", "B", "C", "A"]  # B and C start before A's third
    assert gate.snapshot() == {"running": 0, "waiting": 0, "visitors": 0}
    assert not gate.running and not gate.waiting


def test_gate_caps_each_visitor_and_refuses_with_a_reason():
    async def scenario():
        gate = FairGate(total=10, per_visitor=1, visitor_queue=1, queue_size=2)
        lines: list[str] = []
        hold = asyncio.Event()

        async def one(visitor: str) -> None:
            async with gate.slot(visitor, lines.append):
                await hold.wait()

        first = asyncio.create_task(one("A"))
        await asyncio.sleep(0)
        second = asyncio.create_task(one("A"))  # waits behind A's own first, told so
        await asyncio.sleep(0)
        with pytest.raises(RateLimitError, match=STILL_RUNNING):
            await gate.enter("A")  # A's own queue is full: refused at once
        other = asyncio.create_task(one("B"))  # another visitor runs at once, beside A's
        await asyncio.sleep(0)
        assert gate.snapshot() == {"running": 2, "waiting": 1, "visitors": 2}
        hold.set()
        await asyncio.gather(first, second, other)
        return lines, gate

    lines, gate = asyncio.run(scenario())
    assert lines[0].startswith(STILL_RUNNING)
    assert gate.snapshot() == {"running": 0, "waiting": 0, "visitors": 0}


def test_a_full_queue_refuses_at_once_and_a_waiter_who_leaves_frees_their_place():
    async def scenario():
        gate = FairGate(total=1, per_visitor=1, visitor_queue=5, queue_size=1)
        hold = asyncio.Event()

        async def one(visitor: str) -> None:
            async with gate.slot(visitor):
                await hold.wait()

        running = asyncio.create_task(one("X"))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(one("Y"))
        await asyncio.sleep(0)
        with pytest.raises(RateLimitError) as busy:
            await gate.enter("Z")
        waiting.cancel()
        await asyncio.sleep(0)
        after_cancel = gate.snapshot()
        hold.set()
        await running
        return busy.value, after_cancel, gate

    busy, after_cancel, gate = asyncio.run(scenario())
    assert busy.message == BUSY_MESSAGE and "try again in a minute" in busy.message
    assert after_cancel == {"running": 1, "waiting": 0, "visitors": 1}
    assert gate.snapshot() == {"running": 0, "waiting": 0, "visitors": 0}


def test_a_quiet_visitor_starts_before_a_floods_third_request(emulator, tmp_path):
    """In-process Runner, the emulator answering in 0.3 s: A sends 6 at once, then B one; B's arrives second wave."""
    emulator.delay_s = 0.3
    settings = public(emulator, tmp_path, visitor_concurrency=2, visitor_queue=8)

    async def scenario():
        async with Studio(settings) as host:
            runner = Runner(host, owner_of=visitor_owner)
            flood = [asyncio.create_task(runner.generate(f"flood {n}", api_key=KEY_A, request=Visitor(f"a{n}"),
                                                         progress=quiet)) for n in range(6)]
            await asyncio.sleep(0.05)
            quiet_one = asyncio.create_task(runner.generate("quiet", api_key=KEY_B, request=Visitor("b"),
                                                            progress=quiet))
            await asyncio.gather(*flood, quiet_one)
            assert runner.gate.snapshot() == {"running": 0, "waiting": 0, "visitors": 0}
            await runner.keys.aclose()

    asyncio.run(scenario())
    arrivals = [r.api_key for r in sorted(emulator.generate_requests, key=lambda r: r.received_at)]
    assert len(arrivals) == 7
    assert arrivals.index(KEY_B) < 2 + 1, arrivals  # before A's third: A holds only its own 2 slots


def test_a_visitor_over_their_cap_is_told_their_earlier_requests_are_still_running(emulator, tmp_path):
    emulator.delay_s = 0.3
    settings = public(emulator, tmp_path, visitor_concurrency=1, visitor_queue=1)
    lines: list[str] = []

    async def scenario():
        async with Studio(settings) as host:
            runner = Runner(host)
            calls = [asyncio.create_task(runner.generate(f"p{n}", api_key=KEY_A, request=Visitor(f"t{n}"),
                                                         progress=lambda *a, desc=None, **k: lines.append(desc)))
                     for n in range(3)]
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            await runner.keys.aclose()
            return outcomes

    outcomes = asyncio.run(scenario())
    refused = [o for o in outcomes if isinstance(o, gr.Error)]
    assert len(refused) == 1 and STILL_RUNNING in refused[0].message and "Nothing was sent" in refused[0].message
    assert any(line and line.startswith(STILL_RUNNING) for line in lines)  # the one that waited was told why
    assert len(emulator.generate_requests) == 2


def test_gradio_admits_what_the_gate_holds_and_launch_sizes_its_threads(emulator, tmp_path):
    settings = public(emulator, tmp_path, concurrency=30, queue_size=20)
    runner = Runner(Studio(settings))
    assert runner.events == {"concurrency_limit": 50, "concurrency_id": "studio"}
    options = launch_options(settings)
    assert options["max_threads"] >= 50 + 1 and options["state_session_capacity"] == settings.max_sessions
    assert options["max_file_size"] == settings.max_file_size


# -- the bounded CPU pool -----------------------------------------------------------------------------------------


def test_cpu_steps_run_on_a_pool_sized_to_the_setting():
    workers.configure(3)
    try:
        async def names_of_threads():
            return await asyncio.gather(*(workers.on_cpu(lambda: threading.current_thread().name) for _ in range(8)))

        names = asyncio.run(names_of_threads())
        assert all(name.startswith(workers.THREAD_PREFIX) for name in names)
        assert workers.cpu_pool()._max_workers == 3
        assert workers.run_on_cpu(lambda: threading.current_thread().name).startswith(workers.THREAD_PREFIX)
    finally:
        workers.configure(None)
        workers.shutdown()


def test_a_results_images_are_written_on_the_cpu_pool(settings, emulator, monkeypatch):
    from nanobanana_ui.imaging import outputs

    seen: list[str] = []
    real = outputs.save_output

    def spy(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr("nanobanana_ui.imaging.outputs.save_output", spy)

    async def scenario():
        async with Studio(settings) as studio:
            await studio.generate("a pool fox")

    asyncio.run(scenario())
    assert seen and all(name.startswith(workers.THREAD_PREFIX) for name in seen)


# -- a visitor's Studio held for the whole operation (issue 24 item 8) ----------------------------------------------


def test_a_running_batch_survives_its_client_being_evicted(emulator, tmp_path, monkeypatch):
    """Between two rows nothing is in flight: another key evicts A's client then, and A's page closes."""
    from nanobanana_ui.service.batch import run as batch_run

    settings = public(emulator, tmp_path, key_clients=1)
    prompts = [f"row {n}" for n in range(4)]
    real_append = batch_run.Manifest.append
    gap: dict = {}

    def slow_append(self, record):  # the first row's manifest line: the gap between two rows, made long
        real_append(self, record)
        if "at" not in gap:
            gap["at"] = True
            gap["loop"].call_soon_threadsafe(gap["evict"])
            time.sleep(1.0)  # longer than the closer's first checks

    monkeypatch.setattr(batch_run.Manifest, "append", slow_append)

    async def scenario():
        async with Studio(settings) as host:
            ring = KeyRing(host, capacity=1)
            runner = Runner(host, ring, owner_of=visitor_owner)
            page = BatchPage(host, visitor_owner, concurrency=1, runner=runner)
            gap["loop"] = asyncio.get_running_loop()
            gap["evict"] = lambda: (gap.setdefault("held", [s.held for s in ring._studios.values()]),
                                    ring.studio_for(KEY_B, "someone-else"), ring.forget_session("batcher"))
            updates = [update async for update in page.run(None, "\n".join(prompts), api_key=KEY_A,
                                                           request=Visitor("batcher"), progress=quiet)]
            await asyncio.gather(*ring._closing)  # A's Studio closes once the batch is over
            await ring.aclose()
            return updates

    updates = asyncio.run(scenario())
    collect_closed_transports()
    summary = updates[-1]["summary"]
    assert gap["held"] == [True]  # between two rows, with nothing in flight, A's Studio is held by the batch
    assert len(updates[-1]["gallery"]) == len(prompts), summary
    assert sum(r.api_key == KEY_A for r in emulator.generate_requests) == len(prompts)


def test_an_evicted_studio_held_by_an_operation_stays_open_until_it_ends(emulator, tmp_path):
    settings = public(emulator, tmp_path)

    async def scenario():
        async with Studio(settings) as host:
            ring = KeyRing(host, capacity=1)
            a = ring.studio_for(KEY_A, "a")
            await a.generate("first")  # its client and history are open
            release = a.hold()  # e.g. a batch between two rows: nothing in flight right now
            ring.studio_for(KEY_B, "b")  # evicts A
            ring.forget_session("a")  # and A's page closes
            await asyncio.sleep(0.7)  # past the closer's first checks
            result = await a.generate("still open")  # before the fix: a closed client and database
            release()
            await asyncio.gather(*ring._closing)
            await ring.aclose()
            return result

    assert asyncio.run(scenario()).images
    collect_closed_transports()


def test_a_request_waiting_its_turn_keeps_its_studio_open(emulator, tmp_path):
    emulator.delay_s = 0.3
    settings = public(emulator, tmp_path, visitor_concurrency=1, visitor_queue=2)

    async def scenario():
        async with Studio(settings) as host:
            ring = KeyRing(host, capacity=1)
            runner = Runner(host, ring)
            calls = [asyncio.create_task(runner.generate(f"w{n}", api_key=KEY_A, request=Visitor("w"),
                                                         progress=quiet)) for n in range(2)]
            await asyncio.sleep(0.05)
            a = ring.studio_for(KEY_A, "w")
            held = a.held  # the first in flight, the second waiting in the gate: both hold A's Studio
            ring.studio_for(KEY_B, "other")  # evicts A's Studio while A's second request waits in the gate
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            await asyncio.gather(*ring._closing)
            await ring.aclose()
            return held, outcomes

    held, outcomes = asyncio.run(scenario())
    collect_closed_transports()
    assert held and not [o for o in outcomes if isinstance(o, BaseException)], outcomes


# -- a shared in-flight answer (issue 24 item 13) -------------------------------------------------------------------


def test_a_shared_in_flight_answer_is_copied_into_each_callers_folder(settings, emulator, tmp_path):
    emulator.fail_next(Fault.delay(0.5))
    a, b = tmp_path / "visitor-a", tmp_path / "visitor-b"

    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, "the same fox")
        return await asyncio.gather(studio.run(request, out_dir=a), studio.run(request, out_dir=b))

    async def main():
        async with Studio(settings) as studio:
            return await scenario(studio)

    first, second = asyncio.run(main())
    assert len(emulator.generate_requests) == 1  # still one call
    assert all(Path(image.path).parent == a for image in first.images)
    assert all(Path(image.path).parent == b for image in second.images)  # never a path in a's folder
    assert first.images[0].sha256 == second.images[0].sha256 and Path(second.images[0].path).is_file()


# -- bounded memory (issue 25 part 2) ---------------------------------------------------------------------------------


def post(url: str) -> None:
    request = urllib.request.Request(url, data=b'{"contents":[{"parts":[{"text":"x"}]}]}', method="POST",
                                     headers={"Content-Type": "application/json", "x-goog-api-key": "k"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def test_the_emulators_log_is_bounded():
    with GeminiEmulator(record_limit=3) as emu:
        for n in range(5):
            post(f"{emu.base_url}/v1beta/models/{FLASH_25}:generateContent?n={n}")
        assert len(emu.requests) == 3 and emu.requests_seen == 5
        assert [r.path for r in emu.requests] == [r.path for r in emu.requests][-3:]
    with GeminiEmulator(record_limit=0) as off:
        post(f"{off.base_url}/v1beta/models/{FLASH_25}:generateContent")
        assert off.requests == [] and off.requests_seen == 1


def test_the_offline_apps_emulator_log_follows_the_setting(monkeypatch):
    from nanobanana_ui.emulator import server

    monkeypatch.setattr(server, "_shared", None)
    shared = server.shared_emulator(record_limit=7, delay_s=0.25)
    try:
        assert shared._requests.maxlen == 7 and shared.delay_s == 0.25
    finally:
        shared.stop()


def test_the_key_rings_session_map_is_bounded(emulator, tmp_path):
    settings = public(emulator, tmp_path, max_sessions=10)

    async def scenario():
        async with Studio(settings) as host:
            ring = KeyRing(host)
            for n in range(40):  # API calls: a fresh session each, never an unload
                ring.studio_for(KEY_A, f"session-{n}")
            assert len(ring._sessions) == 10 and len(ring) == 1
            await ring.aclose()

    asyncio.run(scenario())


def test_a_session_keeps_no_image_bytes_of_its_results(settings, emulator):
    async def scenario(studio):
        return await studio.generate("a fox to keep")

    result = in_studio_run(settings, scenario)
    assert result.model_turn  # the Studio's result carries the model turn ...
    session = Session()
    session.record(result.request, (), 1, [result])
    assert session.last_results[0].model_turn == ()  # ... the session does not keep its bytes


def in_studio_run(settings, scenario):
    async def main():
        async with Studio(settings) as studio:
            return await scenario(studio)

    return asyncio.run(main())


class FakeHolder:
    def __init__(self) -> None:
        self.session_data: OrderedDict[str, SimpleNamespace] = OrderedDict()
        self.time_last_used: dict[str, float] = {}
        self.lock = threading.Lock()


def test_the_reaper_releases_a_closed_sessions_state_after_the_grace():
    holder = FakeHolder()
    demo = SimpleNamespace(state_holder=holder, _queue=SimpleNamespace(pending_event_ids_session={"busy": {"e1"}}))
    for name, closed in (("gone", True), ("back", False), ("busy", True)):
        holder.session_data[name] = SimpleNamespace(is_closed=closed)
        holder.time_last_used[name] = 0.0
    reaper = SessionReaper(demo, grace_s=0.05)  # type: ignore[arg-type]

    async def scenario():
        for name in ("gone", "back", "busy"):
            reaper.closed(SimpleNamespace(session_hash=name))
        assert set(holder.session_data) == {"gone", "back", "busy"}  # not before the grace
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert set(holder.session_data) == {"back", "busy"}  # reopened, or an event still pending: kept
    assert "gone" not in holder.time_last_used and "gone" not in reaper.scheduled


def test_gradio_still_has_what_the_reaper_and_launch_options_use():
    import inspect

    from gradio.queueing import Queue
    from gradio.state_holder import SessionState, StateHolder

    holder = StateHolder()
    assert hasattr(holder, "session_data") and hasattr(holder, "time_last_used") and hasattr(holder, "lock")
    assert "is_closed" in inspect.getsource(SessionState.__init__)
    assert "pending_event_ids_session" in inspect.getsource(Queue.__init__)
    launch = inspect.signature(gr.Blocks.launch).parameters
    assert "max_threads" in launch and "state_session_capacity" in launch


def test_the_private_install_keeps_no_per_visitor_cap(settings):
    runner = Runner(Studio(settings))
    assert runner.gate.per_visitor == settings.concurrency and TEST_KEY


def _tls_contexts(backend) -> set[int]:
    """The TLS contexts a backend's SDK client would use: sync httpx, async httpx, and its websocket path."""
    api = backend._client._api_client
    contexts = (api._httpx_client._transport._pool._ssl_context, api._async_httpx_client_args["verify"],
                api._websocket_ssl_ctx["ssl"])
    return {id(context) for context in contexts}


def test_visitors_backends_share_one_tls_context_instead_of_loading_the_ca_bundle_each(monkeypatch, tmp_path):
    import certifi

    from nanobanana_ui.backends.gemini import GeminiBackend

    first, second = (GeminiBackend(api_key=key, base_url="http://127.0.0.1:9") for key in (KEY_A, KEY_B))
    shared = _tls_contexts(first)
    assert len(shared) == 1 and _tls_contexts(second) == shared  # one context, loaded once, for every visitor
    # A user's own CA bundle (SSL_CERT_FILE, read as the SDK reads it) still applies: a context of its own.
    bundle = tmp_path / "corporate.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    corporate = GeminiBackend(api_key=KEY_A, base_url="http://127.0.0.1:9")
    assert len(_tls_contexts(corporate)) == 1 and _tls_contexts(corporate) != shared
