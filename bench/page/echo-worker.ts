/** Answers every message with itself: the floor of a page-to-worker round trip (main.ts `runApi`). */
self.onmessage = (event: MessageEvent<unknown>) => self.postMessage(event.data);
