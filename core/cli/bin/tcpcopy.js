#!/usr/bin/env node
'use strict';
require('../dist/src/tcpcopy-main.js').main(process.argv.slice(2));
