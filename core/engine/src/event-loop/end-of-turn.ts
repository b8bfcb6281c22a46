// One setImmediate per event-loop turn for every batching writer, instead of one per writer: at low
// rates most packets wake the loop on their own, and each hop costs a native-to-JS entry (docs/
// benchmarks.md, "Wake-ups at low rates"). Intercept channels flush first, then the raw socket sink,
// so that whatever a channel batched this turn is on its way before the packets that depend on it.
type Flush = () => void;

const channelFlushes: Flush[] = [];
const sinkFlushes: Flush[] = [];
let scheduled = false;

function flushAll(): void {
  scheduled = false;
  // No copies (this runs at every wake-up): the lists are emptied in place.
  for (let i = 0; i < channelFlushes.length; i++) channelFlushes[i]();
  channelFlushes.length = 0;
  for (let i = 0; i < sinkFlushes.length; i++) sinkFlushes[i]();
  sinkFlushes.length = 0;
}

/** Runs `flush` once at the end of this turn; `channel`: among the intercept channels' (they go first). */
export function flushAtEndOfTurn(flush: Flush, channel: boolean): void {
  (channel ? channelFlushes : sinkFlushes).push(flush);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushAll);
  }
}
