// Sessions keep one object layout (V8 map) whatever their sequence numbers: a field that first held small
// integers and then a number past 2^31 would give every later session a new layout and leave the existing
// ones on a deprecated one (each moved on its next use, the optimized code thrown away). With thousands of
// long-lived sessions whose first FIN comes late, that was a burst of CPU at the end of a run.
import { expect } from 'chai';
import { setFlagsFromString } from 'node:v8';
import { conversation, EngineRig } from '../src/compliance/engine-rig';
import { parseIpv4 } from '../src/decode/ip-address';
import type { Session } from '../src/session/session';

setFlagsFromString('--allow-natives-syntax'); // read when the function below is compiled
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

function sessionOf(rig: EngineRig, ip: string, port: number): Session {
  // The engine does not hand out its sessions; the index is private for that reason.
  const s = (rig.engine as unknown as { byClient: { first(ip: number, port: number): Session | null } }).byClient.first(parseIpv4(ip), port);
  expect(s, `session of ${ip}:${port}`).to.not.equal(null);
  return s!;
}

describe('session layout', () => {
  it('stays the same when a late FIN brings a sequence number past 2^31', () => {
    const rig = new EngineRig();
    const exchanges = [{ request: 'GET a 300\n', response: 300 }];
    // An open keep-alive session with small sequence numbers, made first.
    for (const p of conversation({ ip: '198.51.100.10', port: 41000, isn: 5_000 }, exchanges, { fin: false, serverIsn: 9_000 })) rig.capture(p);
    rig.advance(20);
    const early = sessionOf(rig, '198.51.100.10', 41000);
    // A second one, closed by the client, whose numbers are past 2^31 (half of all ISNs are).
    // (Compared before the engine's timers run: a session on a deprecated layout moves to the new one when
    // it is next used.)
    for (const p of conversation({ ip: '198.51.100.11', port: 41001, isn: 3_000_000_000 }, exchanges, { serverIsn: 9_000 })) rig.capture(p);
    const late = sessionOf(rig, '198.51.100.11', 41001);
    expect(haveSameMap(early, late), 'one layout for both').to.equal(true);
    rig.advance(20);
    expect(rig.engine.stats.sessionsCompleted, 'the second one closed').to.equal(1);
  });
});
