// Many concurrent HTTP/1.1 keep-alive connections, run with `node` inside the client namespace: opens
// `conns` connections at `openRate` per second, each sending its first request at once; once every
// connection is open, each sends its other requests at random moments over `spreadMs` (one at a time:
// a request waits for the previous response); then all are closed together (FIN). URLs are
// PATH?TAG=c<connection>r<request>, so both access logs can be compared request by request.
//
// usage: node hold-conns.js --plan JSON
// plan: { host, port, path, tag, conns, openRate, requests, spreadMs, localAddrs?: string[], timeoutMs? }
// stdout: "DONE {json}" with opened, connectErrors, sent, ok, errors, peakOpen (connections open at once),
// openMs (first connect to last one established), elapsedMs, errorSamples. Exit 0 if every request got a
// 200 and every connection was open at once, 1 otherwise.
import * as net from 'node:net';

export interface HoldPlan {
  host: string;
  port: number;
  path: string;
  tag: string;
  conns: number;
  /** New connections per second while opening. */
  openRate: number;
  /** Requests per connection (the first right after connecting). */
  requests: number;
  /** The other requests go at random moments over this long, once every connection is open. */
  spreadMs: number;
  /** Client addresses, round robin (default: the kernel's choice). */
  localAddrs?: string[];
  /** Per request (default 20 s). */
  timeoutMs?: number;
}

