"""The operator's settings, from the same `CSMS_*` environment as the pods."""

import dataclasses
import os
from collections.abc import Mapping

GROUP, VERSION, PLURAL = "csms.dev", "v1alpha1", "chargingstations"


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "csms:"
    status_every: float = 30.0  # seconds between two looks at a station's live state
    status_rate: float = 20.0  # status writes a second, at most, across all stations

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "OperatorConfig":
        env = os.environ if env is None else env
        return cls(
            redis_url=env.get("CSMS_REDIS_URL", cls.redis_url),
            redis_prefix=env.get("CSMS_REDIS_PREFIX", cls.redis_prefix),
            status_every=float(env.get("CSMS_OPERATOR_STATUS_EVERY", cls.status_every)),
            status_rate=float(env.get("CSMS_OPERATOR_STATUS_RATE", cls.status_rate)),
        )
