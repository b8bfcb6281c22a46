/**
 * How a forwarded request is labelled. Its bytes are emitted with a tag:
 *  - k (1, 2, ...): the k-th request forwarded to the target (dropped
 *    requests take no number), head and body alike;
 *  - CONTINUE_TAG_BASE + k: the body of request k when its head says
 *    `Expect: 100-continue` (it may go once the target said 100 Continue);
 *  - RAW_TAG: client bytes after a protocol switch (101, CONNECT), gated by byte counts.
 * Its flags tell the response tracker how its response is framed.
 */
export const RAW_TAG = 0;
export const CONTINUE_TAG_BASE = 2 ** 30;

/** A HEAD request: its response has no body. */
export const REQ_HEAD = 1;
/** A CONNECT request: a 2xx response turns the connection into a tunnel. */
export const REQ_CONNECT = 2;
/** A request asking for a protocol switch (CONNECT, or Upgrade with Connection: upgrade). */
export const REQ_UPGRADE = 4;
