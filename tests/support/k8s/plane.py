"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

Binaries come from tests/support/k8s/build.sh ($MRC_K8S_CACHE/bin, default ~/.cache/mrc-k8s/bin)
and Debian's etcd-server. Each start makes a throwaway PKI (CA, apiserver serving cert,
client certs for admin / controller-manager / scheduler / the apiserver's kubelet client /
the node agent / a least-privilege `mrc` user, service-account signing key) with
`cryptography`, keeps etcd's data on /dev/shm, binds every listener to 127.0.0.1 (the
controller-manager and scheduler serve nothing: `--port 0 --secure-port 0`), and stop()
ends exactly the processes it started (their process groups), then removes its folder.

    python -m tests.support.k8s.plane   # start, print the admin kubeconfig path, wait for ctrl-c
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CACHE = Path(os.environ.get("MRC_K8S_CACHE", Path.home() / ".cache" / "mrc-k8s"))
BIN = CACHE / "bin"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
FEATURE_GATES = "TTLAfterFinished=true"  # ttlSecondsAfterFinished is alpha in 1.20
SERVICE_RANGE = "10.0.0.0/24"


class MissingBinaries(RuntimeError):
    pass


def binaries() -> dict[str, str]:
    """Paths of the control plane's binaries; MissingBinaries naming what to run when absent."""
    found = {name: str(BIN / name) for name in BINARIES if (BIN / name).is_file()}
    etcd = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
    missing = [n for n in BINARIES if n not in found] + ([] if etcd else ["etcd"])
    if missing:
        raise MissingBinaries(f"Kubernetes control plane binaries missing ({', '.join(missing)}) in {BIN}: "
                              "run tests/support/k8s/build.sh (tests/run.sh does)")
    found["etcd"] = etcd
    return found


def free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


