import { formatIpv4 } from '../decode/ip-address';

/** A replayed connection as intercept must know it: replies from target to client go to this tcpcopy. */
export interface Route {
  /** Client address and port as sent (after -c and port rewriting), host-order numbers. */
  clientIp: number;
  clientPort: number;
  targetIp: number;
  targetPort: number;
  /** Payload bytes of each reply to return besides the headers (0: headers only). */
  payloadBytes: number;
}

/** The tcpcopy side of the channel to intercept, as the session engine sees it. */
export interface RouteRegistry {
  add(route: Route): void;
  remove(route: Route): void;
}

export const NULL_ROUTES: RouteRegistry = { add() {}, remove() {} };

/** "203.0.113.7:40000 ← 198.51.100.2:80", for logs (both ends). */
export function routeText(r: Route): string {
  return `${formatIpv4(r.clientIp)}:${r.clientPort} ← ${formatIpv4(r.targetIp)}:${r.targetPort}`;
}
