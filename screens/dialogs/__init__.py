"""Modal dialogs: typed ModalScreen results for approve, reject, promote, roll forward, canary start."""
