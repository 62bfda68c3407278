// What the browser tests share: data-testid selectors, a pause, and waiting on a condition
// (never on time alone).

export const tid = (id) => `[data-testid="${id}"]`;
export const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/**
 * An `until(what, probe, timeout = defaultTimeout, describe?)` that polls `probe` (sync or
 * async) every 100 ms until it returns a truthy value, which it returns. On timeout it throws
 * naming `what`, with the last value or what `describe()` says the page shows.
 */
export function makeUntil(defaultTimeout) {
  return async function until(what, probe, timeout = defaultTimeout, describe = undefined) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
      try {
        last = await probe();
        if (last) return last;
      } catch (error) {
        last = `(probe threw: ${error.message.split('\n')[0]})`;
      }
      if (Date.now() > deadline) {
        const seen = describe
          ? await Promise.resolve().then(describe).catch((e) => `(unreadable: ${e.message.split('\n')[0]})`)
          : last;
        throw new Error(`timed out after ${timeout} ms waiting for ${what}; saw: ${JSON.stringify(seen)}`);
      }
      await sleep(100);
    }
  };
}
