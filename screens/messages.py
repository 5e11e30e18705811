"""Where a screen asks to go: it posts one of these, console/app.py opens the screen.

Textual's rule, "attributes down, messages up": no screen imports another screen module, so the
screens form no cycle (history → review → training → review once did), and the app is the one
place that knows which class each destination is and when its module is imported. Dialogs
(screens/dialogs/) return a typed result to the screen that opened them and stay direct.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class OpenReview(Message):
    """The review of `version` (None: the model's candidate)."""

    def __init__(self, model: str, version: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.version = version


class OpenHistory(Message):
    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model


class OpenTraining(Message):
    """The training form for `model`; `data` and `reason` prefill it."""

    def __init__(self, model: str, data: str | None = None, reason: str = "") -> None:
        super().__init__()
        self.model = model
        self.data = data
        self.reason = reason


class OpenRetrainOnNewestData(Message):
    """From a critical drift: the training form on the newest data version, unless a candidate
    is already trained on it (screens/training_screen.py: open_with_newest_data)."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model


class OpenAudit(Message):
    pass


class OpenCanary(Message):
    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model


class OpenShadow(Message):
    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model


class OpenDiff(Message):
    """Two versions side by side (ModelVersion records)."""

    def __init__(self, left: Any, right: Any) -> None:
        super().__init__()
        self.left = left
        self.right = right


class OpenCheckDetail(Message):
    """One gate check in full; `title` names the version it belongs to."""

    def __init__(self, check: Any, title: str) -> None:
        super().__init__()
        self.check = check
        self.title = title
