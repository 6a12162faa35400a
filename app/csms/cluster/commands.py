"""The durable command queue in Redis (see `csms.state.commands`).

  {p}command:{id}      the command as JSON, kept until a day past its expiry
  {p}queue:{station}   list of command ids, oldest first
  {p}queued            sorted set of the queued command ids by expiry: the queue's depth
"""

import json
import time
from typing import Any

from redis.asyncio import Redis

from csms.cluster.state import unavailable
from csms.state.commands import MAX_QUEUED, QUEUED, RETENTION, Command, QueueFull

# Append unless the station's queue is full: one round trip, no race between pods.
_ADD = """
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
redis.call('EXPIREAT', KEYS[2], ARGV[2], 'GT')
if redis.call('TTL', KEYS[2]) < 0 then redis.call('EXPIREAT', KEYS[2], ARGV[2]) end
return 1
"""


class RedisCommandStore:
    def __init__(self, redis: Redis, prefix: str = "csms:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._add = redis.register_script(_ADD)

    def _key(self, command_id: str) -> str:
        return f"{self._prefix}command:{command_id}"

    def _queue(self, station_id: str) -> str:
        return f"{self._prefix}queue:{station_id}"

    @property
    def _queued(self) -> str:
        return f"{self._prefix}queued"

    @staticmethod
    def _until(command: Command) -> int:
        return int(command.expires_at + RETENTION)

    @unavailable
    async def add(self, command: Command) -> None:
        added = await self._add(
            keys=[self._key(command.id), self._queue(command.station_id), self._queued],
            args=[json.dumps(command.to_json()), self._until(command), MAX_QUEUED, command.id,
                  command.expires_at])
        if not added:
            raise QueueFull(f"{command.station_id} has {MAX_QUEUED} queued commands")

    @unavailable
    async def get(self, command_id: str) -> Command | None:
        raw = await self._redis.get(self._key(command_id))
        return Command.from_json(json.loads(raw)) if raw is not None else None

    @unavailable
    async def pop(self, station_id: str) -> Command | None:
        while True:
            command_id: Any = await self._redis.lpop(self._queue(station_id))
            if command_id is None:
                return None
            await self._redis.zrem(self._queued, command_id)
            command = await self.get(command_id.decode())
            if command is not None:
                return command

    @unavailable
    async def requeue(self, command: Command) -> None:
        command.status = QUEUED
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(command.id), json.dumps(command.to_json()),
                     exat=self._until(command))
            pipe.lpush(self._queue(command.station_id), command.id)
            pipe.zadd(self._queued, {command.id: command.expires_at})
            await pipe.execute()

    def maybe_queued(self, station_id: str) -> bool:
        return True  # only Redis knows

    @unavailable
    async def depth(self) -> int:
        """Queued commands not expired yet, cluster-wide: the expired ones leave the set."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(self._queued, "-inf", time.time())
            pipe.zcard(self._queued)
            _, count = await pipe.execute()
        return int(count)

    @unavailable
    async def save(self, command: Command) -> None:
        await self._redis.set(self._key(command.id), json.dumps(command.to_json()),
                              exat=self._until(command))
