"""Training Jobs and KServe canaries on the Kubernetes emulator (kmock on 127.0.0.1)."""

from tests.support.k8s.emulator import apiserver, k8s_ws, k8s_ws_template  # noqa: F401  (fixtures)
