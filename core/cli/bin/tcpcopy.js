#!/usr/bin/env node
'use strict';
// Heap settings for a process that allocates fast and keeps little (docs/benchmarks.md, "engine CPU and
// memory"): V8's defaults let the young generation grow to 2 x 16 MiB and the old one fill with garbage
// up to several times what is alive before collecting. Both flags are read when the heap grows, so setting
// them here, before anything is allocated in earnest, takes effect without restarting node.
//  - the young generation keeps its initial 2 x 1 MiB: what survives it is per-session state anyway;
//  - the old generation grows by 30 % over what the last full collection left alive.
// And one for the compiler: a function is optimized after an eighth of the bytecode run that V8 waits for by
// default (--interrupt-budget, 67584), so that at a few hundred connections a second the hot path leaves the
// interpreter and baseline code sooner (short_500: -5 to -7 % CPU per request in paired
// runs; none at 2,000/s; docs/benchmarks.md, "Paired runs"). Read when a function's budget is set, so before
// tcpcopy's modules load.
require('./v8-flags').setV8Flags(['--semi-space-growth-factor=1', '--heap-growing-percent=30', '--interrupt-budget=8192']);
require('../dist/src/tcpcopy-main.js').main(process.argv.slice(2));
