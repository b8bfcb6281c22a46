import type { ProtocolNames } from '@tcpcopy/core';

/**
 * The protocol names `tcpcopy --protocol` knows without a path or a package
 * name: our own protocol packages. Passed to loadProtocol as
 * `{ builtIns: BUILT_IN_PROTOCOLS }`; anything else given to --protocol is a
 * file path or an npm package name.
 */
export const BUILT_IN_PROTOCOLS: ProtocolNames = {
  raw: '@tcpcopy/protocol-raw',
  http: '@tcpcopy/protocol-http',
  mysql: '@tcpcopy/protocol-mysql',
};
