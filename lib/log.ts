// Logging on pino, in distribution's (logrus's) shapes:
// - text: `time="..." level=info msg="..." key=value ...`, one line a record;
// - json: {"level":"info","time":"<RFC 3339>","msg":"...", ...fields};
// - logstash: {"@timestamp":"...","@version":"1","level":"info","message":"...", ...}.
// log.fields are added to every record.
import { Writable } from 'node:stream';
import { pino, type Logger, type LoggerOptions } from 'pino';
import type { Config } from './config/config.js';
import { traceFields } from './tracing/tracing.js';

function textStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        try {
          const { time, level, msg, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' && /^[\w./:@-]+$/.test(v) ? v : JSON.stringify(v)}`);
          out.write(`time="${String(time)}" level=${String(level)} msg=${JSON.stringify(msg ?? '')}${fields.length ? ` ${fields.join(' ')}` : ''}\n`);
        } catch {
          out.write(line + '\n');
        }
      }
      cb();
    },
  });
}

/** traceIds: add the active span's trace_id and span_id to each record (tracing on). */
export function createLogger(cfg: Config['log'], out: NodeJS.WritableStream = process.stderr, traceIds = false): Logger {
  const logstash = cfg.formatter === 'logstash';
  const opts: LoggerOptions = {
    level: cfg.level,
    base: logstash ? { '@version': '1', ...cfg.fields } : { ...cfg.fields },
    messageKey: logstash ? 'message' : 'msg',
    // RFC 3339 with milliseconds, as logrus writes with distribution's RFC3339Nano format.
    timestamp: () => `,"${logstash ? '@timestamp' : 'time'}":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: label }) },
    ...(traceIds ? { mixin: traceFields } : {}),
  };
  return cfg.formatter === 'text' ? pino(opts, textStream(out)) : pino(opts, out as Writable);
}
