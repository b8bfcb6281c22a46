// The version of the commands (@tcpcopy/cli's package.json): what -v prints and what a report records.

export const CLI_VERSION: string = (require('../../package.json') as { version: string }).version;
