"""Every command's event loop: uvloop where it is installed, asyncio's own otherwise."""

import asyncio
import sys

import pytest

from batch import eventloop


async def _loop_class() -> type[asyncio.AbstractEventLoop]:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not installed on Windows")
def test_commands_run_on_uvloop() -> None:
    import uvloop

    assert eventloop.run(_loop_class()) is uvloop.Loop


def test_without_uvloop_asyncio_runs_the_same_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an ImportError looks like
    assert issubclass(eventloop.run(_loop_class()), asyncio.BaseEventLoop)
