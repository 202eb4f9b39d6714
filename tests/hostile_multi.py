"""Hostile *sequences*: samples run in order through one sandbox (one container, `--workers 1`), where
an earlier sample tries to leave something that a later one can see, or that makes it fail.

Every sample is a completion of HumanEval/13 (greatest_common_divisor).  A *spy* returns the right
answer only when it sees what the writer left, so a leak shows up as a pass; alone it fails.  An
*honest* sample is correct and passes alone, so a poisoned neighbour shows up as a failure.  Each
sample's `expect` is the verdict it gets when run alone: run in order after the writer, every sample
must get exactly that.

Each sequence has controls: single samples that do the writer's and the later sample's parts in
one process (where no sample boundary, and so no sweep, lies between them), showing that the
channel or the poison is real.  `where` says in which sandboxes a sequence or control applies.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

TASK = "HumanEval/13"  # greatest_common_divisor(a, b) -> int
# names the writers use, unique per test process (with --sandbox local a spy sees the whole host's
# /proc and /tmp, so two test runs on one machine must not see each other's writers)
TAG = f"phi_leak_{os.getpid() % 0xFFFF:04x}"

_RIGHT = "    import math\n    return math.gcd(a, b)\n"
_SPY = "    import math\n    return math.gcd(a, b) if SEEN else -1\n"


@dataclass(frozen=True)
class Sample:
    completion: str
    expect: str  # its verdict when run alone


@dataclass(frozen=True)
class Control:
    completion: str
    passes: bool  # True: the spy sees the state (leak is real); False: the poison bites
    where: frozenset[str] = frozenset({"docker", "local"})


@dataclass(frozen=True)
class Sequence:
    name: str
    samples: tuple[Sample, ...]
    asserts: str
    controls: tuple[Control, ...] = ()
    where: frozenset[str] = field(default_factory=lambda: frozenset({"docker", "local"}))


def _writer(top: str) -> Sample:
    """A correct solution whose program also runs `top` (module level) and passes alone."""
    return Sample(_RIGHT + top, "passed")


def _spy(probe: str) -> Sample:
    """Sets SEEN from `probe` (module level); passes only when it sees a writer's state."""
    return Sample(_SPY + probe, "failed")


def _control(top: str, probe: str, where: tuple[str, ...] = ("docker", "local")) -> Control:
    return Control(_SPY + top + probe, True, frozenset(where))


HONEST = Sample(_RIGHT, "passed")

# --- System V IPC: a shared memory segment, a semaphore set and a message queue, world-accessible
_IPC_WRITE = (
    "import ctypes\n"
    "_l = ctypes.CDLL(None, use_errno=True)\n"
    "_l.shmget(0x7F3A5EED, 1 << 20, 0o1666)\n"  # IPC_CREAT | 0666
    "_l.semget(0x7F3A5EED, 1, 0o1666)\n"
    "_l.msgget(0x7F3A5EED, 0o1666)\n"
)
_IPC_PROBE = (
    "import ctypes\n"
    "_p = ctypes.CDLL(None, use_errno=True)\n"
    "SEEN = _p.shmget(0x7F3A5EED, 0, 0o666) >= 0 or _p.semget(0x7F3A5EED, 0, 0o666) >= 0 "
    "or _p.msgget(0x7F3A5EED, 0o666) >= 0\n"
)

# --- files: a tree deeper than any fixed walk, a directory without read permission, a socket file,
# POSIX shared memory (/dev/shm), in every writable root, all world-readable
_DEPTH = 600
_FILES_WRITE = (
    "import os, socket\n"
    "os.umask(0)\n"
    "for _root in ('/tmp', '/var/tmp', '/dev/shm'):\n"
    "    try:\n"
    f"        _p = _root + '/{TAG}_deep'\n"
    "        os.mkdir(_p, 0o777)\n"
    f"        for _ in range({_DEPTH}):\n"
    "            _p += '/d'\n"
    "            os.mkdir(_p, 0o777)\n"
    "        open(_p + '/mark', 'w').close()\n"
    f"        os.mkdir(_root + '/{TAG}_odd', 0o333)\n"
    f"        open(_root + '/{TAG}_odd/mark', 'w').close()\n"
    "    except OSError:\n"
    "        pass\n"
    "try:\n"
    "    _s = socket.socket(socket.AF_UNIX)\n"
    f"    _s.bind('/tmp/{TAG}.sock')\n"
    "except OSError:\n"
    "    pass\n"
)
_FILES_PROBE = (
    "import os\n"
    "SEEN = False\n"
    "for _root in ('/tmp', '/var/tmp', '/dev/shm'):\n"
    f"    SEEN = SEEN or os.path.exists(_root + '/{TAG}_deep' + '/d' * {_DEPTH} + '/mark')\n"
    f"    SEEN = SEEN or os.path.exists(_root + '/{TAG}_odd/mark')\n"
    f"SEEN = SEEN or os.path.exists('/tmp/{TAG}.sock')\n"
)

