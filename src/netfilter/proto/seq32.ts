/**
 * Arithmetic on 32-bit TCP sequence numbers, as the kernel does it with `u32` and the
 * `before()`/`after()` macros of include/net/tcp.h: numbers live on a circle of 2^32 and
 * "a before b" means b is less than 2^31 ahead of a. Values are JS numbers in [0, 2^32).
 */

/** `a + b` modulo 2^32. */
export function add32(a: number, b: number): number {
  return (a + b) >>> 0;
}

/** `a - b` modulo 2^32. */
export function sub32(a: number, b: number): number {
  return (a - b) >>> 0;
}

/** The kernel's before(a, b): (s32)(a - b) < 0. */
export function before(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** The kernel's after(a, b) = before(b, a). */
export function after(a: number, b: number): boolean {
  return ((b - a) | 0) < 0;
}

/** Reinterprets a u32 as s32 (the kernel's casts to `s32`). */
export function toS32(a: number): number {
  return a | 0;
}
