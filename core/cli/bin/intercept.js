#!/usr/bin/env node
'use strict';
require('../dist/src/intercept-main.js').main(process.argv.slice(2));