# --- processes: a daemon (its own session, renamed) that first sleeps past its sample's verdict,
# then stops and kills every process it may signal, over and over, for 20 s
_DAEMON = (
    "import os, signal, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        import ctypes\n"
    f"        ctypes.CDLL(None).prctl(15, b'{TAG}', 0, 0, 0)\n"  # PR_SET_NAME
    "        time.sleep({delay})\n"
    "        _end = time.time() + 20\n"
    "        while time.time() < _end:\n"
    "            for _sig in ({signals}):\n"
    "                try:\n"
    "                    os.kill(-1, _sig)\n"
    "                except OSError:\n"
    "                    pass\n"
    "            time.sleep(0.001)\n"
    "    os._exit(0)\n"
)
_PROC_PROBE = (
    "import os, time\n"
    "time.sleep(0.1)\n"
    "SEEN = False\n"
    "for _pid in os.listdir('/proc'):\n"
    "    try:\n"
    "        with open(f'/proc/{_pid}/comm') as _fh:\n"
    f"            SEEN = SEEN or _fh.read().strip() == '{TAG}'[:15]\n"
    "    except OSError:\n"
    "        pass\n"
)
_SLOW_RIGHT = "    import math, time\n    time.sleep(0.5)\n    return math.gcd(a, b)\n"

# --- network: loopback traffic and a TCP connection left in TIME_WAIT (the container's own netns)
_NET_WRITE = (
    "import socket\n"
    "_u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "for _ in range(3):\n"
    "    _u.sendto(b'x', ('127.0.0.1', 9))\n"
    "_srv = socket.socket()\n"
    "_srv.bind(('127.0.0.1', 0))\n"
    "_srv.listen(1)\n"
    "_c = socket.create_connection(_srv.getsockname())\n"
    "_a, _ = _srv.accept()\n"
    "_c.close()\n"
    "_a.close()\n"
    "_srv.close()\n"
)
_NET_PROBE = (
    "SEEN = False\n"
    "with open('/proc/net/dev') as _fh:\n"
    "    for _line in _fh:\n"
    "        if _line.strip().startswith('lo:'):\n"
    "            SEEN = int(_line.split(':', 1)[1].split()[1]) > 0\n"
    "with open('/proc/net/tcp') as _fh:\n"
    "    SEEN = SEEN or any(_l.split()[3] == '06' for _l in list(_fh)[1:])\n"  # TIME_WAIT
)

# --- filled scratch: /tmp and /dev/shm written full; the honest sample needs 8 MB of temp file
_FILL = (
    "import os\n"
    "for _root in ('/tmp', '/dev/shm'):\n"
    "    for _n in range(8):\n"
    "        try:\n"
    f"            with open(f'{{_root}}/{TAG}_fill{{_n}}', 'wb') as _fh:\n"
    "                for _ in range(15):\n"
    "                    _fh.write(b'x' * (1 << 20))\n"
    "        except OSError:\n"
    "            break\n"
)
_NEEDS_SCRATCH = (
    "    import math, tempfile\n"
    "    with tempfile.TemporaryFile() as fh:\n"
    "        fh.write(b'x' * (8 << 20))\n"
    "        fh.flush()\n"
    "    return math.gcd(a, b)\n"
)

