// Logging on pino. "text" writes one readable line per record, as
// distribution's text formatter; "json" and "logstash" write JSON lines.
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { Config } from './config/config.js';

function textStream(out: NodeJS.WritableStream): Writable {
  const levels: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        try {
          const { time, level, msg, pid: _p, hostname: _h, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v)}`);
          out.write(`time="${new Date(time as number).toISOString()}" level=${levels[level as number] ?? level} msg=${JSON.stringify(msg ?? '')} ${fields.join(' ')}\n`);
        } catch {
          out.write(line + '\n');
        }
      }
      cb();
    },
  });
}

export function createLogger(cfg: Config['log'], out: NodeJS.WritableStream = process.stderr): Logger {
  const opts = { level: cfg.level, base: { ...cfg.fields }, messageKey: 'msg' };
  return cfg.formatter === 'text' ? pino(opts, textStream(out)) : pino(opts, out as Writable);
}
