"""`ChargingStation` manifests: the schema of `spec`, shared by the registry file and the CRD.

The same documents are read from YAML files by `csms serve --stations` and from the
Kubernetes custom resources by the operator. The password comes from a Secret
(`passwordSecretRef`): in a folder of manifests, a `kind: Secret` document beside them; the
registry file also takes an inline `password` for quick local setups (not the CRD).
"""

from typing import Any, Final

API_VERSION: Final = "csms.dev/v1alpha1"
KIND: Final = "ChargingStation"
STATION_ID_PATTERN: Final = r"^[^:]{1,48}$"
PROTOCOLS: Final = ["ocpp2.1", "ocpp2.0.1", "ocpp1.6"]

PASSWORD_MIN, PASSWORD_MAX = 16, 40  # OCPP: the basic-auth password is 16-40 characters
SECRET_REF: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "description": "the Secret holding the HTTP Basic password (profiles 1 and 2)",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 253},
        "key": {"type": "string", "minLength": 1, "default": "password"},
    },
}
CONFIG_VALUE: dict[str, Any] = {"type": ["string", "integer", "number", "boolean"]}

SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stationId": {"type": "string", "pattern": STATION_ID_PATTERN,
                      "description": "OCPP identity when it differs from metadata.name"},
        "enabled": {"type": "boolean", "default": True},
        "protocols": {"type": "array", "minItems": 1, "uniqueItems": True,
                      "items": {"type": "string", "enum": PROTOCOLS}},
        "securityProfile": {"type": "integer", "enum": [0, 1, 2, 3], "default": 0},
        "password": {"type": "string", "minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX},
        "passwordSecretRef": SECRET_REF,
        "heartbeatInterval": {"type": "integer", "minimum": 1, "maximum": 86400,
                              "default": 300},
        "authorization": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "acceptAll": {"type": "boolean", "default": False},
                "idTokens": {"type": "array", "uniqueItems": True,
                             "items": {"type": "string", "minLength": 1, "maxLength": 36}},
            },
        },
        "configuration": {"type": "object", "additionalProperties": CONFIG_VALUE},
    },
}

MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata"],
    "properties": {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": KIND},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 253},
                "namespace": {"type": "string"},
            },
        },
        "spec": SPEC_SCHEMA,
    },
}
