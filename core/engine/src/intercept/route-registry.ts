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