# --- memory: an earlier sample's program (large, so its buffers are big) and a file name it made
_BIG = ("phi_src_7f3a_" + "x" * 51) * 600  # ~38 KB: below malloc's mmap threshold, so a freed copy stays
_MEM_WRITE = (
    f"_PAD = {_BIG!r}\n"
    "open('/tmp/phi_name_7f3a_marker', 'w').close()\n"
)
_MEM_PROBE = (
    "import re\n"
    "SEEN = False\n"
    "with open('/proc/self/maps') as _fh:\n"
    "    _maps = _fh.read().splitlines()\n"
    "with open('/proc/self/mem', 'rb', 0) as _mem:\n"
    "    for _line in _maps:\n"
    "        _addr, _perms = _line.split()[:2]\n"
    "        if not _perms.startswith('r'):\n"
    "            continue\n"
    "        _lo, _hi = (int(_x, 16) for _x in _addr.split('-'))\n"
    "        if _hi - _lo > 1 << 28:\n"
    "            continue\n"
    "        try:\n"
    "            _mem.seek(_lo)\n"
    "            _blob = _mem.read(_hi - _lo)\n"
    "        except (OSError, ValueError, OverflowError):\n"
    "            continue\n"
    "        if re.search(rb'phi[_]src_7f3a_xxxx|phi[_]name_7f3a_marker', _blob):\n"
    "            SEEN = True\n"
)

# --- tmpfs inode numbers: the writer makes (and deletes) files so that the next inode in /tmp is a
# multiple of 64; the spy's scratch directory, the next inode made there, tells it so
_INO_WRITE = (
    "import os\n"
    "_k = -os.lstat('.').st_ino % 64 or 64\n"
    "for _ in range(_k - 1):\n"
    "    open('f', 'w').close()\n"
    "    os.unlink('f')\n"
)
_INO_PROBE = "import os\nos.mkdir('next')\nSEEN = os.lstat('next').st_ino % 64 == 0\n"

SEQUENCES: list[Sequence] = [
    Sequence(
        "sysv_ipc",
        (_writer(_IPC_WRITE), _spy(_IPC_PROBE)),
        "System V shared memory, semaphores and message queues do not outlive their sample (the "
        "container cannot make any; --sandbox local removes them)",
        (_control(_IPC_WRITE, _IPC_PROBE, ("local",)),),
    ),
    Sequence(
        "files_deep_odd_sockets",
        (_writer(_FILES_WRITE), _spy(_FILES_PROBE)),
        f"no file survives its sample: a tree {_DEPTH} deep, a directory without read permission, a "
        "socket file, POSIX shared memory, in /tmp, /var/tmp and /dev/shm",
        (_control(_FILES_WRITE, _FILES_PROBE),),
    ),
    Sequence(
        "daemon_spies_and_signals",
        (_writer(_DAEMON.format(delay=0.5, signals="signal.SIGSTOP, signal.SIGKILL")), _spy(_PROC_PROBE), HONEST),
        "a daemon does not outlive its sample: a later sample neither sees it nor is stopped or killed by it",
        (
            _control(_DAEMON.format(delay=0, signals="0,"), _PROC_PROBE),
            Control(_SLOW_RIGHT + _DAEMON.format(delay=0, signals="signal.SIGSTOP, signal.SIGKILL"), False),
        ),
    ),
    Sequence(
        "network_traces",
        (_writer(_NET_WRITE), _spy(_NET_PROBE)),
        "loopback counters and TCP TIME_WAIT entries a sample left are never seen by a later one "
        "(the container is replaced)",
        (_control(_NET_WRITE, _NET_PROBE, ("docker",)),),
        frozenset({"docker"}),
    ),
    Sequence(
        "filled_scratch",
        (_writer(_FILL), Sample(_NEEDS_SCRATCH, "passed")),
        "a sample that filled /tmp and /dev/shm does not make a later one that needs scratch space fail",
        (Control(_NEEDS_SCRATCH + _FILL, False, frozenset({"docker"})),),
        frozenset({"docker"}),  # never fill the host's /tmp
    ),
    Sequence(
        "tmpfs_inode_numbers",
        (_writer(_INO_WRITE), _spy("import os\nSEEN = os.lstat('.').st_ino % 64 == 0\n")),
        "files a sample made and deleted do not show in the inode numbers a later sample's files get",
        (_control(_INO_WRITE, _INO_PROBE, ("docker",)),),
        frozenset({"docker"}),
    ),
    Sequence(
        "memory_of_earlier_samples",
        (_writer(_MEM_WRITE), _spy(_MEM_PROBE)),
        "no byte of an earlier sample's program, or of a file name it made, is in a later candidate's memory",
        (_control(_MEM_WRITE, _MEM_PROBE),),
    ),
]

SEQUENCES_BY_NAME = {s.name: s for s in SEQUENCES}
