import { RequestStats, type ProtocolOptions, type SessionProtocol } from '@tcpcopy/core';
import { HttpSession } from './http-session';
import { parseOptions } from './options';

export { HttpSession } from './http-session';
export { CONTINUE_TAG_BASE, RAW_TAG } from './request-tags';
export { DEFAULT_REPLY_BYTES, HttpOptionError, parseOptions, type HttpRules } from './options';
export { ChunkedDecoder } from './chunked';

/**
 * The HTTP/1.x protocol with `--protocol-opt` options (see README.md): frames
 * requests and responses, sends each request only once the target has
 * answered the previous one, filters and rewrites requests. Throws on an
 * unknown option or a bad value.
 */
export function createProtocol(options: ProtocolOptions = {}): SessionProtocol {
  const rules = parseOptions(options);
  const requests = new RequestStats();
  return {
    name: 'http',
    replyPayloadBytes: rules.replyBytes,
    createSession: (ctx) => new HttpSession(ctx, rules, requests),
    requestStats: () => requests.snapshot(),
  };
}

/** The protocol without options. */
export const httpProtocol: SessionProtocol = createProtocol({});

export default httpProtocol;
