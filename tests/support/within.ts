/**
 * Bounds a wait in a test: `p`, or a failure naming `what` after `ms`. Not a timing assertion
 * (the bound is generous); it turns "never happened" into a failed test instead of a hang.
 */
export async function within<T>(p: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}