# -- PKI ---------------------------------------------------------------------------------------
class Pki:
    """A throwaway CA and the certificates signed by it, written as PEM files into `folder`."""

    def __init__(self, folder: Path):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.x509.oid import NameOID

        self.x509, self.hashes, self.serialization, self.ec, self.NameOID = x509, hashes, serialization, ec, NameOID
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mrc-test-ca")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                        .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
                        .not_valid_before(now - datetime.timedelta(minutes=5))
                        .not_valid_after(now + datetime.timedelta(days=2))
                        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                       critical=True)
                        .sign(self.ca_key, hashes.SHA256()))
        self.ca = self._write("ca.crt", self.ca_cert.public_bytes(serialization.Encoding.PEM))
        # service-account tokens: RSA, signed by the apiserver, verified by it and the token controller
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key = self._write("sa.key", sa_key.private_bytes(serialization.Encoding.PEM,
                                                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                                                 serialization.NoEncryption()))
        self.sa_pub = self._write("sa.pub", sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def _write(self, name: str, data: bytes) -> str:
        path = self.folder / name
        path.write_bytes(data)
        path.chmod(0o600)
        return str(path)

    def issue(self, stem: str, common_name: str, *, groups: tuple[str, ...] = (), server: bool = False,
              client: bool = True, dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> tuple[str, str]:
        """(cert path, key path) for a leaf: CN = user, O = groups (Kubernetes' x509 authentication)."""
        x509, NameOID = self.x509, self.NameOID
        key = self.ec.generate_private_key(self.ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
                            + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        usages = ([x509.ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
                 ([x509.ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.ca_cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        if dns or ips:
            names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.ca_key, self.hashes.SHA256())
        s = self.serialization
        crt = self._write(f"{stem}.crt", cert.public_bytes(s.Encoding.PEM))
        pem = self._write(f"{stem}.key", key.private_bytes(s.Encoding.PEM, s.PrivateFormat.TraditionalOpenSSL,
                                                            s.NoEncryption()))
        return crt, pem


def write_kubeconfig(path: Path, server: str, ca: str, cert: str, key: str, *, namespace: str = "default",
                     user: str = "user") -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "mrc-test",
        "clusters": [{"name": "mrc-test", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": user, "user": {"client-certificate": cert, "client-key": key}}],
        "contexts": [{"name": "mrc-test", "context": {"cluster": "mrc-test", "user": user, "namespace": namespace}}],
    }
    path.write_text(json.dumps(config, indent=2))
    return path


# -- the plane -------------------------------------------------------------------------------------
class ControlPlane:
    def __init__(self, root: Path | None = None):
        self.bins = binaries()
        self.root = Path(root or tempfile.mkdtemp(prefix="mrc-k8s-plane-"))
        self.etcd_dir = Path(tempfile.mkdtemp(prefix="mrc-k8s-etcd-", dir="/dev/shm" if Path("/dev/shm").is_dir()
                                              else None))
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.etcd_port, self.etcd_peer, self.port = free_ports(3)
        self.server = f"https://127.0.0.1:{self.port}"
        self.timings: dict[str, float] = {}

    # plumbing
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        with open(log, "ab") as out:  # each in its own process group: stop() ends exactly it
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.root)
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.logs[name].read_text(errors="replace").splitlines()[-lines:])
        except (KeyError, OSError):
            return ""

    def _wait(self, name: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.log_tail(name)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {timeout:.0f} s:\n{self.log_tail(name)}")
            time.sleep(0.2)

    def _ssl(self, cert: str, key: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.pki.ca)
        ctx.load_cert_chain(cert, key)
        return ctx

    def get(self, path: str, *, cert: tuple[str, str] | None = None, timeout: float = 5) -> tuple[int, bytes]:
        ctx = self._ssl(*(cert or self.admin_cert))
        try:
            with urllib.request.urlopen(self.server + path, context=ctx, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def kubectl(self, *args: str, kubeconfig: Path | None = None, check: bool = True,
                input: str | None = None) -> subprocess.CompletedProcess:
        """kubectl as admin (tests use it to observe, and to set up what a cluster admin would)."""
        result = subprocess.run([self.bins["kubectl"], "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
                                capture_output=True, text=True, input=input, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    # start / stop
    def start(self, timeout: float = 180) -> "ControlPlane":
        started = time.monotonic()
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        self.timings["plane_s"] = time.monotonic() - started
        return self

    def _start(self, timeout: float) -> None:
        pki = self.pki = Pki(self.root / "pki")
        serving = pki.issue("apiserver", "kube-apiserver", server=True, client=False,
                            dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
                            ips=("127.0.0.1", "10.0.0.1"))
        kubelet_client = pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                   groups=("system:masters",))
        self.admin_cert = pki.issue("admin", "mrc-test-admin", groups=("system:masters",))
        self.kubeconfig = write_kubeconfig(self.root / "admin.kubeconfig", self.server, pki.ca, *self.admin_cert,
                                           user="admin")
        cm = write_kubeconfig(self.root / "controller-manager.kubeconfig", self.server, pki.ca,
                              *pki.issue("controller-manager", "system:kube-controller-manager"))
        sched = write_kubeconfig(self.root / "scheduler.kubeconfig", self.server, pki.ca,
                                 *pki.issue("scheduler", "system:kube-scheduler"))
        b = self.bins
        t0 = time.monotonic()
        self._spawn("etcd", [b["etcd"], "--name", "mrc-test", "--data-dir", str(self.etcd_dir / "data"),
                             "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                             "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                             "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
                             "--initial-cluster", f"mrc-test=http://127.0.0.1:{self.etcd_peer}",
                             "--listen-metrics-urls", "", "--log-level", "warn", "--logger", "zap",
                             "--quota-backend-bytes", str(512 << 20)])
        self._wait("etcd", lambda: _http_ok(f"http://127.0.0.1:{self.etcd_port}/health"), 60)
        self._spawn("kube-apiserver", [
            b["kube-apiserver"], "--etcd-servers", f"http://127.0.0.1:{self.etcd_port}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(self.port),
            "--insecure-port", "0", "--endpoint-reconciler-type", "none",
            "--tls-cert-file", serving[0], "--tls-private-key-file", serving[1], "--client-ca-file", pki.ca,
            "--service-account-key-file", pki.sa_pub, "--service-account-signing-key-file", pki.sa_key,
            "--service-account-issuer", "https://kubernetes.default.svc", "--api-audiences",
            "https://kubernetes.default.svc", "--service-cluster-ip-range", SERVICE_RANGE,
            "--authorization-mode", "Node,RBAC", "--feature-gates", FEATURE_GATES,
            "--kubelet-client-certificate", kubelet_client[0], "--kubelet-client-key", kubelet_client[1],
            "--kubelet-certificate-authority", pki.ca, "--kubelet-preferred-address-types", "InternalIP",
            "--enable-priority-and-fairness=false", "--profiling=false", "--v", "1"])
        self._wait("kube-apiserver", lambda: self.get("/readyz")[0] == 200, timeout)
        self.timings["apiserver_s"] = time.monotonic() - t0
        common = ["--bind-address", "127.0.0.1", "--port", "0", "--secure-port", "0", "--leader-elect=false",
                  "--profiling=false", "--v", "1"]
        self._spawn("kube-controller-manager", [
            b["kube-controller-manager"], "--kubeconfig", str(cm), *common,
            "--service-account-private-key-file", pki.sa_key, "--root-ca-file", pki.ca,
            "--use-service-account-credentials=true", "--feature-gates", FEATURE_GATES,
            "--controllers", "*,-bootstrapsigner,-tokencleaner,-csrsigning,-nodeipam,-cloud-node-lifecycle",
            "--node-monitor-grace-period", "60s", "--pod-eviction-timeout", "10m"])
        self._spawn("kube-scheduler", [b["kube-scheduler"], "--kubeconfig", str(sched),
                                       "--authentication-kubeconfig", str(sched),
                                       "--authorization-kubeconfig", str(sched), *common])
        # the default service account (and its token) exist once the controllers run
        self._wait("kube-controller-manager", lambda: self._has_default_token("default"), timeout)
        self._wait("kube-scheduler", lambda: self.procs["kube-scheduler"].poll() is None, 5)

    def _has_default_token(self, namespace: str) -> bool:
        code, body = self.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
        return code == 200 and bool(json.loads(body).get("secrets"))

    def wait_default_token(self, namespace: str, timeout: float = 60) -> None:
        """Pods are admitted only once the namespace's default service account has its token."""
        self._wait("kube-controller-manager", lambda: self._has_default_token(namespace), timeout)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            _stop(self.procs[name])
        self.procs.clear()
        shutil.rmtree(self.etcd_dir, ignore_errors=True)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


if __name__ == "__main__":
    plane = ControlPlane().start()
    print(f"control plane up in {plane.timings['plane_s']:.1f} s (apiserver {plane.timings['apiserver_s']:.1f} s)")
    print(f"KUBECONFIG={plane.kubeconfig}")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        plane.cleanup()
