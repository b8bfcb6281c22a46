'use strict';
// V8 flags the tools set for themselves (see each bin script for its list and why). Set before the tool's
// modules load, they take effect without restarting node. Given to node itself (its command line or
// NODE_OPTIONS), the caller's choice stays.
const v8 = require('node:v8');

exports.setV8Flags = function setV8Flags(flags) {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].map((a) => a.replace(/_/g, '-'));
  for (const flag of flags) {
    const name = flag.slice(0, flag.indexOf('='));
    if (!given.some((a) => a.startsWith(name))) v8.setFlagsFromString(flag);
  }
};
