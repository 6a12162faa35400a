"""The csms operator: `ChargingStation` resources become the allow-list, credentials and
desired configuration the pods enforce; live state comes back into `.status`.

    kopf run -m csms_operator --all-namespaces --standalone
    csms operator            # the same, with a liveness endpoint

Importing the package registers the handlers (`csms_operator.handlers`).
"""

from csms_operator import handlers

__all__ = ["handlers"]