export interface HoldResult {
  opened: number;
  connectErrors: number;
  sent: number;
  ok: number;
  errors: number;
  peakOpen: number;
  openMs: number;
  elapsedMs: number;
  errorSamples: string[];
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

function run(plan: HoldPlan): Promise<HoldResult> {
  const result: HoldResult = { opened: 0, connectErrors: 0, sent: 0, ok: 0, errors: 0, peakOpen: 0, openMs: 0, elapsedMs: 0, errorSamples: [] };
  const timeoutMs = plan.timeoutMs ?? 20_000;
  const hostHeader = `Host: ${plan.host}${plan.port === 80 ? '' : `:${plan.port}`}\r\nUser-Agent: tcpe-hold-conns\r\n\r\n`;
  const sep = plan.path.includes('?') ? '&' : '?';
  const error = (msg: string): void => {
    result.errors++;
    if (result.errorSamples.length < 10) result.errorSamples.push(msg);
  };
  let open = 0;
  let outstanding = 0; // requests not yet answered or failed, over all connections
  const started = performance.now();
  let allOpenAt = 0;

  return new Promise((resolve) => {
    const conns: Conn[] = [];
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      result.elapsedMs = Math.round(performance.now() - started);
      for (const c of conns) c.sock.end();
      // Let the FINs go out before the caller exits.
      setTimeout(() => resolve(result), 500);
    };
    const maybeDone = (): void => {
      if (allOpenAt && outstanding === 0 && conns.every((c) => c.next >= plan.requests || c.dead)) finish();
    };

    class Conn {
      readonly sock: net.Socket;
      next = 0; // next request index to send
      inFlight = -1;
      buf: Buffer | null = null;
      need = -1;
      status = 0;
      timer: NodeJS.Timeout | null = null;
      dead = false;
      established = false;

      constructor(readonly k: number) {
        const opts: net.NetConnectOpts = { host: plan.host, port: plan.port, noDelay: true };
        const addrs = plan.localAddrs;
        if (addrs?.length) opts.localAddress = addrs[k % addrs.length];
        this.sock = net.connect(opts);
        this.sock.on('connect', () => {
          this.established = true;
          result.opened++;
          open++;
          if (open > result.peakOpen) result.peakOpen = open;
          if (result.opened === plan.conns) result.openMs = Math.round(performance.now() - started);
          this.send();
        });
        this.sock.on('data', (chunk: Buffer) => this.onData(chunk));
        this.sock.on('error', (err: NodeJS.ErrnoException) => this.gone(err.code ?? err.message));
        this.sock.on('close', () => this.gone('closed'));
      }

      send(): void {
        if (this.dead || this.next >= plan.requests || this.inFlight >= 0) return;
        this.inFlight = this.next++;
        outstanding++;
        result.sent++;
        this.sock.write(`GET ${plan.path}${sep}${plan.tag}=c${this.k}r${this.inFlight} HTTP/1.1\r\n${hostHeader}`, 'latin1');
        this.timer = setTimeout(() => this.fail(`c${this.k}r${this.inFlight}: no response in ${timeoutMs} ms`), timeoutMs);
      }

      onData(chunk: Buffer): void {
        let b = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
        this.buf = null;
        while (b.length > 0) {
          if (this.need < 0) {
            const end = b.indexOf(CRLFCRLF);
            if (end < 0) {
              this.buf = b;
              return;
            }
            const head = b.toString('latin1', 0, end);
            this.status = Number(head.slice(9, 12));
            const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
            if (!m) return this.fail(`c${this.k}: response without Content-Length`);
            this.need = Number(m[1]);
            b = b.subarray(end + 4);
          }
          const take = Math.min(this.need, b.length);
          this.need -= take;
          b = b.subarray(take);
          if (this.need > 0) return;
          this.need = -1;
          this.answered();
        }
      }

      answered(): void {
        if (this.timer) clearTimeout(this.timer);
        if (this.status === 200) result.ok++;
        else error(`c${this.k}r${this.inFlight}: status ${this.status}`);
        this.inFlight = -1;
        outstanding--;
        maybeDone();
      }

      fail(msg: string): void {
        if (this.timer) clearTimeout(this.timer);
        if (this.inFlight >= 0) outstanding--;
        this.inFlight = -1;
        error(msg);
        this.dead = true;
        this.sock.destroy();
        maybeDone();
      }

      gone(why: string): void {
        if (this.dead) return;
        if (!this.established) result.connectErrors++;
        else open--;
        if (finished) return;
        this.fail(`c${this.k}: ${why}`);
      }
    }

    // Open at openRate per second, in 10 ms steps.
    let k = 0;
    const opener = setInterval(() => {
      const due = Math.min(plan.conns, Math.ceil(((performance.now() - started) * plan.openRate) / 1000));
      while (k < due) conns.push(new Conn(k++));
      if (k >= plan.conns) {
        clearInterval(opener);
        waitAllOpen();
      }
    }, 10);

    const waitAllOpen = (): void => {
      const check = setInterval(() => {
        const settled = conns.every((c) => c.dead || (c.established && c.inFlight < 0));
        if (!settled && performance.now() - started < plan.conns / plan.openRate * 1000 + timeoutMs) return;
        clearInterval(check);
        allOpenAt = performance.now();
        // Every later request of every connection at a random moment within spreadMs.
        for (const c of conns) {
          for (let r = 1; r < plan.requests; r++) {
            setTimeout(() => {
              if (c.inFlight < 0) c.send();
              else {
                // The previous one is still out: send as soon as it is answered.
                const retry = setInterval(() => {
                  if (c.dead || c.inFlight < 0) {
                    clearInterval(retry);
                    c.send();
                  }
                }, 20);
              }
            }, Math.random() * plan.spreadMs);
          }
        }
        setTimeout(maybeDone, plan.spreadMs + 10);
      }, 50);
    };
  });
}

if (require.main === module) {
  const i = process.argv.indexOf('--plan');
  const plan = JSON.parse(process.argv[i + 1] ?? '{}') as HoldPlan;
  if (!plan.host || !(plan.conns > 0) || !(plan.requests > 0)) throw new Error('plan needs host, conns, requests');
  const bound = plan.conns / plan.openRate * 1000 + plan.spreadMs + 2 * (plan.timeoutMs ?? 20_000) + 30_000;
  setTimeout(() => {
    process.stdout.write(`DONE ${JSON.stringify({ overran: true })}\n`);
    process.exit(2);
  }, bound).unref();
  void run(plan).then((r) => {
    process.stdout.write(`DONE ${JSON.stringify(r)}\n`);
    process.exit(r.errors === 0 && r.connectErrors === 0 && r.peakOpen === plan.conns ? 0 : 1);
  });
}
