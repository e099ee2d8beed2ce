// AWS's published IP ranges (ip-ranges.json), for the cloudfront middleware's
// ipfilteredby: fetched at start and every updatefrequency. Until the first
// fetch succeeds no address counts as AWS's (clients get CloudFront URLs,
// which always work); a failed refresh keeps the ranges it had.
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Logger } from 'pino';

interface Ranges {
  prefixes?: { ip_prefix?: string; region?: string }[];
  ipv6_prefixes?: { ipv6_prefix?: string; region?: string }[];
}

export class AwsIPs {
  private list = new BlockList();
  private timer: NodeJS.Timeout;
  /** Prefixes loaded by the last successful fetch. */
  loaded = 0;
  readonly ready: Promise<void>;

  constructor(private readonly url: string, private readonly regions: string[], everyMs: number, private readonly log: Logger) {
    this.ready = this.refresh();
    this.timer = setInterval(() => { void this.refresh(); }, Math.max(60_000, everyMs));
    this.timer.unref();
  }

  private async refresh(): Promise<void> {
    try {
      const res = await fetch(this.url, { signal: AbortSignal.timeout(30_000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body = await res.json() as Ranges;
      const want = (region?: string) => this.regions.length === 0 || (region !== undefined && this.regions.includes(region));
      const list = new BlockList();
      let n = 0;
      for (const p of body.prefixes ?? []) {
        const [addr, bits] = (p.ip_prefix ?? '').split('/');
        if (want(p.region) && isIPv4(addr)) { list.addSubnet(addr, Number(bits), 'ipv4'); n++; }
      }
      for (const p of body.ipv6_prefixes ?? []) {
        const [addr, bits] = (p.ipv6_prefix ?? '').split('/');
        if (want(p.region) && isIPv6(addr)) { list.addSubnet(addr, Number(bits), 'ipv6'); n++; }
      }
      this.list = list;
      this.loaded = n;
    } catch (e) {
      this.log.warn({ url: this.url, err: (e as Error).message }, 'cloudfront middleware: could not load AWS IP ranges; keeping the previous ones');
    }
  }

  contains(ip: string): boolean {
    const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
    const addr = v4mapped ?? ip;
    if (isIPv4(addr)) return this.list.check(addr, 'ipv4');
    if (isIPv6(addr)) return this.list.check(addr, 'ipv6');
    return false;
  }

  stop(): void { clearInterval(this.timer); }
}
