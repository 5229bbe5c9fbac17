"""Helpers shared by the Python tools in this folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def ensure_deps(script: str) -> None:
    """Import the pinned packages, or re-exec `script` under the project venv (.venv or $OMG_VENV)."""
    try:
        import numpy  # noqa: F401
        from tflite_micro import runtime  # noqa: F401
        return
    except ImportError as exc:
        err = exc
    venv = Path(os.environ.get("OMG_VENV") or REPO_ROOT / ".venv")
    py = venv / "bin" / "python"
    if py.exists() and not os.environ.get("OMG_TOOLS_REEXEC"):
        os.environ["OMG_TOOLS_REEXEC"] = "1"
        os.execv(str(py), [str(py), str(Path(script).resolve()), *sys.argv[1:]])
    sys.stderr.write(
        f"{Path(sys.argv[0]).name}: missing Python packages ({err}); "
        "run tools/setup-venv.sh and use .venv/bin/python\n")
    sys.exit(2)
