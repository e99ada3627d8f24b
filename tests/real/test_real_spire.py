"""Real spire-server and spire-agent: configuration validation, the health
endpoint, and an X.509-SVID that follows the X509-SVID standard."""

from __future__ import annotations

import os

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from .stack import StackError, spiffe_id_str, spire_agent_validate, spire_server_validate

pytestmark = pytest.mark.real

TRUST_DOMAIN = "example.org"


def test_server_ready_on_health_endpoint(real_stack):
    server = real_stack.spire_server(trust_domain=TRUST_DOMAIN)
    assert server.health("/live")[0] == 200
    assert server.health("/ready")[0] == 200
    assert server.trust_domain == TRUST_DOMAIN
    # the sqlite3 datastore really is in use
    assert (server.data_dir / "datastore.sqlite3").stat().st_size > 0


def test_validate_helpers_accept_good_and_reject_bad_configs(real_stack, tmp_path):
    server = real_stack.spire_server(trust_domain=TRUST_DOMAIN)
    p = spire_server_validate(server.conf_path)
    assert p.returncode == 0, p.stdout + p.stderr
    good = server.conf_path.read_text()

    bad = tmp_path / "bad-server.conf"
    bad.write_text(good.replace("    log_level =", "    no_such_key = 1\n    log_level ="))
    p = spire_server_validate(bad)
    assert p.returncode != 0 and "unknown configuration" in p.stdout + p.stderr
    bad.write_text(good.replace(f'trust_domain = "{TRUST_DOMAIN}"', 'trust_domain = "Example.Org"'))
    p = spire_server_validate(bad)
    assert p.returncode != 0 and "trust domain characters" in p.stdout + p.stderr

    agent = real_stack.spire_agent(server)
    p = spire_agent_validate(agent.conf_path)
    assert p.returncode == 0, p.stdout + p.stderr
    bad = tmp_path / "bad-agent.conf"
    bad.write_text(agent.conf_path.read_text().replace(f'trust_domain = "{TRUST_DOMAIN}"',
                                                       'trust_domain = "Not A Domain"'))
    p = spire_agent_validate(bad)
    assert p.returncode != 0


def test_validate_does_not_check_plugins_but_run_does(real_stack, tmp_path):
    """`spire-server validate` checks the core configuration only; plugin names
    and plugin_data are checked when the server starts.  So rendered
    configurations must also be started, not only validated."""
    server = real_stack.spire_server(trust_domain=TRUST_DOMAIN)
    bad = tmp_path / "bad-plugin.conf"
    bad.write_text(server.conf_path.read_text().replace('database_type = "sqlite3"',
                                                        'database_type = "nosuchdb"'))
    p = spire_server_validate(bad)
    assert p.returncode == 0, "spire-server validate now checks plugin_data: tighten this test"
    with pytest.raises(StackError) as e:
        real_stack.spire_server(bad.read_text(), name="spire-server-bad")
    assert "nosuchdb" in str(e.value)


def test_agent_fetches_x509_svid_for_unix_uid_workload(real_stack, tmp_path):
    server = real_stack.spire_server(trust_domain=TRUST_DOMAIN)
    agent = real_stack.spire_agent(server, agent_id_path="/agent/edge-node-1")
    # the join-token attestation produced an attested agent
    agents = server.cli("agent", "list").stdout
    assert "spiffe://example.org/spire/agent/join_token/" in agents

    workload_id = f"spiffe://{TRUST_DOMAIN}/ns/free5gc/sa/upf"
    server.create_entry(workload_id, agent.spiffe_id, [f"unix:uid:{os.getuid()}"])

    out = agent.fetch_x509(tmp_path / "svid")
    chain = x509.load_pem_x509_certificates((out / "svid.0.pem").read_bytes())
    bundle = x509.load_pem_x509_certificates((out / "bundle.0.pem").read_bytes())
    server_bundle = x509.load_pem_x509_certificates(server.bundle_pem().encode())
    leaf = chain[0]

    # exactly one URI SAN, the expected SPIFFE ID
    san = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [workload_id]
    # a leaf: not a CA, digitalSignature, never keyCertSign / cRLSign
    bc = leaf.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
    assert bc.ca is False
    ku = leaf.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
    assert ku.digital_signature is True
    assert ku.key_cert_sign is False and ku.crl_sign is False

    # signed by the server's CA: walk the chain to a root of the server's bundle
    assert {c.fingerprint(c.signature_hash_algorithm) for c in bundle} == \
        {c.fingerprint(c.signature_hash_algorithm) for c in server_bundle}
    cert = leaf
    for issuer in chain[1:]:
        cert.verify_directly_issued_by(issuer)
        cert = issuer
    roots = [r for r in server_bundle if r.subject == cert.issuer]
    assert roots, "the SVID chain does not end at a root of the server's bundle"
    cert.verify_directly_issued_by(roots[0])
    root_bc = roots[0].extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
    assert root_bc.ca is True

    # and the entry the agent used is the one we registered
    ids = [spiffe_id_str(e["spiffe_id"]) for e in server.entries()]
    assert workload_id in ids
