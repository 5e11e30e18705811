"""Each model format against the plain library's own predictions, and artifacts in real registries."""

from tests.support.formats import cancer, torch_net  # noqa: F401  (fixtures)
from tests.support.remote import _remote_credentials, mlflow_server, s3_server  # noqa: F401  (fixtures)
