import { formatIpv4 } from '../decode/ip-address';

/**
 * The BPF filter that selects the client→server packets of the given
 * transfers (-x, as parsed by parseTransfers; used when -F is not given).
 * Packets to the target are left out when target and online ports are alike:
 * on the online host they are our own output (other ports never match).
 */
export function captureFilter(
  transfers: readonly { readonly onlineIp: number; readonly onlinePort: number; readonly targetIp: number; readonly targetPort: number }[],
): string {
  return transfers
    .map((t) => {
      const parts = [`tcp dst port ${t.onlinePort}`];
      if (t.onlineIp) parts.push(`dst host ${formatIpv4(t.onlineIp)}`);
      if (t.onlinePort === t.targetPort && t.onlineIp !== t.targetIp) parts.push(`not dst host ${formatIpv4(t.targetIp)}`);
      return `(${parts.join(' and ')})`;
    })
    .join(' or ');
}
