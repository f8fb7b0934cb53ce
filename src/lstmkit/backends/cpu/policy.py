"""When torch's own kernel beats the compiled CPU backend (so ``auto`` should use torch's).

``prefer_torch(request)`` returns a reason string when torch's kernel is expected to be faster
for this call on this machine, else None. The CPU backend's ``supports`` consults it.
"""

from __future__ import annotations

from lstmkit.backends.registry import Request


def prefer_torch(request: Request) -> str | None:
    """A reason when torch's own kernel is the faster choice for ``request``, else None."""
    return None
