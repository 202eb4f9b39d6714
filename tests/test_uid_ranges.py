"""Sandbox uid ranges: every live container of every phi-eval process holds a range of its own.

Without user namespaces RLIMIT_NPROC counts per uid across the whole machine, so two containers that
share a uid share a fork bomb's budget. The ranges were once keyed by worker number % 32: worker 32
shared worker 0's uids, and a parked sample's container shared them with the spare serving its worker."""

from __future__ import annotations

from phi_eval.sandbox.docker import (
    MAX_WORKERS,
    RANGES_PER_PROCESS,
    UidRanges,
    container_options,
)


def uid_set(uids: tuple[int, int, int]) -> set[int]:
    test_uid, first, n = uids
    return {test_uid, *range(first, first + n)}


def test_live_containers_never_share_a_uid_past_32_or_across_processes() -> None:
    mine, other = UidRanges(pid=4242), UidRanges(pid=4243)
    held = [(r, r.acquire()) for r in (mine, other) for _ in range(MAX_WORKERS + 40)]  # workers + spares
    seen: set[int] = set()
    for ranges, n in held:
        uids = uid_set(ranges.uids(n))
        assert not uids & seen
        assert min(uids) >= 100_000 and max(uids) < 2**31
        seen |= uids
    # a range comes back only once released (its container removed), and then it is reused
    ranges, n = held[33]
    ranges.release(n)
    assert ranges.acquire() == n


def test_the_container_is_started_with_its_own_range() -> None:
    ranges = UidRanges()
    a, b = ranges.acquire(), ranges.acquire()
    cmds = [container_options("img", 256, uids=ranges.uids(n))["command"] for n in (a, b)]
    spans = []
    for cmd in cmds:
        test_uid, first, n = map(int, cmd[cmd.index("--uids") + 1].split(","))
        spans.append(uid_set((test_uid, first, n)))
    assert not spans[0] & spans[1]


def test_a_process_holds_at_most_its_ranges() -> None:
    ranges = UidRanges()
    for _ in range(RANGES_PER_PROCESS):
        ranges.acquire()
    try:
        ranges.acquire()
    except Exception as exc:  # noqa: BLE001 - the fault's type is the executor's
        assert "uid ranges" in str(exc)
    else:
        raise AssertionError("a range was handed out twice")


def test_local_workers_stay_inside_their_executor_block() -> None:
    from phi_eval.errors import PhiEvalError
    from phi_eval.sandbox.local import MAX_WORKERS as LOCAL_MAX
    from phi_eval.sandbox.local import UIDS_PER_WORKER, LocalExecutor, local_uids

    spans = [uid_set((*local_uids(i, pid), UIDS_PER_WORKER - 1)) for pid in (7, 8) for i in range(LOCAL_MAX)]
    assert sum(map(len, spans)) == len(set().union(*spans)) and max(map(max, spans)) < 2**31
    try:
        LocalExecutor(workers=LOCAL_MAX + 1, warn=False)
    except PhiEvalError as exc:
        assert "at most" in str(exc)
    else:
        raise AssertionError(f"{LOCAL_MAX + 1} local workers were started")


def test_more_docker_workers_than_ranges_is_one_line() -> None:
    from phi_eval.errors import PhiEvalError
    from phi_eval.sandbox.docker import DockerExecutor

    try:
        DockerExecutor(workers=MAX_WORKERS + 1, hosts=["unix:///nonexistent.sock"])
    except PhiEvalError as exc:
        assert "at most" in str(exc)
    else:
        raise AssertionError("refused only after connecting")
