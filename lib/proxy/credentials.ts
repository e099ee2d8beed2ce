// Upstream credentials: proxy.username/password, or proxy.exec, a docker
// credential helper (`<command> get`, the registry's host on stdin, JSON
// {Username, Secret} out), as distribution 3 runs it; its answer is kept for
// proxy.exec.lifetime (unset: for good). Never logged.
import { execFile } from 'node:child_process';

export interface Credentials { username: string; password: string }

export interface CredentialSource { get(host: string): Promise<Credentials | null> }

export function staticCredentials(username?: string, password?: string): CredentialSource {
  const c = username ? { username, password: password ?? '' } : null;
  return { get: async () => c };
}

export function execCredentials(command: string, lifetimeMs?: number, timeoutMs = 30_000): CredentialSource {
  const cache = new Map<string, { creds: Credentials; until: number }>();
  return {
    async get(host: string) {
      const hit = cache.get(host);
      if (hit && Date.now() < hit.until) return hit.creds;
      const out = await new Promise<string>((resolve, reject) => {
        const child = execFile('/bin/sh', ['-c', `${command} get`], { timeout: timeoutMs, maxBuffer: 1 << 20 }, (e, stdout) => {
          // The helper's output may hold the secret: say only that it failed.
          if (e) reject(new Error(`proxy.exec: the credential helper failed (${(e as { code?: unknown }).code ?? e.message.split('\n')[0]})`));
          else resolve(stdout);
        });
        // A helper that exits without reading its stdin (missing, or failing
        // at once) makes the write fail with EPIPE: its exit status says why.
        child.stdin?.on('error', () => {});
        child.stdin?.end(host);
      });
      let parsed: { Username?: unknown; Secret?: unknown };
      try { parsed = JSON.parse(out) as typeof parsed; } catch { throw new Error('proxy.exec: the credential helper did not print JSON'); }
      if (typeof parsed.Secret !== 'string') throw new Error('proxy.exec: the credential helper printed no Secret');
      const creds = { username: typeof parsed.Username === 'string' ? parsed.Username : '', password: parsed.Secret };
      cache.set(host, { creds, until: lifetimeMs && lifetimeMs > 0 ? Date.now() + lifetimeMs : Infinity });
      return creds;
    },
  };
}
