"""The OCPP versions csms speaks, and how they are named on the wire."""

from typing import Final

V16: Final = "1.6"
V201: Final = "2.0.1"
V21: Final = "2.1"

# Most preferred first: the order in which the server picks a subprotocol.
VERSIONS: Final[tuple[str, ...]] = (V21, V201, V16)
SUBPROTOCOLS: Final[dict[str, str]] = {f"ocpp{v}": v for v in VERSIONS}


def normalize(version: str) -> str:
    """Accept '1.6', 'ocpp1.6' or an enum whose value is either; return '1.6'."""
    value = str(getattr(version, "value", version))
    value = value.removeprefix("ocpp")
    if value not in VERSIONS:
        raise ValueError(f"unknown OCPP version {version!r}; expected one of {', '.join(VERSIONS)}")
    return value


def subprotocol(version: str) -> str:
    return f"ocpp{version}"
