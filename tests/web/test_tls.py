"""Reading a station's identity out of a certificate subject, in the forms proxies send."""

import pytest

from csms.web.tls import ClientCertificates, common_name, subject_dn


@pytest.mark.parametrize(("subject", "name"), [
    ("CN=CP-1,O=Example CSO,C=DE", "CP-1"),  # RFC 4514 / nginx $ssl_client_s_dn
    ("O=Example CSO,CN=CP-1", "CP-1"),
    ("cn=CP-1", "CP-1"),
    ("/C=DE/O=Example CSO/CN=CP-1", "CP-1"),  # OpenSSL one-line, nginx's legacy variable
    ("CP-1", "CP-1"),  # a bare commonName
    (r"CN=Hall 3\, Bay 2,O=x", "Hall 3, Bay 2"),
    (r"CN=Stra\C3\9Fe-7,O=x", "Straße-7"),
    ("CN=CP-1+serialNumber=42,O=x", "CP-1"),  # a multi-valued RDN
    ("O=Example CSO", None),  # no commonName
    ("CN=CP-1,CN=CP-2", None),  # two: ambiguous, refused
    ("CN=CP-1,garbage", None),  # not a DN after all
    ("", None),
    (r"CN=\FF\FE", None),  # not UTF-8
])
def test_the_common_name_is_read_from_each_subject_form(subject: str, name: str | None) -> None:
    assert common_name(subject) == name


def test_a_subject_from_the_ssl_module_reads_back_to_its_common_name() -> None:
    subject = ((("countryName", "DE"),), (("organizationName", "A, B + C"),),
               (("commonName", "#CP=1 "),))
    dn = subject_dn(subject)
    assert dn == r"CN=\#CP\=1\ ,O=A\, B \+ C,C=DE"
    assert common_name(dn) == "#CP=1 "


def test_the_tls_extension_comes_before_the_proxy_header() -> None:
    certificates = ClientCertificates(direct=True, header=b"x-client-dn")
    scope = {"extensions": {"tls": {"client_cert_name": "CN=a"}},
             "headers": [(b"x-client-dn", b"CN=b")]}
    assert certificates.subject(scope) == "CN=a"
    scope["extensions"]["tls"]["client_cert_name"] = None  # TLS here, no certificate
    assert certificates.subject(scope) == "CN=b"
    assert ClientCertificates(direct=True, header=None).subject(scope) is None
    assert not ClientCertificates(direct=False, header=None).verifiable
