"""Priority keys that act as they are posted, before the app's queue: a mixin for the App.

Textual reads a key only when the event loop gets to the app's message queue, which, when the
key is pressed as the screen repaints a new state, is after that whole repaint (layout, styles,
footer rebuild: tens to hundreds of ms on a loaded box). A screen that can act on a priority
binding without the event loop (the canary screen's `R` wakes a standby thread) offers
`run_key_first(action) -> bool`; this mixin resolves the key exactly as Textual's priority pass
does (same binding chain, keymap applied, modal screens hide the screens below) and calls it at
post time. True: the key was acted on and is not queued; otherwise the key takes the usual path.
"""

from __future__ import annotations

import threading

from textual import events
from textual.message import Message


class PriorityKeysFirst:
    """Mix in before App: class MyApp(PriorityKeysFirst, App)."""

    def post_message(self, message: Message) -> bool:
        # Keys are posted on the event loop's thread (driver and Pilot alike); anything posted from
        # another thread takes the usual path, as the binding chain may only be read on the loop.
        # A key nobody handled bubbles back up to the app through here: check each key once.
        if (isinstance(message, events.Key) and threading.get_ident() == self._thread_id
                and not getattr(message, "_priority_checked", False)):
            message._priority_checked = True
            try:
                if self._run_key_first(message.key):
                    return True
            except Exception:  # noqa: BLE001  (never lose a key: the usual path handles it)
                pass
        return super().post_message(message)

    def _run_key_first(self, key: str) -> bool:
        if self._closing or self._closed or not self.is_running:
            return False
        for namespace, bindings in reversed(self.screen._binding_chain):  # as App._check_bindings(priority=True)
            for binding in bindings.key_to_bindings.get(key, ()):
                if binding.priority:
                    run_first = getattr(namespace, "run_key_first", None)
                    return bool(run_first is not None and run_first(binding.action))
        return False
