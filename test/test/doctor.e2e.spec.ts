// `tcpcopy doctor` and `intercept doctor` in the namespace topology (issue 8): the real commands, the real
// intercept on the assistant, nginx on the target. A healthy topology passes (exit 0); each planted fault makes
// the doctor exit 1 with a line that names it: the target's route for the fake client network removed,
// ip_forward=1 on the assistant, intercept not running or not reachable, an intercept filter that catches none of
// the target's replies, the target port closed (RST).
import { expect } from 'chai';
import {
  createTopology,
  FAKE_CLIENT_NET,
  INTERCEPT_BIN,
  pacedLoad,
  removeRoute,
  requireRoot,
  requireTools,
  startNginx,
  TCPCOPY_BIN,
  type InterceptHandle,
  type Topology,
} from '../src/harness';

const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
/** The doctor's own bound is 10 s; this leaves room for a busy machine's process start-up. */
const DOCTOR_BOUND_MS = 10_000;

interface DoctorRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
  /** stdout's finding lines (continuation lines "  or: ..." are folded into the line above). */
  lines: string[];
}

describe('doctor: tcpcopy doctor and intercept doctor find planted faults', function () {
  this.timeout(120_000);
  let topo: Topology;
  let intercept: InterceptHandle;

  before(async function () {
    requireRoot(this);
    requireTools(this, ['nginx']);
    topo = await createTopology();
    await startNginx(topo, 'online');
    await startNginx(topo, 'target');
    // Replies from any port of the target: the closed port's RST comes back too.
    intercept = await startInterceptWithFilter(36524, `tcp and src host ${TARGET}`);
  });
  after(async () => {
    await intercept?.stop();
    await topo?.destroy();
  });

  /** intercept on the assistant with its own filter and port (the harness's startIntercept builds a port filter). */
  async function startInterceptWithFilter(port: number, filter: string, extra: string[] = []): Promise<InterceptHandle> {
    const proc = topo.spawn('assistant', process.execPath, [INTERCEPT_BIN, '-i', topo.hosts.assistant.iface, '-F', filter, '-p', String(port), ...extra]);
    await proc.waitFor(/listening on/, { stream: 'stdout', timeoutMs: 10_000 }).catch(async (e) => {
      await proc.stop('SIGKILL', 2000).catch(() => undefined);
      throw new Error(`intercept did not start: ${(e as Error).message}\n${proc.stderr()}`);
    });
    return { proc, stop: async () => void (await proc.stop('SIGTERM', 5000)) };
  }

  async function doctor(host: 'online' | 'assistant', args: string[]): Promise<DoctorRun> {
    const bin = host === 'online' ? TCPCOPY_BIN : INTERCEPT_BIN;
    const started = Date.now();
    const r = await topo.exec(host, process.execPath, [bin, 'doctor', ...args], { timeoutMs: 30_000, check: false });
    const lines: string[] = [];
    for (const l of r.stdout.split('\n')) {
      if (/^\s+or: /.test(l) && lines.length) lines[lines.length - 1] += ` ${l.trim()}`;
      else if (l) lines.push(l);
    }
    const run = { code: r.code, signal: r.signal, stdout: r.stdout, stderr: r.stderr, elapsedMs: Date.now() - started, lines };
    // TCPE_SHOW_DOCTOR=1 prints every run, to read what a user would see.
    if (process.env.TCPE_SHOW_DOCTOR === '1') {
      process.stdout.write(`\n$ ${host === 'online' ? 'tcpcopy' : 'intercept'} doctor ${args.join(' ')}   (exit ${r.code}, ${run.elapsedMs} ms)\n${r.stdout}${r.stderr}`);
    }
    return run;
  }

  const tcpcopyDoctor = (extra: string[] = [], transfer = `80-${TARGET}:80`, intercepts = ASSISTANT) =>
    doctor('online', ['-i', topo.hosts.online.iface, '-x', transfer, '-s', intercepts, '-c', '203.0.113.x', ...extra]);
  const interceptDoctor = (extra: string[] = []) =>
    doctor('assistant', ['-i', topo.hosts.assistant.iface, '-F', `tcp and src host ${TARGET}`, ...extra]);

  /** The one line that starts with `level` and names `subject`. */
  function line(run: DoctorRun, level: 'ok' | 'warn' | 'FAIL', subject: string): string {
    const found = run.lines.filter((l) => l.startsWith(`${level} `) && l.includes(`${subject}:`));
    expect(found, `no "${level} ... ${subject}" line in:\n${run.stdout}${run.stderr}`).to.have.length(1);
    return found[0];
  }

  /** Half-open connections from fake clients on the target (the probe's RST must have freed them). */
  async function halfOpenOnTarget(): Promise<string> {
    const r = await topo.exec('target', 'ss', ['-Htn', 'state', 'syn-recv', 'src', `${TARGET}`]);
    return r.stdout.trim();
  }

  // (Checked by hand: without the probe's RST the target keeps the half-open connection, and this test fails.)
  it('passes a healthy topology: exit 0, the probe\'s SYN-ACK came back, the target holds no half-open connection', async () => {
    const t = await tcpcopyDoctor();
    expect(t.code, t.stdout + t.stderr).to.equal(0);
    expect(t.elapsedMs).to.be.below(DOCTOR_BOUND_MS);
    expect(line(t, 'ok', 'privileges')).to.match(/root/);
    expect(line(t, 'ok', `route to ${TARGET}`)).to.contain(topo.hosts.online.iface);
    line(t, 'ok', 'conntrack');
    // tcpcopy's default capture: the IP raw socket, which sees every device's inbound TCP.
    expect(line(t, 'ok', 'capture')).to.contain('an IP raw socket');
    expect(line(t, 'ok', `intercept ${ASSISTANT}:36524`)).to.contain('answers the channel protocol');
    expect(line(t, 'ok', `probe ${TARGET}:80`)).to.match(/SYN from 203\.0\.113\.1:\d+ was answered with a SYN-ACK/);
    // Idle online host: the traffic check warns (and the exit code stays 0).
    expect(line(t, 'warn', 'traffic')).to.match(/no packets for port 80 seen on any device in 2 s/);
    expect(t.stdout).to.match(/tcpcopy doctor: all checks passed/);
    expect(await halfOpenOnTarget()).to.equal('');

    const i = await interceptDoctor();
    expect(i.code, i.stdout + i.stderr).to.equal(0);
    expect(line(i, 'ok', 'ip_forward')).to.contain('net.ipv4.ip_forward=0');
    line(i, 'ok', 'rp_filter');
    expect(line(i, 'ok', 'capture')).to.contain(`packet sockets open ${topo.hosts.assistant.iface}`);
    expect(line(i, 'ok', 'intercept 127.0.0.1:36524')).to.contain('answers the channel protocol');
  });

  it('sees the online port\'s traffic when clients are talking to it', async () => {
    const [t] = await Promise.all([
      tcpcopyDoctor(),
      pacedLoad(topo, { url: 'http://198.51.100.20/size/16', requests: 40, rate: 20, conns: 2, tag: 'doctor' }),
    ]);
    expect(t.code, t.stdout + t.stderr).to.equal(0);
    const n = Number(/(\d+) packets for port 80 seen/.exec(line(t, 'ok', 'traffic'))?.[1]);
    expect(n).to.be.greaterThan(0);
  });

  it('names the missing route for the fake client network on the target', async () => {
    const outage = await removeRoute(topo, 'target', FAKE_CLIENT_NET, ASSISTANT);
    try {
      const t = await tcpcopyDoctor();
      expect(t.code, t.stdout).to.equal(1);
      expect(t.elapsedMs).to.be.below(DOCTOR_BOUND_MS);
      const probe = line(t, 'FAIL', `probe ${TARGET}:80`);
      expect(probe).to.contain('no reply came back');
      expect(probe).to.contain('no route for the fake client network 203.0.113.0/24 via the assistant');
      expect(probe).to.contain(`fix: on the target: ip route add 203.0.113.0/24 via ${ASSISTANT}`);
    } finally {
      await outage.restore();
    }
  });

  it('names ip_forward=1 on the assistant (intercept doctor); tcpcopy doctor\'s probe still passes, as intercept captures before forwarding', async () => {
    await topo.exec('assistant', 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    try {
      const i = await interceptDoctor();
      expect(i.code, i.stdout).to.equal(1);
      expect(line(i, 'FAIL', 'ip_forward')).to.match(/net\.ipv4\.ip_forward=1 on the assistant.*fix: sysctl -w net\.ipv4\.ip_forward=0/);
      const t = await tcpcopyDoctor();
      expect(t.code, t.stdout).to.equal(0);
      line(t, 'ok', `probe ${TARGET}:80`);
    } finally {
      await topo.exec('assistant', 'sysctl', ['-qw', 'net.ipv4.ip_forward=0']);
    }
  });

  it('names an intercept that is not running (refused) or not reachable (no such host), and sends no probe', async () => {
    const refused = await tcpcopyDoctor([], `80-${TARGET}:80`, `${ASSISTANT}:36600`);
    expect(refused.code, refused.stdout).to.equal(1);
    expect(line(refused, 'FAIL', `intercept ${ASSISTANT}:36600`)).to.match(/connection refused.*fix: on 198\.51\.100\.40: intercept -i <device> -F "tcp and \(src port 80\)" -p 36600/);
    expect(line(refused, 'FAIL', 'probe')).to.contain('no intercept');

    const absent = await tcpcopyDoctor([], `80-${TARGET}:80`, '198.51.100.99');
    expect(absent.code, absent.stdout).to.equal(1);
    expect(absent.elapsedMs).to.be.below(DOCTOR_BOUND_MS);
    expect(line(absent, 'FAIL', 'intercept 198.51.100.99:36524')).to.match(/cannot reach intercept/);

    // On the assistant, before intercept is started: a warning that says how to start it.
    const i = await interceptDoctor(['-p', '36600']);
    expect(i.code, i.stdout).to.equal(0);
    expect(line(i, 'warn', 'intercept 127.0.0.1:36600')).to.match(/no intercept is running on port 36600.*fix: intercept -i \S+ -F "tcp and src host 198\.51\.100\.30" -p 36600/);
  });

  it('finds an intercept filter that catches none of the target\'s replies (the probe gets no answer)', async () => {
    const deaf = await startInterceptWithFilter(36525, 'tcp and src port 9');
    try {
      const t = await tcpcopyDoctor([], `80-${TARGET}:80`, `${ASSISTANT}:36525`);
      expect(t.code, t.stdout).to.equal(1);
      line(t, 'ok', `intercept ${ASSISTANT}:36525`);
      const probe = line(t, 'FAIL', `probe ${TARGET}:80`);
      expect(probe).to.contain('intercept captures on the wrong device or with a filter that misses it');
      expect(probe).to.contain('-F matching "tcp and src port 80"');
    } finally {
      await deaf.stop();
    }
  });

  it('asks an intercept that wants a secret with the replay\'s --secret (and names a missing one)', async () => {
    const guarded = await startInterceptWithFilter(36526, `tcp and src host ${TARGET}`, ['--secret', 'doctor-e2e']);
    try {
      const without = await tcpcopyDoctor([], `80-${TARGET}:80`, `${ASSISTANT}:36526`);
      expect(without.code, without.stdout).to.equal(1);
      expect(line(without, 'FAIL', `intercept ${ASSISTANT}:36526`)).to.contain('requires a shared secret');
      const withSecret = await tcpcopyDoctor(['--secret', 'doctor-e2e'], `80-${TARGET}:80`, `${ASSISTANT}:36526`);
      expect(withSecret.code, withSecret.stdout).to.equal(0);
      line(withSecret, 'ok', `probe ${TARGET}:80`);
      const assistant = await interceptDoctor(['-p', '36526', '--secret', 'doctor-e2e']);
      expect(assistant.code, assistant.stdout).to.equal(0);
      line(assistant, 'ok', 'intercept 127.0.0.1:36526');
    } finally {
      await guarded.stop();
    }
  });

  it('names the target port closed when the target answers the probe with a RST', async () => {
    const t = await tcpcopyDoctor([], `80-${TARGET}:81`);
    expect(t.code, t.stdout).to.equal(1);
    expect(line(t, 'FAIL', `probe ${TARGET}:81`)).to.match(/target port closed: the target answered a SYN from 203\.0\.113\.1:\d+ with a RST.*fix: start the service on 198\.51\.100\.30:81/);
  });

  it('names missing privileges (run as nobody): no capture, no probe', async function () {
    requireTools(this, ['setpriv']);
    const r = await topo.exec('online', 'setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, TCPCOPY_BIN,
      'doctor', '-i', topo.hosts.online.iface, '-x', `80-${TARGET}:80`, '-s', ASSISTANT, '-c', '203.0.113.x'], { timeoutMs: 30_000, check: false });
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    expect(r.stdout).to.match(/^FAIL  privileges: running as uid 65534 without CAP_NET_RAW, needed for the raw socket and the capture; fix: run it as root$/m);
    expect(r.stdout).to.match(/^FAIL  probe: not sent: sending it needs root or CAP_NET_RAW/m);
    expect(r.stdout).to.match(/^ok    intercept 198\.51\.100\.40:36524: answers the channel protocol/m);
  });

  it('names a capture device that does not exist and a filter that does not compile', async () => {
    // A run that ends by a signal says which, and what it printed on stderr (two ended by SIGSEGV in CI: a libpcap
    // handle freed by the GC while still in libuv's handle list, capture/cap-addon.ts).
    const said = (x: DoctorRun) => `${x.stdout}\nsignal ${x.signal}; stderr: ${x.stderr}`;
    const d = await doctor('assistant', ['-i', 'nosuch0']);
    expect(d.code, said(d)).to.equal(1);
    expect(line(d, 'FAIL', 'device')).to.contain('nosuch0');
    const f = await tcpcopyDoctor(['-F', 'tcp and port']);
    expect(f.code, said(f)).to.equal(1);
    expect(line(f, 'FAIL', 'filter')).to.match(/does not compile.*\[-F\]/);
    // tcpcopy's raw socket takes every device, but a -i that names none is refused by the replay, and so here.
    const r = await doctor('online', ['-i', 'nosuch0', '-x', `80-${TARGET}:80`, '-s', ASSISTANT, '-c', '203.0.113.x']);
    expect(r.code, said(r)).to.equal(1);
    expect(line(r, 'FAIL', 'device')).to.contain('no network device "nosuch0"');
  });

  it('checks intercept\'s filter as intercept compiles it: link-layer terms fail there, as intercept refuses them (libpcap on tcpcopy\'s side takes them)', async () => {
    // Any MAC will do: whether the filter compiles is what differs.
    const filter = `ether src 02:00:00:00:00:30 and tcp and src host ${TARGET}`;
    const i = await doctor('assistant', ['-i', topo.hosts.assistant.iface, '-F', filter, '-p', '36601']);
    expect(i.code, i.stdout).to.equal(1);
    expect(line(i, 'FAIL', 'filter')).to.match(/does not compile.*link-layer terms such as ether or vlan do not apply.*\[-F\]; fix: leave link-layer terms \(ether, vlan\) out of -F/);
    const refused = await topo.exec('assistant', process.execPath, [INTERCEPT_BIN, '-i', topo.hosts.assistant.iface, '-F', filter, '-p', '36601'],
      { timeoutMs: 30_000, check: false });
    expect(refused.code, refused.stderr).to.equal(2);
    expect(refused.stderr).to.contain(`filter "${filter}" does not compile`);
    // tcpcopy with -F captures through libpcap on the Ethernet device, where the same terms compile.
    const t = await tcpcopyDoctor(['-F', 'ether dst 02:00:00:00:00:20 and tcp dst port 80']);
    expect(line(t, 'ok', 'capture')).to.match(/^ok {4}capture: libpcap opens \S+ with the filter "ether dst 02:00:00:00:00:20 and tcp dst port 80" \(-F\)/);
  });
});
