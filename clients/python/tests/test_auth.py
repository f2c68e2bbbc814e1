"""The Python client against a coordinator whose API is authenticated (docs/security.md): a bearer
token over TLS, a client certificate over mTLS, the configuration from snapctl's environment
variables, and the errors for a missing, expired or insufficient credential and another tenant's
plan."""
import unittest

from stack import Stack, with_client_path

with_client_path()

import snapshot_coordinator as sc  # noqa: E402
from snapshot.v1 import coordinator_pb2 as pb  # noqa: E402

STACK = Stack(secure=True)
INFO = {}


def setUpModule():
    INFO.update(STACK.start())


def tearDownModule():
    STACK.stop()


class AuthTest(unittest.TestCase):
    def client(self, **kwargs) -> sc.Client:
        settings = {"address": INFO["address"], "ca": INFO["ca"], "timeout": 20}
        settings.update(kwargs)
        client = sc.Client(**settings)
        self.addCleanup(client.close)
        return client

    def test_a_token_over_tls_takes_a_checkpoint(self):
        done = self.client(token=INFO["tokens"]["admin"], wait_timeout=120, stream_timeout=120).take_and_wait(INFO["plan"], "app")
        self.assertEqual(done.state, pb.CHECKPOINT_STATE_COMPLETED)
        self.assertGreater(done.stats.total, 0)

    def test_a_client_certificate_over_mtls_authenticates(self):
        client = self.client(address=INFO["mtls_address"], cert=INFO["client_cert"], key=INFO["client_key"])
        self.assertEqual(client.get_plan(INFO["plan"]).id, INFO["plan"])

    def test_pem_bytes_work_as_well_as_paths(self):
        with open(INFO["ca"], "rb") as f:
            ca = f.read()
        self.assertEqual(self.client(ca=ca, token=INFO["tokens"]["viewer"]).get_plan(INFO["plan"]).id, INFO["plan"])

    def test_from_env_reads_snapctls_variables(self):
        env = {"SNAPCTL_ADDRESS": INFO["address"], "SNAPCTL_TOKEN": INFO["tokens"]["viewer"], "SNAPCTL_CA": INFO["ca"]}
        client = sc.Client.from_env(env, timeout=20)
        self.addCleanup(client.close)
        self.assertEqual(client.get_plan(INFO["plan"]).id, INFO["plan"])

    def test_no_token_is_unauthenticated(self):
        with self.assertRaises(sc.Unauthenticated) as caught:
            self.client().get_plan(INFO["plan"])
        self.assertEqual(caught.exception.code.name, "UNAUTHENTICATED")

    def test_an_expired_token_is_unauthenticated(self):
        with self.assertRaises(sc.Unauthenticated):
            self.client(token=INFO["tokens"]["expired"]).get_plan(INFO["plan"])

    def test_a_viewer_cannot_take_a_checkpoint(self):
        with self.assertRaises(sc.PermissionDenied):
            self.client(token=INFO["tokens"]["viewer"]).take(INFO["plan"], "app")

    def test_another_tenants_plan_is_not_found(self):
        with self.assertRaises(sc.NotFound):
            self.client(token=INFO["tokens"]["foreign"]).get_plan(INFO["plan"])

    def test_health_needs_no_token(self):
        self.assertEqual(self.client().health(), "SERVING")

    def test_a_client_without_the_ca_does_not_trust_the_server(self):
        client = sc.Client(INFO["address"], timeout=5, token=INFO["tokens"]["admin"])
        self.addCleanup(client.close)
        with self.assertRaises(sc.Unavailable):
            client.get_plan(INFO["plan"])

    def test_bad_credentials_are_refused_before_any_call(self):
        with self.assertRaisesRegex(ValueError, "white space"):
            sc.Client(INFO["address"], token="two words")
        with self.assertRaisesRegex(ValueError, "go together"):
            sc.Client(INFO["address"], cert=INFO["client_cert"])
        with self.assertRaisesRegex(ValueError, "cannot read the ca file"):
            sc.Client(INFO["address"], ca="/nonexistent/ca.pem")


if __name__ == "__main__":
    unittest.main()
