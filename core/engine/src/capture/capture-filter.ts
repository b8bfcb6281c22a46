import { formatIpv4 } from '../decode/ip-address';
import type { Transfer } from '../rewrite/address-map';

/**
 * The BPF filter that selects the client→server packets of the given
 * transfers (used when -F is not given). Packets to the target are left out:
 * on the online host they are our own output when target and online ports
 * are alike.
 */
export function captureFilter(transfers: readonly Transfer[]): string {
  return transfers
    .map((t) => {
      const parts = [`tcp dst port ${t.onlinePort}`];
      if (t.onlineIp) parts.push(`dst host ${formatIpv4(t.onlineIp)}`);
      if (t.onlineIp !== t.targetIp || t.onlinePort !== t.targetPort) parts.push(`not dst host ${formatIpv4(t.targetIp)}`);
      return `(${parts.join(' and ')})`;
    })
    .join(' or ');
}
