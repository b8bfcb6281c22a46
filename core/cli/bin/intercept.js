#!/usr/bin/env node
'use strict';
// A function is optimized after an eighth of the bytecode run that V8 waits for by default (--interrupt-budget,
// 67584), as in tcpcopy: at a few hundred connections a second intercept's path leaves the interpreter and
// baseline code sooner (short_500: -5 to -15 % of intercept's CPU per request in five side-by-side pairs,
// none at 2,000/s; docs/benchmarks.md, "Both tools at once on the same load").
require('./v8-flags').setV8Flags(['--interrupt-budget=8192']);
require('../dist/src/intercept-main.js').main(process.argv.slice(2));
