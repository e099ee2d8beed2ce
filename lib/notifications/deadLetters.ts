// The dead letters of each enabled endpoint, for `registry notifications
// list-dead` and `replay`: read where the serving registry keeps them, without
// taking its queue (the disk queue's replay is a file the server picks up).
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { RedisClient } from '../cache/redisClient.js';
import { DiskQueue } from './diskQueue.js';
import type { EndpointQueue } from './queue.js';
import { RedisQueue } from './redisQueue.js';

export function deadLetterQueues(config: Config, log: Logger, redis?: RedisClient): { endpoint: string; queue: Pick<EndpointQueue, 'kind' | 'listDead' | 'replayDead'> }[] {
  const n = config.notifications;
  return n.endpoints.map((ep) => ({
    endpoint: ep.name,
    queue: redis ? new RedisQueue(redis, ep.name, ep.queue, 'cli', log) : new DiskQueue(join(n.directory, ep.name), ep.queue, n.fsync, log),
  }));
}
