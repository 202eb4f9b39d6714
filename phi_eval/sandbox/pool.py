"""One executor protocol: a pool of warm runners fed over a line transport, whatever the transport.

Everything but the transport exists here once, for the Docker and the local executor alike: the
worker loop that writes jobs ahead (PIPELINE) and reads verdicts, the recovery from a runner that
hangs, dies or talks nonsense (replace it; re-run or classify the job it held, as
phi_eval.sandbox.blame decides), the worker count, starting and closing the pool, and parking
runaway samples (phi_eval.sandbox.parking) where the transport can read CPU time. A transport
subclasses Pool with how a slot (phi_eval.sandbox.protocol.Slot) is made and how its backend's
errors read.

The host keeps the last word: every job has a host-side deadline (its timeout + a grace), and the
machine's failures are never the model's.
"""

from __future__ import annotations

import atexit
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.jobs import ExecJob, ExecResult
from phi_eval.sandbox.blame import is_infrastructure, verdict_after
from phi_eval.sandbox.parking import Parking
from phi_eval.sandbox.protocol import (
    GRACE_S,
    PIPELINE,
    START_PATIENCE_S,
    SandboxFault,
    Slot,
    classify,
    handshake,
    receive,
    send_job,
    short,
    worker_count,
)


class Pool(Parking):
    """The executor both transports share: subclasses say how a slot is made (`_make_slot`) and may
    translate their backend's errors; `run()` and `close()` are the whole public protocol."""

    WHAT = "sandbox runner"  # in messages: what failed to start
    HINT = "run `phi-eval sandbox check`"  # what to do when the sandbox itself fails

    def __init__(self, workers: int | None, most: int, *, grace_s: float = GRACE_S) -> None:
        self.workers = worker_count(workers, most)
        self.grace_s = grace_s
        self._slots: list[Slot] = []
        self._lock = threading.Lock()
        self._closed = False
        self._pool_memory = 0
        self._parked = 0  # slots running a parked sample (phi_eval/sandbox/parking.py)
        self._spares: list[Slot] = []  # started slots not serving a worker, for the next park
        self._parked_slots: set[Slot] = set()  # running a parked sample or answers to ignore
        self._starting_spare = False  # one spare is started ahead at a time
        self.park = True  # off: every sample holds its worker to the end (bench/measure_reference_times.py)
        self.parks = 0  # samples parked so far
        self.on_start: Callable[[Slot], None] | None = None  # called with each runner once it said ready

    # -- what a transport provides ------------------------------------------------------------
    def _make_slot(self, index: int) -> Slot:
        """A slot for worker `index`, not started."""
        raise NotImplementedError

    def _released(self, slot: Slot) -> None:
        """After `slot` was removed (its resources may be handed out again)."""

    def _memory_for(self, job_mb: int) -> int:
        """The memory a pool for jobs of up to `job_mb` needs (a larger need restarts the pool)."""
        return 0

    def _backend_error(self, exc: BaseException) -> bool:
        """An error of the transport's backend (as opposed to a bug of ours)."""
        return False

    def _backend_lost(self, exc: BaseException, index: int) -> PhiEvalError | None:
        """The one line for a backend that stopped answering; None while it still answers."""
        return None

    def _start_error(self, exc: BaseException) -> BaseException:
        """What the caller sees when the pool cannot start."""
        if isinstance(exc, SandboxFault):
            return PhiEvalError(f"{exc}; {self.HINT}")
        if self._backend_error(exc):
            return self._backend_lost(exc, 0) or exc
        return exc

    def _run_error(self, exc: BaseException) -> BaseException:
        """What the caller sees when a worker fails for good mid-run."""
        if isinstance(exc, SandboxFault):
            return PhiEvalError(f"{exc}; {self.HINT}")
        return exc

    def _after_close(self, interrupted: bool) -> None:
        """Clean up what removing the slots may have left behind."""

    # -- slots --------------------------------------------------------------------------------
    def _new_slot(self, index: int) -> Slot:
        slot = self._make_slot(index)
        with self._lock:
            if self._closed:
                self._released(slot)
                raise SandboxFault("executor closed")
            self._slots.append(slot)
        try:
            slot.start()
            handshake(slot)
            if self.on_start is not None:
                self.on_start(slot)
        except Exception as exc:
            tail = slot.stderr_tail()
            self._drop(slot)
            if isinstance(exc, SandboxFault):
                raise SandboxFault(f"{self.WHAT} did not start: {exc}; {tail}".rstrip("; ")) from None
            raise
        if self._closed:  # closed while this one was starting: it must not outlive the executor
            self._drop(slot)
            raise SandboxFault("executor closed")
        return slot

    def _replace(self, index: int) -> Slot:
        """A fresh slot for worker `index`, tried a few times (one may be killed while it starts);
        PhiEvalError in one line when the backend is gone or it never starts."""
        last: BaseException | None = None
        give_up = time.monotonic() + START_PATIENCE_S
        attempt = 0
        while attempt == 0 or time.monotonic() < give_up:
            attempt += 1
            if self._closed:
                raise SandboxFault("executor closed")
            try:
                return self._new_slot(index)
            except SandboxFault as exc:
                last = exc
            except Exception as exc:  # noqa: BLE001 - backend errors: is the backend still there?
                if not self._backend_error(exc):
                    raise
                lost = self._backend_lost(exc, index)
                if lost is not None:
                    raise lost from None
                last = exc
            time.sleep(min(0.2 * attempt, 2.0))
        raise PhiEvalError(
            f"cannot start a fresh {self.WHAT} in {START_PATIENCE_S:g} s ({short(str(last), 200)}); "
            f"the results so far are kept: {self.HINT}, then the same command with --resume"
        )

    def _drop(self, slot: Slot) -> None:
        slot.remove()
        with self._lock:
            if slot not in self._slots:
                return
            self._slots.remove(slot)
        self._released(slot)

    def live_slots(self) -> list[Slot]:
        """Every started slot, by worker: what tools and tests inspect."""
        with self._lock:
            return sorted(self._slots, key=lambda s: s.index)

    def ready_lines(self) -> list[dict[str, Any]]:
        """The ready line of each live runner, by worker."""
        return [s.ready for s in self.live_slots()]

    def _start_pool(self, memory_mb: int) -> list[Slot]:
        """Start all slots at once (in threads: each start is mostly waiting)."""
        if self._slots and self._pool_memory >= memory_mb:
            with self._lock:
                busy = set(self._spares) | self._parked_slots
                return [s for s in self._slots if s not in busy][: self.workers]
        atexit.register(self.close)  # from the first start on, there is something to close at exit
        for slot in list(self._slots):
            self._drop(slot)
        self._spares.clear()
        self._parked_slots.clear()
        self._pool_memory = memory_mb
        slots: list[Slot | None] = [None] * self.workers
        errors: list[BaseException] = []

        def start(i: int) -> None:
            try:
                slots[i] = self._new_slot(i)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(i,), daemon=True) for i in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise self._start_error(errors[0]) from None
        return [s for s in slots if s is not None]

    def warm(self, memory_mb: int) -> None:
        """Start the pool now for jobs of `memory_mb` (run() reuses it), e.g. while input is read."""
        self._start_pool(self._memory_for(memory_mb))

    # -- running ------------------------------------------------------------------------------
    def run(self, jobs: Iterable[ExecJob], on_result: Callable[[ExecResult], None]) -> None:
        """Run every job; `on_result` is called on this thread as verdicts arrive (any order)."""
        if self._closed:
            raise PhiEvalError("the executor is closed; create a new one")
        todo = list(jobs)
        if not todo:
            return
        slots = self._start_pool(self._memory_for(max(j.memory_mb for j in todo)))
        work: queue.SimpleQueue[ExecJob] = queue.SimpleQueue()
        for job in todo:
            work.put(job)
        done: queue.SimpleQueue[ExecResult | BaseException] = queue.SimpleQueue()
        stop = threading.Event()
        threads = [
            threading.Thread(target=self._work, args=(s.index, s, work, done, stop), daemon=True,
                             name=f"phi-eval-sandbox-{i}")
            for i, s in enumerate(slots)
        ]
        for t in threads:
            t.start()
        try:
            for _ in range(len(todo)):
                item = done.get()
                if isinstance(item, BaseException):
                    raise self._run_error(item) from None
                on_result(item)
        except BaseException:
            stop.set()
            self.close()  # Ctrl-C or an error: take every runner down before leaving
            raise
        for t in threads:
            t.join()

    def _work(
        self,
        index: int,
        slot: Slot,
        work: queue.SimpleQueue[ExecJob],
        done: queue.SimpleQueue[ExecResult | BaseException],
        stop: threading.Event,
        parked: deque[ExecJob] | None = None,
        parked_since: float = 0.0,
    ) -> None:
        """Feed one runner from the shared queue, PIPELINE jobs deep, and recover from its faults.

        The next job is written while the runner works on the current one, so the runner never waits
        for a round trip. On a fault the oldest unanswered job is blamed: run again on a fresh
        runner or classified, as phi_eval.sandbox.blame decides; the jobs queued behind it are
        re-sent without blame.

        A head job still running past its park time (phi_eval/sandbox/parking.py) is left to finish
        in its runner at a low CPU weight, served by a thread of its own (`parked`: the jobs it
        holds), while this worker goes on in a spare.
        """
        pending: deque[ExecJob] = parked if parked is not None else deque()  # sent, unanswered, oldest first
        retry: deque[ExecJob] = deque()  # to send before anything from the shared queue
        since = parked_since if parked is not None else time.monotonic()  # when the runner started on pending[0]
        # The jobs already written behind a parked head are sent again by the worker to its next
        # runner; here they run only because they cannot be unsent, and their answers are ignored.
        ignore = {job.id for job in list(pending)[1:]} if parked is not None else set()
        holds_place = parked is not None  # the parked sample still counts against MAX_PARKED
        attempts: dict[str, int] = {}

        def recover(fault: SandboxFault, runner_said: str | None = None) -> None:
            nonlocal slot, since
            why = classify(fault, oom=slot.oom_killed(), tail=slot.stderr_tail(), runner_said=runner_said)
            self._drop(slot)
            slot = self._replace(index)
            since = time.monotonic()
            if not pending:
                return
            head = pending.popleft()
            retry.extendleft(reversed(pending))
            pending.clear()
            attempts[head.id] = attempts.get(head.id, 0) + 1
            verdict = verdict_after(head, attempts[head.id], why, self.grace_s)
            if verdict is None:
                retry.appendleft(head)
            else:
                done.put(verdict)

        try:
            while not stop.is_set():
                while len(pending) < PIPELINE:
                    if retry:
                        job = retry.popleft()
                    else:
                        try:
                            job = work.get_nowait()
                        except queue.Empty:
                            break
                    if not pending:
                        since = time.monotonic()
                    pending.append(job)
                    try:
                        send_job(slot, job, since + pending[0].timeout_s + self.grace_s)
                    except SandboxFault as fault:
                        recover(fault)
                        break
                if not pending:
                    if retry:
                        continue
                    if parked is not None:
                        self._unpark(slot, holds_place)
                    return
                head = pending[0]
                if parked is None and self._may_park(head, slot, since):
                    self._park_out(index, slot, deque(pending), since, done, stop)
                    retry.extendleft(reversed(list(pending)[1:]))  # not started yet: they go on here
                    slot, pending, since = self._spare_slot(index), deque(), time.monotonic()
                    continue
                try:
                    result = receive(slot, head, since + head.timeout_s + self.grace_s)
                except SandboxFault as fault:
                    recover(fault)
                    if parked is not None:
                        with self._lock:
                            self._parked_slots.add(slot)
                    if ignore:  # a fresh runner runs only what this one still owes
                        kept = [job for job in retry if job.id not in ignore]
                        retry.clear()
                        retry.extend(kept)
                        ignore.clear()
                    continue
                if is_infrastructure(result):  # the runner's own machinery failed: a fresh runner
                    recover(SandboxFault(result.detail), runner_said=result.detail)
                    continue
                pending.popleft()
                since = time.monotonic()
                if result.id in ignore:
                    ignore.discard(result.id)
                    continue
                done.put(result)
                if holds_place:  # what is left here are answers to ignore: a place for the next park
                    holds_place = False
                    with self._lock:
                        self._parked -= 1
                if slot.dirty:  # the sample's verdict stands; the jobs sent behind it go to a fresh runner
                    if parked is not None:  # a parked runner's other answers were to be ignored anyway
                        self._drop(slot)
                        with self._lock:
                            self._parked_slots.discard(slot)
                        return
                    retry.extendleft(reversed(pending))
                    pending.clear()
                    self._drop(slot)
                    slot = self._replace(index)
                    since = time.monotonic()
        except SandboxFault as exc:
            if not self._closed:
                done.put(exc)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            if self._backend_error(exc):
                exc = self._backend_lost(exc, index) or exc
            done.put(exc)

    # -- closing ------------------------------------------------------------------------------
    def close(self) -> None:
        """End every runner this executor started (also run at exit); on an error or Ctrl-C, kill them."""
        interrupted = sys.exc_info()[0] is not None
        with self._lock:
            self._closed = True
            slots, self._slots = list(self._slots), []
        end = [s.remove if interrupted else s.stop for s in slots]
        threads = [threading.Thread(target=f, daemon=True) for f in end]
        try:
            for t in threads:
                t.start()
        except RuntimeError:  # at interpreter shutdown (3.12+ refuses new threads): one by one
            for f in end:
                f()
        for t in threads:
            if t.ident is not None:
                t.join(timeout=30)
        self._after_close(interrupted)
        atexit.unregister(self.close)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
