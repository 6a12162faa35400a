"""The operator's settings, from the same `CSMS_*` environment as the pods, checked as
strictly: a bad value stops the operator with the key's name and what was expected."""

import dataclasses
import os
from collections.abc import Mapping

from csms.config import above, at_least, read_setting, redis_url_check

GROUP, VERSION, PLURAL = "csms.dev", "v1alpha1", "chargingstations"


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    redis_url: str = dataclasses.field(default="redis://127.0.0.1:6379/0", repr=False)
    redis_prefix: str = "csms:"
    status_every: float = 30.0  # seconds between two looks at a station's live state
    status_rate: float = 20.0  # status writes a second, at most, across all stations (0: any)
    metrics_port: int = 0  # where /metrics is served (0: not served; the chart sets 8081)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "OperatorConfig":
        """Raises `csms.config.SettingsError` naming the key of a bad value."""
        env = os.environ if env is None else env
        return cls(
            redis_url=read_setting(env, "CSMS_REDIS_URL", str, cls.redis_url, redis_url_check,
                                   secret=True),
            redis_prefix=read_setting(env, "CSMS_REDIS_PREFIX", str, cls.redis_prefix),
            status_every=read_setting(env, "CSMS_OPERATOR_STATUS_EVERY", float,
                                      cls.status_every, above(0)),
            status_rate=read_setting(env, "CSMS_OPERATOR_STATUS_RATE", float, cls.status_rate,
                                     at_least(0)),
            metrics_port=read_setting(env, "CSMS_OPERATOR_METRICS_PORT", int,
                                      cls.metrics_port, at_least(0)),
        )
