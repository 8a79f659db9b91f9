"""Lambda entry points. Each module imports little; the relay is built once per container, on first use.

Lambda logs are JSON lines, so structlog is imported here with ``rich`` out of its sight: structlog's console
renderer and its tracebacks would import rich, Pygments and attrs (about 100 ms of a cold start) whenever a
package that carries the CLI's dependencies is deployed, and no Lambda entry ever renders to a console.
A process that imported structlog first (the CLI, a test run) keeps it as it was.
"""

import sys


def _structlog_without_rich() -> None:
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` now raises ImportError
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_structlog_without_rich()
