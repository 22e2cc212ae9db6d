"""LLM planners: an LLM writes the panels of a story into the story file.

`plan_story` is the whole feature; providers sit behind `ChatBackend` (see `backend.py`) and are registered in
`PROVIDERS`. Provider SDKs are imported only when their provider is used.
"""

from storyboard.plan.backend import DEFAULT_PROVIDER, PROVIDERS, ChatBackend, Message, backend_class, get_backend
from storyboard.plan.planner import DEFAULT_PANELS, DEFAULT_TIMEOUT, PlanResult, plan_story

__all__ = [
    "DEFAULT_PANELS",
    "DEFAULT_PROVIDER",
    "DEFAULT_TIMEOUT",
    "PROVIDERS",
    "ChatBackend",
    "Message",
    "PlanResult",
    "backend_class",
    "get_backend",
    "plan_story",
]
