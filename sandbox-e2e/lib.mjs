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

/**
 * A `visible(locator, what, timeout = defaultTimeout)` that waits until the locator's first
 * match is visible and returns it, with a message naming `what` (and the locator, with
 * `nameLocator`) if it never is.
 */
export function makeVisible(defaultTimeout, nameLocator = false) {
  return async function visible(locator, what, timeout = defaultTimeout) {
    try {
      await locator.first().waitFor({ state: 'visible', timeout });
    } catch (error) {
      const where = nameLocator ? ` (${locator})` : '';
      throw new Error(`${what} not visible within ${timeout} ms${where}: ${error.message.split('\n')[0]}`);
    }
    return locator.first();
  };
}

/** The first match's text, trimmed ('' for none). */
export const text = async (locator) => ((await locator.first().textContent({ timeout: 2_000 })) ?? '').trim();
