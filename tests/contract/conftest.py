"""The contract tier: one parametrised contract per backend protocol, on real servers."""

from __future__ import annotations

from tests.support.tiers import mark_folder
from tests.support.remote import _remote_credentials, mlflow_server, s3_server  # noqa: F401  (fixtures)


def pytest_collection_modifyitems(items):
    mark_folder(items, __file__, "contract")
