import { execFile } from 'node:child_process';

/** Runs skopeo against plain-HTTP registries; rejects with its output on failure.
 *  Asynchronous on purpose: the registry under test may run in this process. */
export function skopeo(...args: string[]): Promise<string> {
  const [cmd, ...rest] = args;
  const tls = cmd === 'copy' || cmd === 'sync' ? ['--src-tls-verify=false', '--dest-tls-verify=false'] : ['--tls-verify=false'];
  return new Promise((resolve, reject) => {
    execFile('skopeo', ['--insecure-policy', cmd, ...tls, ...rest], { encoding: 'utf8', timeout: 120000, maxBuffer: 64 << 20 }, (e, stdout, stderr) => {
      if (e) reject(new Error(`skopeo ${args.join(' ')} failed: ${e.message}\n${stderr}${stdout}`));
      else resolve(stdout);
    });
  });
}

export const hostOf = (url: string) => new URL(url).host;
