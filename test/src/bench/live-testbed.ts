// The live scenarios' testbed: four hosts over a bridge (test/src/harness/netns.ts), nginx for tens of
// thousands of connections on the online host and on the target, 64 client addresses on the client host.
import { createTopology, type Topology } from '../harness';
import { addHostAddresses, clientAddressRange } from '../harness/live-load';
import { startWideNginx, type WideNginx } from '../soak/wide-nginx';
import type { ReplayPlan } from './tool-flavours';

export interface LiveTestbed {
  topo: Topology;
  online: WideNginx;
  target: WideNginx;
  plan: ReplayPlan;
  /** Client addresses on the client host. */
  clientAddrs: string[];
  /** Explicit client ports of the paced load move on by this much per run: no 4-tuple twice. */
  nextPortOffset: number;
  /** Stops the servers and removes the namespaces. */
  close(): Promise<void>;
}

const PLAN: ReplayPlan = { port: 80, target: '198.51.100.30', assistant: '198.51.100.40', fakeClients: '203.0.113.x' };
/** The 10,000-connection scenario, plus what earlier runs left open at the target. */
const WORKER_CONNECTIONS = 30_000;

export async function createLiveTestbed(): Promise<LiveTestbed> {
  const topo = await createTopology();
  try {
    const clientAddrs = clientAddressRange(100, 64); // 198.51.100.100-163
    await addHostAddresses(topo, 'client', clientAddrs);
    const online = await startWideNginx(topo, 'online', { port: PLAN.port, workerConnections: WORKER_CONNECTIONS });
    const target = await startWideNginx(topo, 'target', { port: PLAN.port, workerConnections: WORKER_CONNECTIONS });
    return {
      topo,
      online,
      target,
      plan: PLAN,
      clientAddrs,
      nextPortOffset: 0,
      async close() {
        try {
          await Promise.all([online.stop(), target.stop()]);
        } finally {
          await topo.destroy();
        }
      },
    };
  } catch (err) {
    await topo.destroy();
    throw err;
  }
}
